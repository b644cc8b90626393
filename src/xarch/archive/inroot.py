"""File operations on a container's root filesystem that can never leave it.

A root is an ``O_PATH`` descriptor (:func:`open_root`); every path is resolved relative to it
the way the kernel resolves paths after ``chroot``: absolute symlink targets restart at the
root and ``..`` stops there (``openat2(RESOLVE_IN_ROOT)`` semantics, which is also how runc
resolves mount targets). Nothing is resolved by joining strings: each component is opened
with ``O_NOFOLLOW`` relative to the descriptor of the directory before it, and a symlink is
expanded by reading it through its own descriptor, so neither a symlink nor a rename
anywhere on the way can point an operation at the host, and there is no window between a
check and the use of what was checked.

``open_in_root`` asks the kernel (``openat2`` with ``RESOLVE_IN_ROOT``, Linux >= 5.6) and
falls back to the same walk where that syscall is missing or filtered. Metadata of an object
held only by an ``O_PATH`` descriptor is changed through ``/proc/self/fd/N``, which names
exactly that inode.

Errors are the kernel's: ``FileNotFoundError``, ``NotADirectoryError`` (``filename`` is the
in-root path), ``OSError(ELOOP)`` for a symlink loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator

# Linux's MAXSYMLINKS: what openat2 allows in one resolution
MAX_SYMLINKS = 40

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_SYS_OPENAT2 = 437  # the same number on every architecture (unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to call through
    _libc = None
# cleared the first time the kernel says it has no openat2 (or a seccomp filter hides it)
_openat2_ok = _libc is not None and hasattr(_libc, "syscall")


def proc_path(fd: int) -> str:
    """A path naming exactly the inode ``fd`` holds (works for ``O_PATH`` descriptors)."""
    return f"/proc/self/fd/{fd}"


def open_root(path: str | os.PathLike[str]) -> int:
    """An ``O_PATH`` descriptor of the directory ``path`` (the caller's own path: followed)."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


@contextlib.contextmanager
def rooted(path: str | os.PathLike[str]) -> Iterator[int]:
    fd = open_root(path)
    try:
        yield fd
    finally:
        os.close(fd)


def _names_dir(path: str) -> bool:
    """The kernel's rule: "x/" and "x/." name a directory, through a final symlink too."""
    return bool(path.strip("/")) and (path.endswith("/") or path.endswith("/."))


def _split(path: str) -> deque[str]:
    if "\x00" in path:
        raise ValueError(f"path {path!r} contains a NUL byte")
    return deque(c for c in path.split("/") if c not in ("", "."))


class _Walk:
    """The directories walked so far: ``fds[0]`` is the root (not owned), ``names`` the
    physical components from the root to ``fds[-1]``."""

    def __init__(self, root_fd: int) -> None:
        self.fds = [root_fd]
        self.names: list[str] = []
        self.links = 0

    @property
    def top(self) -> int:
        return self.fds[-1]

    def rel(self, name: str = "") -> str:
        return "/".join([*self.names, name] if name else self.names)

    def up(self) -> None:
        if len(self.fds) > 1:
            os.close(self.fds.pop())
            self.names.pop()

    def to_root(self) -> None:
        while len(self.fds) > 1:
            self.up()

    def push(self, fd: int, name: str) -> None:
        self.fds.append(fd)
        self.names.append(name)

    def take_top(self) -> int:
        """The top directory's fd for the caller (the root's is duplicated); closes the rest."""
        fd = self.fds.pop() if len(self.fds) > 1 else os.dup(self.fds[0])
        self.close()
        return fd

    def close(self) -> None:
        while len(self.fds) > 1:
            os.close(self.fds.pop())

    def expand(self, link_fd: int, pending: deque[str]) -> None:
        self.links += 1
        if self.links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/" + self.rel())
        target = os.readlink("", dir_fd=link_fd)
        if target.startswith("/"):
            self.to_root()
        pending.extendleft(reversed(_split(target)))


def _open(w: _Walk, comp: str) -> tuple[int, os.stat_result] | None:
    """``comp`` in the walk's top directory, pinned: an ``O_PATH`` fd (a symlink is opened
    itself) and its stat; None when it does not exist."""
    try:
        fd = os.open(comp, _PATH_FLAGS, dir_fd=w.top)
    except FileNotFoundError:
        return None
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def _enotdir(w: _Walk, comp: str) -> NotADirectoryError:
    return NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/" + w.rel(comp))


def lookup(root_fd: int, path: str, *, follow_final: bool = True) -> tuple[int, str]:
    """Resolve ``path`` inside the root up to its last component: ``(fd, name)`` with ``fd``
    an ``O_PATH`` descriptor of the directory that holds the last component and ``name`` its
    physical name there (it may not exist). ``name`` is ``""`` when the path resolves to the
    root itself (``fd`` is then a duplicate of the root's). The caller closes ``fd``.

    With ``follow_final`` a symlink as the last component is followed (inside the root).
    A missing parent directory raises ``FileNotFoundError``.
    """
    w = _Walk(root_fd)
    pending = _split(path)
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                w.up()
                continue
            last = not pending
            if last and not follow_final:
                return w.take_top(), comp
            got = _open(w, comp)
            if got is None:
                if last:
                    return w.take_top(), comp
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                        "/" + w.rel(comp))
            fd, st = got
            if stat.S_ISLNK(st.st_mode):
                try:
                    w.expand(fd, pending)
                finally:
                    os.close(fd)
                continue
            if last or not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                if not last:
                    raise _enotdir(w, comp)
                return w.take_top(), comp
            w.push(fd, comp)
        # the path ended on a directory through a symlink or "..": name it from its parent
        if not w.names:
            return w.take_top(), ""
        name = w.names[-1]
        w.up()
        return w.take_top(), name
    except BaseException:
        w.close()
        raise


