"""Deterministic tar writing (POSIX pax: ustar headers plus extended headers when needed).

Byte-identical output for the same entries: no user/group names, numeric ids only, integer
mtimes (clamped to SOURCE_DATE_EPOCH when given), PAX records sorted by key, extended-header
names derived from the entry name (like Go's archive/tar, "PaxHeaders.0"), and exactly two zero
blocks at the end (no record padding, as Go writes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from xarch.archive.entry import MODE_MASK, EntryType, TarEntry, entry_type_of, sort_key
from xarch.archive.safepath import short_name
from xarch.errors import InputError, StoreError

BLOCK = 512
_TYPEFLAG = {
    EntryType.FILE: b"0",
    EntryType.HARDLINK: b"1",
    EntryType.SYMLINK: b"2",
    EntryType.CHAR: b"3",
    EntryType.BLOCK: b"4",
    EntryType.DIR: b"5",
    EntryType.FIFO: b"6",
}
_MAX_OCTAL_8 = 0o7777777  # 7 digits + NUL
_MAX_OCTAL_12 = 0o77777777777  # 11 digits + NUL

# xattrs that describe the host, not the image: overlayfs bookkeeping (opaque dirs are carried
# as .wh..wh..opq instead) and SELinux labels the runtime assigns anyway.
_DROPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


class Writable(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def default_xattr_filter(name: str) -> bool:
    return not name.startswith(_DROPPED_XATTR_PREFIXES)


def clamp_mtime(mtime: int, source_date_epoch: int | None) -> int:
    """SOURCE_DATE_EPOCH semantics as BuildKit applies them to layers: clamp, never raise."""
    if source_date_epoch is not None and mtime > source_date_epoch:
        return source_date_epoch
    return mtime


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def _ascii_field(s: str, width: int) -> bytes:
    b = s.encode("ascii", "replace")[:width]
    return b + b"\x00" * (width - len(b))


def _is_ascii(s: str) -> bool:
    try:
        s.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    n = len(body)
    length = n + len(str(n))
    while n + len(str(length)) != length:  # the length counts its own digits
        length = n + len(str(length))
    return str(length).encode() + body


def _header(
    name: str,
    typeflag: bytes,
    *,
    mode: int = 0,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    buf = bytearray(BLOCK)
    buf[0:100] = _ascii_field(name, 100)
    buf[100:108] = _octal(mode, 8)
    buf[108:116] = _octal(uid, 8)
    buf[116:124] = _octal(gid, 8)
    buf[124:136] = _octal(size, 12)
    buf[136:148] = _octal(mtime, 12)
    buf[148:156] = b" " * 8
    buf[156:157] = typeflag
    buf[157:257] = _ascii_field(linkname, 100)
    buf[257:263] = b"ustar\x00"
    buf[263:265] = b"00"
    buf[329:337] = _octal(devmajor, 8)
    buf[337:345] = _octal(devminor, 8)
    chksum = sum(buf)
    buf[148:156] = b"%06o\x00 " % chksum
    return bytes(buf)


def _pad(n: int) -> bytes:
    return b"\x00" * (-n % BLOCK)


class TarWriter:
    """Streams tar members into ``out`` (anything with ``write``); ``close`` ends the archive."""

    def __init__(self, out: Writable, *, bufsize: int = 1 << 20) -> None:
        self._out = out
        self._bufsize = bufsize
        self._closed = False
        self.bytes_written = 0

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.bytes_written += len(data)

    def add(self, entry: TarEntry) -> None:
        if self._closed:
            raise StoreError("tar writer already closed")
        name = entry.path + ("/" if entry.type is EntryType.DIR else "")
        pax: dict[str, bytes] = {}
        if len(name.encode("utf-8", "surrogateescape")) > 100 or not _is_ascii(name):
            pax["path"] = name.encode("utf-8", "surrogateescape")
        link = entry.linkname if entry.type in (EntryType.SYMLINK, EntryType.HARDLINK) else ""
        if len(link.encode("utf-8", "surrogateescape")) > 100 or not _is_ascii(link):
            pax["linkpath"] = link.encode("utf-8", "surrogateescape")
        uid, gid, size, mtime = entry.uid, entry.gid, entry.size, entry.mtime
        if not 0 <= uid <= _MAX_OCTAL_8:
            pax["uid"], uid = str(uid).encode(), 0
        if not 0 <= gid <= _MAX_OCTAL_8:
            pax["gid"], gid = str(gid).encode(), 0
        if size > _MAX_OCTAL_12:
            pax["size"], size = str(size).encode(), 0
        if not 0 <= mtime <= _MAX_OCTAL_12:
            pax["mtime"], mtime = str(mtime).encode(), 0
        for xname, xvalue in entry.xattrs:
            pax["SCHILY.xattr." + xname] = xvalue
        if pax:
            data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
            d, _, b = entry.path.rpartition("/")
            pax_name = (d + "/" if d else "") + "PaxHeaders.0/" + b
            self._write(_header(pax_name, b"x", size=len(data)))
            self._write(data + _pad(len(data)))
        self._write(
            _header(
                name,
                _TYPEFLAG[entry.type],
                mode=entry.mode & MODE_MASK,
                uid=uid,
                gid=gid,
                size=size,
                mtime=mtime,
                linkname=link,
                devmajor=entry.devmajor,
                devminor=entry.devminor,
            )
        )
        if entry.type is EntryType.FILE and entry.size:
            written = 0
            for chunk in entry.chunks(self._bufsize):
                if written + len(chunk) > entry.size:
                    chunk = chunk[: entry.size - written]
                self._write(chunk)
                written += len(chunk)
                if written == entry.size:
                    break
            if written != entry.size:
                raise InputError(
                    f"{short_name(str(entry.source or entry.path))}: file shrank while being archived "
                    f"({written} of {entry.size} bytes); do not modify the tree during export"
                )
            self._write(_pad(entry.size))

    def close(self) -> None:
        if not self._closed:
            self._write(b"\x00" * (2 * BLOCK))
            self._closed = True


def write_tar(entries: Iterable[TarEntry], out: Writable) -> int:
    """Write all entries plus the end-of-archive marker; returns bytes written."""
    tw = TarWriter(out)
    for e in entries:
        tw.add(e)
    tw.close()
    return tw.bytes_written


def read_xattrs(
    path: str | os.PathLike[str], xattr_filter: Callable[[str], bool] = default_xattr_filter
) -> tuple[tuple[str, bytes], ...]:
    """Sorted xattrs of ``path`` (not following symlinks); empty where unsupported."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in sorted(names):
        if not xattr_filter(n):
            continue
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


