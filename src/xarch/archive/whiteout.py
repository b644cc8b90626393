"""Whiteouts: how a layer says "deleted" (OCI/AUFS form) and how overlayfs says it on disk.

OCI layer form:     ``dir/.wh.<name>``      <name> was deleted from lower layers
                    ``dir/.wh..wh..opq``    dir is opaque: lower-layer children are hidden
overlayfs form:     char device 0/0 named <name>            (whiteout)
                    xattr trusted.overlay.opaque="y" on dir  (opaque; user.overlay.* when the
                    overlay is mounted with ``userxattr``, i.e. rootless)
"""

from __future__ import annotations

import os
import stat

from xarch.archive.entry import EntryType, TarEntry

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

OVERLAY_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Newer overlayfs (6.7+) may also mark whiteouts as empty files carrying this xattr.
OVERLAY_WHITEOUT_XATTRS = ("trusted.overlay.whiteout", "user.overlay.whiteout")
# Features we cannot turn into a correct changeset: renamed dirs and metadata-only copy-ups.
OVERLAY_UNSUPPORTED_XATTRS = (
    "trusted.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.redirect",
    "user.overlay.metacopy",
)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def whiteout_entry(path: str, *, mtime: int = 0) -> TarEntry:
    """The ``.wh.<name>`` entry deleting ``path``. Mode 0 and a fixed mtime, as containerd
    writes them, so the layer does not depend on when the deletion happened."""
    parent, _, name = path.rpartition("/")
    return TarEntry(_join(parent, WHITEOUT_PREFIX + name), EntryType.FILE, mode=0, mtime=mtime)


def opaque_entry(dir_path: str, *, mtime: int = 0) -> TarEntry:
    return TarEntry(_join(dir_path, OPAQUE_WHITEOUT), EntryType.FILE, mode=0, mtime=mtime)


def classify(name: str) -> tuple[str, str]:
    """('opaque', '') | ('whiteout', <deleted name>) | ('meta', name) | ('none', name)."""
    if name == OPAQUE_WHITEOUT:
        return "opaque", ""
    if name.startswith(WHITEOUT_META_PREFIX):
        return "meta", name  # e.g. AUFS .wh..wh.plnk: bookkeeping, never content
    if name.startswith(WHITEOUT_PREFIX):
        return "whiteout", name[len(WHITEOUT_PREFIX) :]
    return "none", name


def _getxattr(path: str | os.PathLike[str], name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def is_overlay_whiteout(path: str | os.PathLike[str], st: os.stat_result) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return any(_getxattr(path, x) is not None for x in OVERLAY_WHITEOUT_XATTRS)
    return False


def is_overlay_opaque(path: str | os.PathLike[str]) -> bool:
    return any(_getxattr(path, x) == b"y" for x in OVERLAY_OPAQUE_XATTRS)


def overlay_unsupported_xattr(path: str | os.PathLike[str]) -> str | None:
    for x in OVERLAY_UNSUPPORTED_XATTRS:
        if _getxattr(path, x) is not None:
            return x
    return None
