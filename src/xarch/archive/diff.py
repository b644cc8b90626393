"""Changesets: what a build step changed, as an ordered stream of TarEntries.

* :func:`diff_overlay_upper` reads an overlayfs upperdir (cheap: overlay already recorded the
  changes). Mount overlays with ``redirect_dir=off,metacopy=off`` (xarch's snapshotter does):
  renamed directories and metadata-only copy-ups cannot be expressed as an OCI changeset and
  raise InputError here.
* :func:`diff_trees` is the copy-based fallback (BuildKit/containerd's double-walking differ):
  compare a lower tree with the full upper tree by type, mode, ownership, xattrs, link target,
  device number, size and mtime; when size and mtime are equal and the mtime has no sub-second
  part (so it may have been truncated by a copy), the contents decide.

Entries come out in the canonical order (component-sorted walk). Changed paths are preceded by
their parent directories (when not already part of the changeset), so every layer carries the
metadata of the directories it writes into, as containerd's change writer does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from xarch.archive.entry import EntryType, TarEntry
from xarch.archive.safepath import short_name
from xarch.archive.tarwriter import (
    clamp_mtime,
    default_xattr_filter,
    entry_from_stat,
    read_xattrs,
    walk_tree,
)
from xarch.archive.whiteout import (
    is_overlay_opaque,
    is_overlay_whiteout,
    opaque_entry,
    overlay_unsupported_xattr,
    whiteout_entry,
)
from xarch.errors import InputError


def diff_overlay_upper(
    upper: str | os.PathLike[str],
    *,
    source_date_epoch: int | None = None,
    xattr_filter: Callable[[str], bool] = default_xattr_filter,
) -> Iterator[TarEntry]:
    """OCI changeset of an overlayfs upperdir (whiteout devices → ``.wh.``, opaque → ``.wh..wh..opq``)."""
    root = Path(upper)
    wh_mtime = 0  # whiteouts: mtime 0 whatever the epoch, as BuildKit v0.32 writes them
    seen: dict[tuple[int, int], str] = {}
    for rel, full, st in walk_tree(root):
        bad = overlay_unsupported_xattr(full)
        if bad is not None:
            raise InputError(
                f"overlay upperdir {root}: {short_name(rel)} carries {bad}; mount the overlay with "
                "redirect_dir=off,metacopy=off or use the copy-based differ"
            )
        if is_overlay_whiteout(full, st):
            yield whiteout_entry(rel, mtime=wh_mtime)
            continue
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
        if e is None:
            continue
        yield e
        if e.type is EntryType.DIR and is_overlay_opaque(full):
            yield opaque_entry(rel, mtime=wh_mtime)


def _same_content(a: Path, b: Path, bufsize: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(bufsize), fb.read(bufsize)
            if ca != cb:
                return False
            if not ca:
                return True


def _same(
    lpath: Path, lst: os.stat_result, upath: Path, ust: os.stat_result, xf: Callable[[str], bool]
) -> bool:
    if stat.S_IFMT(lst.st_mode) != stat.S_IFMT(ust.st_mode):
        return False
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return False
    is_dev = stat.S_ISCHR(ust.st_mode) or stat.S_ISBLK(ust.st_mode)
    if is_dev and lst.st_rdev != ust.st_rdev:
        return False
    if read_xattrs(lpath, xf) != read_xattrs(upath, xf):
        return False
    if stat.S_ISLNK(ust.st_mode):
        return os.readlink(lpath) == os.readlink(upath)
    if stat.S_ISDIR(ust.st_mode):
        return True  # children are compared on their own; dir mtimes churn with every change
    if lst.st_size != ust.st_size or lst.st_mtime_ns != ust.st_mtime_ns:
        return False
    if stat.S_ISREG(ust.st_mode) and ust.st_mtime_ns % 1_000_000_000 == 0:
        # whole-second mtimes may come from a truncating copy: only the bytes can tell
        return _same_content(lpath, upath)
    return True


def _names(d: Path | None) -> set[str]:
    if d is None:
        return set()
    try:
        return set(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def diff_trees(
    lower: str | os.PathLike[str],
    upper: str | os.PathLike[str],
    *,
    source_date_epoch: int | None = None,
    xattr_filter: Callable[[str], bool] = default_xattr_filter,
) -> Iterator[TarEntry]:
    """OCI changeset turning the tree ``lower`` into the tree ``upper`` (copy-based differ)."""
    lroot, uroot = Path(lower), Path(upper)
    wh_mtime = 0  # whiteouts: mtime 0 whatever the epoch, as BuildKit v0.32 writes them
    seen: dict[tuple[int, int], str] = {}
    # Directories we descended into without emitting them yet: [entry, emitted?]
    pending: list[list[object]] = []

    def make(rel: str, full: Path, st: os.stat_result) -> TarEntry | None:
        link = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            link = seen.get(key)  # only links to files written in this same layer
            if link is None:
                seen[key] = rel
        return entry_from_stat(
            full,
            rel,
            st,
            source_date_epoch=source_date_epoch,
            xattr_filter=xattr_filter,
            hardlink_to=link,
        )

    def flush() -> Iterator[TarEntry]:
        for item in pending:
            if not item[1]:
                item[1] = True
                assert isinstance(item[0], TarEntry)
                yield item[0]

    def added_subtree(rel: str) -> Iterator[TarEntry]:
        for sub, full, st in walk_tree(uroot, rel):
            e = make(sub, full, st)
            if e is not None:
                yield e

    def walk(rel: str) -> Iterator[TarEntry]:
        ldir = lroot / rel if rel else lroot
        udir = uroot / rel if rel else uroot
        names = sorted(
            _names(ldir) | _names(udir), key=lambda n: n.encode("utf-8", "surrogateescape")
        )
        for name in names:
            r = f"{rel}/{name}" if rel else name
            lpath, upath = ldir / name, udir / name
            try:
                lst: os.stat_result | None = os.lstat(lpath)
            except (FileNotFoundError, NotADirectoryError):
                lst = None
            try:
                ust: os.stat_result | None = os.lstat(upath)
            except (FileNotFoundError, NotADirectoryError):
                ust = None
            if ust is None:
                if lst is not None:
                    yield from flush()
                    yield whiteout_entry(r, mtime=wh_mtime)
                continue
            same = lst is not None and _same(lpath, lst, upath, ust, xattr_filter)
            if not same:
                e = make(r, upath, ust)
                if e is None:
                    continue
                yield from flush()
                yield e
                if e.type is EntryType.DIR:
                    if lst is not None and stat.S_ISDIR(lst.st_mode):
                        pending.append([e, True])
                        yield from walk(r)
                        pending.pop()
                    else:
                        yield from added_subtree(r)
                continue
            if stat.S_ISDIR(ust.st_mode):
                e = make(r, upath, ust)
                pending.append([e, False])
                yield from walk(r)
                pending.pop()

    yield from walk("")


def clamp_entries(entries: Iterator[TarEntry], source_date_epoch: int | None) -> Iterator[TarEntry]:
    """Re-clamp mtimes of entries from elsewhere (e.g. the file ops of the solver)."""
    import dataclasses

    for e in entries:
        m = clamp_mtime(e.mtime, source_date_epoch)
        yield e if m == e.mtime else dataclasses.replace(e, mtime=m)


__all__ = ["clamp_entries", "diff_overlay_upper", "diff_trees"]
