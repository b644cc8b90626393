"""The unit the tar writer consumes: one filesystem object of a layer changeset."""

from __future__ import annotations

import enum
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from xarch.archive.safepath import short_name
from xarch.errors import InputError


class EntryType(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


# Permission bits tar carries (incl. setuid/setgid/sticky); the file type lives in EntryType.
MODE_MASK = 0o7777


@dataclass(frozen=True)
class TarEntry:
    """One layer member. ``path`` is root-relative POSIX, without leading or trailing slash.

    Content for FILE entries comes from ``source`` (read when written) or ``data``; ``size`` must
    match it. ``linkname`` is the symlink target, or the root-relative path a HARDLINK points to.
    ``xattrs`` are sorted (name, value) pairs and end up as PAX ``SCHILY.xattr.*`` records.
    """

    path: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()
    source: Path | None = field(default=None, compare=False)
    data: bytes | None = None

    def __post_init__(self) -> None:
        if not self.path or self.path.startswith("/") or self.path.endswith("/"):
            raise InputError(
                f"invalid layer entry path {short_name(self.path)}: must be relative, no trailing '/'"
            )
        if self.type is not EntryType.FILE and self.size:
            raise InputError(f"layer entry {short_name(self.path)}: only regular files have a size")
        if self.data is not None and len(self.data) != self.size:
            raise InputError(
                f"layer entry {short_name(self.path)}: size {self.size} != len(data) {len(self.data)}"
            )

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def open(self) -> BinaryIO:
        """Open the content of a FILE entry (caller closes)."""
        import io

        if self.data is not None:
            return io.BytesIO(self.data)
        if self.source is None:
            if self.size == 0:
                return io.BytesIO(b"")
            raise InputError(
                f"layer entry {short_name(self.path)} has size {self.size} but no content"
            )
        return open(self.source, "rb")

    def chunks(self, bufsize: int = 1 << 20) -> Iterator[bytes]:
        with self.open() as f:
            while chunk := f.read(bufsize):
                yield chunk


def sort_key(path: str) -> tuple[bytes, ...]:
    """Component-wise byte order: parents before children, siblings sorted like Go's Walk."""
    return tuple(c.encode("utf-8", "surrogateescape") for c in path.split("/"))


def entry_type_of(mode: int) -> EntryType | None:
    """EntryType for a st_mode, None for sockets and other objects tar cannot carry."""
    if stat.S_ISREG(mode):
        return EntryType.FILE
    if stat.S_ISDIR(mode):
        return EntryType.DIR
    if stat.S_ISLNK(mode):
        return EntryType.SYMLINK
    if stat.S_ISCHR(mode):
        return EntryType.CHAR
    if stat.S_ISBLK(mode):
        return EntryType.BLOCK
    if stat.S_ISFIFO(mode):
        return EntryType.FIFO
    return None