def entry_from_stat(
    full: Path,
    rel: str,
    st: os.stat_result,
    *,
    source_date_epoch: int | None = None,
    xattr_filter: Callable[[str], bool] = default_xattr_filter,
    hardlink_to: str | None = None,
) -> TarEntry | None:
    """TarEntry describing ``full`` (at layer path ``rel``); None for sockets."""
    etype = entry_type_of(st.st_mode)
    if etype is None:
        return None
    mtime = clamp_mtime(st.st_mtime_ns // 1_000_000_000, source_date_epoch)
    common = {
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime": mtime,
        "xattrs": read_xattrs(full, xattr_filter),
    }
    if hardlink_to is not None:
        return TarEntry(rel, EntryType.HARDLINK, linkname=hardlink_to, **common)  # type: ignore[arg-type]
    if etype is EntryType.FILE:
        return TarEntry(rel, etype, size=st.st_size, source=full, **common)  # type: ignore[arg-type]
    if etype is EntryType.SYMLINK:
        return TarEntry(rel, etype, linkname=os.readlink(full), **common)  # type: ignore[arg-type]
    if etype in (EntryType.CHAR, EntryType.BLOCK):
        return TarEntry(
            rel,
            etype,
            devmajor=os.major(st.st_rdev),
            devminor=os.minor(st.st_rdev),
            **common,  # type: ignore[arg-type]
        )
    return TarEntry(rel, etype, **common)  # type: ignore[arg-type]


def _sorted_children(d: Path) -> list[str]:
    return sorted(os.listdir(d), key=lambda n: n.encode("utf-8", "surrogateescape"))


def walk_tree(root: Path, rel: str = "") -> Iterator[tuple[str, Path, os.stat_result]]:
    """Depth-first, component-sorted walk below ``root`` (root itself excluded); never follows
    symlinks."""
    base = root / rel if rel else root
    for name in _sorted_children(base):
        r = f"{rel}/{name}" if rel else name
        full = base / name
        st = os.lstat(full)
        yield r, full, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk_tree(root, r)


def entries_from_tree(
    root: str | os.PathLike[str],
    *,
    source_date_epoch: int | None = None,
    xattr_filter: Callable[[str], bool] = default_xattr_filter,
) -> Iterator[TarEntry]:
    """Every object below ``root`` as TarEntries, in the canonical order.

    A second path to an inode already emitted (st_nlink > 1, same device) becomes a HARDLINK
    to the first path, as in a layer produced by BuildKit.
    """
    rootp = Path(root)
    seen: dict[tuple[int, int], str] = {}
    for rel, full, st in walk_tree(rootp):
        link = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            link = seen.get(key)
            if link is None:
                seen[key] = rel
        e = entry_from_stat(
            full,
            rel,
            st,
            source_date_epoch=source_date_epoch,
            xattr_filter=xattr_filter,
            hardlink_to=link,
        )
        if e is not None:
            yield e


def sorted_entries(entries: Iterable[TarEntry]) -> list[TarEntry]:
    """Canonical order for entries produced out of order (parents before children)."""
    return sorted(entries, key=lambda e: sort_key(e.path))