def resolve(root_fd: int, path: str, *, follow_final: bool = True) -> str:
    """The physical in-root path ``path`` names ("" for the root), without a leading "/";
    components that do not exist are taken literally (the path a runtime resolving it
    inside the root would create)."""
    follow_final = follow_final or _names_dir(path)
    w = _Walk(root_fd)
    pending = _split(path)
    virtual: list[str] = []  # missing components below the walk's top
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                if virtual:
                    virtual.pop()
                else:
                    w.up()
                continue
            last = not pending
            if virtual or (last and not follow_final):
                virtual.append(comp)
                continue
            got = _open(w, comp)
            if got is None:
                virtual.append(comp)
                continue
            fd, st = got
            if stat.S_ISLNK(st.st_mode):
                try:
                    w.expand(fd, pending)
                finally:
                    os.close(fd)
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                if not last:
                    raise _enotdir(w, comp)
                virtual.append(comp)
                continue
            w.push(fd, comp)
        return "/".join([*w.names, *virtual])
    finally:
        w.close()


def _openat2(root_fd: int, path: str, flags: int, mode: int) -> int | None:
    """openat2(RESOLVE_IN_ROOT); None when the kernel cannot do it (use the walk)."""
    global _openat2_ok
    if not _openat2_ok or _libc is None:
        return None
    creates = bool(flags & os.O_CREAT) or flags & os.O_TMPFILE == os.O_TMPFILE
    how = _OpenHow(flags | os.O_CLOEXEC, mode if creates else 0,
                   _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    raw = os.fsencode(path.lstrip("/") or ".")
    for _ in range(16):
        fd = int(_libc.syscall(_SYS_OPENAT2, root_fd, raw, ctypes.byref(how),
                               ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err == errno.EAGAIN:
            continue  # a concurrent rename elsewhere on the filesystem: try again
        if err == errno.ENOSYS:
            _openat2_ok = False
            return None
        if err == errno.EPERM:
            return None  # a seccomp filter, or a real refusal the walk reports again
        raise OSError(err, os.strerror(err), "/" + path.lstrip("/"))
    return None


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o600, *,
                 follow_final: bool = True, use_openat2: bool = True) -> int:
    """``open(path, flags, mode)`` resolved inside the root. ``follow_final=False`` adds
    ``O_NOFOLLOW`` (with ``O_PATH``: a final symlink is opened itself)."""
    if _names_dir(path):
        flags |= os.O_DIRECTORY
        follow_final = True
    if not follow_final:
        flags |= os.O_NOFOLLOW
    if use_openat2:
        fd = _openat2(root_fd, path, flags, mode)
        if fd is not None:
            return fd
    parent, name = lookup(root_fd, path, follow_final=follow_final)
    try:
        if not name:
            return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=parent)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
    finally:
        os.close(parent)


def mkdir_all(root_fd: int, path: str, mode: int = 0o755, *,
              owner: tuple[int, int] | None = None, created: list[str] | None = None) -> int:
    """Create directory ``path`` and its missing parents inside the root (each ``mode``,
    owned by ``owner`` when given); an ``O_PATH`` fd of it. Existing symlinks on the way are
    followed inside the root. ``created`` collects the in-root paths made."""
    w = _Walk(root_fd)
    pending = _split(path)
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                w.up()
                continue
            fd: int | None = None
            try:
                fd = os.open(comp, _PATH_FLAGS, dir_fd=w.top)
            except FileNotFoundError:
                try:
                    os.mkdir(comp, 0o700, dir_fd=w.top)
                except FileExistsError:
                    pending.appendleft(comp)  # appeared meanwhile: look again
                    continue
                fd = os.open(comp, _PATH_FLAGS, dir_fd=w.top)
                if not stat.S_ISDIR(os.fstat(fd).st_mode):  # pragma: no cover - raced
                    os.close(fd)
                    raise _enotdir(w, comp) from None
                try:
                    if owner is not None:
                        os.chown(proc_path(fd), *owner)
                    os.chmod(proc_path(fd), mode)  # after chown, umask-independent
                except BaseException:
                    os.close(fd)
                    raise
                if created is not None:
                    created.append(w.rel(comp))
                w.push(fd, comp)
                continue
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    w.expand(fd, pending)
                finally:
                    os.close(fd)
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise _enotdir(w, comp)
            w.push(fd, comp)
        return w.take_top()
    except BaseException:
        w.close()
        raise


def walk_nofollow(root_fd: int, path: str) -> int:
    """An ``O_PATH`` fd of ``path`` taken literally: no symlink is followed anywhere, and
    ``..`` is refused. For paths recorded earlier as physical in-root paths: if anything on
    the way is no longer a directory, the path is gone (``FileNotFoundError``)."""
    fd = os.dup(root_fd)
    try:
        for comp in _split(path):
            if comp == "..":
                raise OSError(errno.EINVAL, "'..' in a physical path", path)
            try:
                nxt = os.open(comp, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=fd)
            except (NotADirectoryError, OSError) as e:
                if isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP:
                    # a symlink or a file where the recorded directory was: the path is gone
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from e
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _parent_nofollow(root_fd: int, path: str) -> tuple[int, str]:
    parent, _, name = path.strip("/").rpartition("/")
    if not name or name == "..":
        raise OSError(errno.EINVAL, "not a removable path", path)
    return walk_nofollow(root_fd, parent), name


def unlink_in_root(root_fd: int, path: str) -> None:
    """Remove the non-directory at physical in-root ``path`` (no symlink followed)."""
    parent, name = _parent_nofollow(root_fd, path)
    try:
        os.unlink(name, dir_fd=parent)
    finally:
        os.close(parent)


def rmdir_in_root(root_fd: int, path: str) -> None:
    """Remove the empty directory at physical in-root ``path`` (no symlink followed)."""
    parent, name = _parent_nofollow(root_fd, path)
    try:
        os.rmdir(name, dir_fd=parent)
    finally:
        os.close(parent)


def lstat_in_root(root_fd: int, path: str) -> os.stat_result:
    """lstat of physical in-root ``path`` (no symlink followed on the way either)."""
    parent, name = _parent_nofollow(root_fd, path)
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def read_file(root_fd: int, path: str, *, limit: int = 16 << 20) -> bytes:
    """The bytes of the regular file ``path`` names inside the root (symlinks followed
    inside it). Anything else (a device, a FIFO, a directory) raises OSError: never
    opened for reading, so an image's device node cannot make xarch read a host device."""
    fd = open_in_root(root_fd, path, os.O_PATH)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", "/" + path.lstrip("/"))
        rfd = os.open(proc_path(fd), os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(fd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", "/" + path.lstrip("/"))
    return data
