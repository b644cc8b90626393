"""Path handling that can never leave a root directory.

Two layers of defence, both needed when applying untrusted layer tarballs:

* :func:`clean_name` normalises a tar entry name *lexically* (containerd semantics): a leading
  ``/`` is dropped (``/etc/x`` means ``<root>/etc/x``), ``.`` and empty components vanish, and a
  ``..`` that would climb above the root is an :class:`UnsafePathError`.
* :func:`safe_join` resolves a name *physically* under a root, following symlinks as if the root
  were ``/`` (like securejoin / containerd's ``fs.RootPath``): absolute link targets restart at
  the root and ``..`` is clamped at the root. The result is always inside the root.

Assumption (documented, not enforced): nobody else modifies the tree under ``root`` while we
resolve in it; a concurrent attacker could race lstat() against the use of the returned path.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from collections.abc import Callable
from pathlib import Path

from xarch.errors import IntegrityError

# Linux's own limit on symlinks followed during one path resolution (MAXSYMLINKS is 40; we allow
# more because we re-walk whole link targets, but a loop still terminates quickly).
MAX_SYMLINKS = 255


# A name clean_name would return unchanged: components that are neither empty, "." nor "..",
# joined by single slashes, no NUL.
_ALREADY_CLEAN = re.compile(r"(?!\.\.?(?:/|\Z))[^/\x00]+(?:/(?!\.\.?(?:/|\Z))[^/\x00]+)*")


# Names in error messages are cut here: a hostile archive's 20 KB name must not make a 20 KB
# error line (the size says how much was left out).
MAX_SHOWN_NAME = 100


def short_name(name: str, limit: int = MAX_SHOWN_NAME) -> str:
    """``repr(name)`` for a message, cut after ``limit`` characters: ``'aaa…'…(20480 bytes)``."""
    if len(name) <= limit:
        return repr(name)
    try:
        size = len(name.encode("utf-8", "surrogateescape"))  # the bytes the archive held
    except UnicodeEncodeError:
        size = len(name.encode("utf-8", "surrogatepass"))
    return f"{name[:limit]!r}…({size} bytes)"


class UnsafePathError(IntegrityError):
    """A path (tar entry name, link target) would escape the root it belongs to; ``reason``
    is the message without the name."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def clean_name(name: str, *, what: str = "entry") -> str:
    """Normalise an archive member name to a root-relative POSIX path ('' means the root itself).

    Raises UnsafePathError for NUL bytes or for ``..`` components escaping the root.
    """
    if _ALREADY_CLEAN.fullmatch(name):
        return name  # the common case (one C-level match instead of a Python loop)
    if "\x00" in name:
        why = "name contains a NUL byte"
        raise UnsafePathError(f"unsafe tar {what} {short_name(name)}: {why}", reason=why)
    out: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not out:
                why = "'..' climbs above the extraction root (the archive is malformed or malicious)"
                raise UnsafePathError(f"unsafe tar {what} {short_name(name)}: {why}", reason=why)
            out.pop()
            continue
        out.append(comp)
    return "/".join(out)


class SymlinkEscapeError(UnsafePathError):
    """A strictly checked symlink (see ``safe_join(strict=...)``) points outside the root."""

    def __init__(self, message: str, *, link: str, target: str) -> None:
        super().__init__(message)
        self.link = link
        self.target = target


_END_STRICT = None  # marker in the pending queue: a strict link's expansion ends here


def safe_join(
    root: str | os.PathLike[str],
    name: str,
    *,
    follow_final: bool = True,
    strict: Callable[[Path], bool] | None = None,
) -> Path:
    """Resolve ``name`` under ``root`` treating ``root`` as ``/``; the result never leaves root.

    Every existing component is lstat()ed; symlinks are expanded relative to the root (absolute
    targets restart at the root, ``..`` stops at the root). With ``follow_final=False`` a
    trailing symlink is returned as-is (what an extractor needs to replace or lchown it).
    Nonexistent components are taken literally. A symlink loop raises UnsafePathError.

    ``strict(link_path)`` marks links that must not need that scoping: while expanding such a
    link, an absolute target or a ``..`` above the root raises SymlinkEscapeError instead of
    being clamped (used for links an untrusted archive has just created itself).
    """
    if "\x00" in name:
        raise UnsafePathError(
            f"unsafe path {short_name(name)}: contains a NUL byte", reason="contains a NUL byte"
        )
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        why = "not representable as a file name"
        raise UnsafePathError(f"unsafe path {short_name(name)}: {why}", reason=why) from None
    if name.strip("/") and (name.endswith("/") or name.endswith("/.")):
        follow_final = True  # the kernel's rule: "x/" and "x/." name a directory, links followed
    base = Path(os.path.abspath(root))
    pending: deque[str | None] = deque(name.split("/"))
    resolved: list[str] = []
    links = 0
    strict_stack: list[tuple[str, str]] = []  # (link, target) of strict expansions in progress

    def escape() -> SymlinkEscapeError:
        link, target = strict_stack[0]
        return SymlinkEscapeError(
            f"path {short_name(name)} goes through symlink {short_name(link)} -> "
            f"{short_name(target)} that points outside "
            "the root",
            link=link,
            target=target,
        )

    while pending:
        comp = pending.popleft()
        if comp is _END_STRICT:
            strict_stack.pop()
            continue
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            elif strict_stack:
                raise escape()
            continue
        if not follow_final and all(c in ("", ".") for c in pending):
            resolved.append(comp)
            break
        candidate = base.joinpath(*resolved, comp)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(comp)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            why = f"too many levels of symbolic links under {base} (a loop?)"
            raise UnsafePathError(f"unsafe path {short_name(name)}: {why}", reason=why)
        target = os.readlink(candidate)
        if strict is not None and strict(candidate):
            strict_stack.append(("/".join([*resolved, comp]), target))
            pending.appendleft(_END_STRICT)
        if target.startswith("/"):
            if strict_stack:
                raise escape()
            resolved.clear()
        pending.extendleft(reversed(target.split("/")))
    return base.joinpath(*resolved)


def is_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Lexical containment check (both made absolute, neither resolved)."""
    r = os.path.abspath(root)
    p = os.path.abspath(path)
    return p == r or p.startswith(r.rstrip("/") + "/")
