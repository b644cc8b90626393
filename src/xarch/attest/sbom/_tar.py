"""A minimal, fast, forward-only tar reader for layer streams.

Why not ``tarfile``: cataloging reads every header of every layer but almost no contents, and
``tarfile``'s per-member cost (TarInfo construction, field-by-field parsing, its stream buffer
that copies on every read) is as large as gunzip itself on images with many small files. This
reader parses only what the walker needs (name, type, size, mode, link target), understands
ustar, PAX extended headers (``path``, ``linkpath``, ``size``) and GNU long names/links, checks
header checksums, and hands out member contents as bounded reads from one buffered stream.

Whole member contents (``read_content``, what the walker keeps for catalogers) come out of a
:class:`ContentBudget`: a crafted layer of many "package databases" that each stay under the
per-file limit must not fill memory in sum. Every reader has its own budget unless one is
shared (one per walk bounds the whole image).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from xarch.errors import IntegrityError

BLOCK = 512
_READ = 1 << 20
MAX_META = 1 << 20  # largest PAX / GNU long-name payload accepted
# Whole member contents one budget hands out: every package database, copyright file and
# manifest of a real image together is far below this.
MAX_CONTENT = 256 << 20

REG, LNK, SYM, DIR, OTHER = "0", "1", "2", "5", "?"
_TYPES = {b"0": REG, b"\x00": REG, b"7": REG, b"1": LNK, b"2": SYM, b"5": DIR}
_NO_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_LINKS = frozenset({b"1", b"2"})
_ZERO_BLOCK = bytes(BLOCK)
_ADLER_MOD = 65521


class TarFormatError(IntegrityError):
    pass


class ContentLimitError(TarFormatError):
    """More whole member contents asked for than the budget allows."""


class ContentBudget:
    """Bytes of whole member contents that may be read into memory; thread-safe, so that the
    readers of one walk (on several threads) can share it."""

    def __init__(self, limit: int = MAX_CONTENT) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int, name: str) -> None:
        with self._lock:
            if self.used + n > self.limit:
                raise ContentLimitError(
                    f"reading {name} ({n} bytes) would take the metadata files kept in memory "
                    f"past {self.limit} bytes: refusing (a crafted image?)"
                )
            self.used += n


@dataclass
class Member:
    name: str
    type: str  # REG, LNK, SYM, DIR or OTHER
    size: int  # bytes of content that follow in the archive
    mode: int
    linkname: str


def _octal(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large values
        v = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            raise TarFormatError(f"negative tar {what}")
        return v
    s = field.split(b"\x00", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise TarFormatError(f"bad tar {what} field {field!r}") from None


def _str(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("malformed PAX header record") from None
        if length <= 0 or pos + length > len(data):
            raise TarFormatError("malformed PAX header record length")
        rec = data[sp + 1 : pos + length - 1]  # without the trailing newline
        key, eq, val = rec.partition(b"=")
        if eq:
            out[key.decode("utf-8", "replace")] = val.decode("utf-8", "surrogateescape")
        pos += length
    return out


class TarReader:
    """Iterate members of a tar stream; ``read_content``/``open_content`` for the current one."""

    def __init__(self, stream: BinaryIO, budget: ContentBudget | None = None) -> None:
        self._f = stream
        self._budget = budget if budget is not None else ContentBudget()
        self._name = ""
        self._buf = b""
        self._pos = 0  # read position in _buf
        self._remaining = 0  # content bytes of the current member not yet consumed
        self._pad = 0

    # -- buffered primitives ------------------------------------------------------------------
    # The buffer is the last chunk read from the stream; only bytes that straddle two chunks
    # are ever joined (a 1 MiB join per chunk would cost more than the tar parsing).
    def _take(self, n: int, *, eof_ok: bool = False) -> bytes:
        """The next n bytes (fewer only at end of stream, and only with ``eof_ok``)."""
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        need = end - len(buf)
        while True:
            chunk = self._f.read(max(_READ, need))
            if not chunk:
                self._buf, self._pos = b"", 0
                if eof_ok:
                    return b"".join(parts)
                raise TarFormatError("unexpected end of tar stream (truncated layer)")
            if len(chunk) >= need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                return b"".join(parts)
            parts.append(chunk)
            need -= len(chunk)

    def _skip(self, n: int) -> None:
        have = len(self._buf) - self._pos
        if n <= have:
            self._pos += n
            return
        n -= have
        self._buf, self._pos = b"", 0
        while n:
            chunk = self._f.read(_READ)  # whole chunks: the rest becomes the buffer
            if not chunk:
                raise TarFormatError("unexpected end of tar stream (truncated layer)")
            if len(chunk) > n:
                self._buf, self._pos = chunk, n
                return
            n -= len(chunk)

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes of the current member's content."""
        if n < 0 or n > self._remaining:
            n = self._remaining
        if n == 0:
            return b""
        have = len(self._buf) - self._pos
        if have == 0:
            self._buf, self._pos = self._f.read(_READ), 0
            have = len(self._buf)
            if have == 0:
                raise TarFormatError("unexpected end of tar stream (truncated layer)")
        n = min(n, have)
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        self._remaining -= n
        return out

    def read_content(self) -> bytes:
        """The rest of the current member's content, charged to the budget."""
        self._budget.take(self._remaining, self._name)
        parts = []
        while self._remaining:
            parts.append(self.read(self._remaining))
        return b"".join(parts)

    # -- members ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Member]:
        pending: dict[str, str] = {}
        while True:
            # finish the previous member: unread content plus padding to the block size
            self._skip(self._remaining + self._pad)
            self._remaining = self._pad = 0
            hdr = self._take(BLOCK, eof_ok=True)
            if len(hdr) < BLOCK:
                if not hdr:
                    return  # EOF without end-of-archive blocks: accepted, like tar(1)
                raise TarFormatError("unexpected end of tar stream (truncated header)")
            if hdr == _ZERO_BLOCK:
                return  # end-of-archive marker
            chk_field = hdr[148:156]
            # The checksum is the byte sum with the checksum field read as spaces. adler32's
            # low half is 1 + that sum mod 65521 (a C loop instead of a Python sum(); the sum is
            # at most 130560, so the check is exact but for multiples of 65521).
            want = _octal(chk_field, "checksum") + sum(chk_field) - 256
            if (want - (zlib.adler32(hdr) & 0xFFFF) + 1) % _ADLER_MOD:
                raise TarFormatError("tar header checksum mismatch (corrupt layer)")
            typ = hdr[156:157]
            size = _octal(hdr[124:136], "size")
            if typ in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise TarFormatError(f"tar metadata header of {size} bytes is too large")
                data = self._take(size)
                self._skip(-size % BLOCK)
                if typ == b"x":
                    pending.update(_pax(data))
                elif typ == b"L":
                    pending["path"] = _str(data)
                elif typ == b"K":
                    pending["linkpath"] = _str(data)
                continue  # global headers ('g') carry nothing the walker uses
            name = _str(hdr[0:100])
            if hdr[257:263] == b"ustar\x00":  # POSIX ustar: name may have a prefix
                prefix = _str(hdr[345:500])
                if prefix:
                    name = f"{prefix}/{name}"
            linkname = _str(hdr[157:257]) if typ in _LINKS else ""
            if "path" in pending:
                name = pending["path"]
            if "linkpath" in pending:
                linkname = pending["linkpath"]
            if "size" in pending:
                try:
                    size = int(pending["size"])
                except ValueError:
                    raise TarFormatError("bad PAX size") from None
            pending = {}
            kind = _TYPES.get(typ, OTHER)
            if kind == DIR:
                name = name.rstrip("/") or name
            if typ in _NO_DATA:
                size = 0  # as tarfile/tar(1): links, devices, dirs and FIFOs carry no data
            self._remaining = size
            self._pad = -size % BLOCK
            self._name = name
            yield Member(name, kind, size, _octal(hdr[100:108], "mode"), linkname)
