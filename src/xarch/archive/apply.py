"""Safe application of (untrusted) layer tarballs onto a directory.

Modes:

* ``flatten``: apply layer after layer into one root. ``.wh.<x>`` removes ``x``;
  ``.wh..wh..opq`` removes everything of the directory that this layer did not write itself
  (containerd semantics, so an opaque marker may come before or after the layer's children).
* ``overlay``: extract each layer into its own (empty) directory as an overlayfs lowerdir:
  ``.wh.<x>`` becomes a char device 0/0, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y``
  xattr (``user.overlay.opaque`` when not root: mount with ``userxattr``).

Security rules (violations raise IntegrityError naming the entry; nothing is ever written
outside ``root``; entries written before the bad one stay, so callers extract into a scratch
directory and discard it on error):

* names are cleaned like containerd does: a leading ``/`` is dropped (``/etc/x`` lands at
  ``<root>/etc/x``), a ``..`` that climbs above the root is rejected;
* parent directories are resolved component by component with symlinks scoped to the root
  (``safe_join``), so a symlink from a lower layer pointing at ``/usr`` means ``<root>/usr``;
* writing through a symlink that *this same archive* created and that points outside the root
  (absolute, or ``..`` above the root) is rejected: no real filesystem walk produces such an
  archive, it is the classic "symlink, then file through it" attack;
* hardlink targets are cleaned and resolved the same way, must already exist under the root
  and are linked without following a final symlink;
* symlink loops in a path are rejected; overlayfs xattrs from the archive are dropped (they
  would change the overlay's meaning of our lowerdirs);
* device nodes are created only when running as root (skipped with a warning otherwise).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

from isal import isal_zlib

from xarch.archive.compress import decompress_stream
from xarch.archive.safepath import SymlinkEscapeError, UnsafePathError, clean_name, safe_join
from xarch.archive.whiteout import classify
from xarch.errors import IntegrityError, StoreError, UsageError
from xarch.oci.digest import Digest, Digester

log = logging.getLogger(__name__)

ApplyMode = Literal["flatten", "overlay"]
_CHUNK = 1 << 20
_MALFORMED_ERRNOS = frozenset(
    {
        errno.ENOTDIR,
        errno.ENOENT,
        errno.EEXIST,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENOTEMPTY,
        errno.EINVAL,
        errno.ENAMETOOLONG,
    }
)
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
# the isal stubs do not type IsalError as an exception class
_ISAL_ERROR = cast(type[Exception], isal_zlib.IsalError)


@dataclass(frozen=True)
class ApplyResult:
    entries: int  # tar members processed (whiteouts included)
    diff_id: Digest  # digest of the uncompressed tar stream as read
    uncompressed_size: int
    warnings: tuple[str, ...] = ()


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO, digester: Digester) -> None:
        self._raw = raw
        self._d = digester

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        if not data:
            return 0
        self._d.update(data)
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)


def _is_root() -> bool:
    return os.geteuid() == 0


class _Applier:
    def __init__(self, root: Path, mode: ApplyMode, same_owner: bool, opaque_xattr: str) -> None:
        self.root = root
        self.mode = mode
        self.same_owner = same_owner
        self.opaque_xattr = opaque_xattr
        self.warnings: list[str] = []
        self.written: set[str] = set()  # absolute paths this layer created
        self.created_links: set[str] = set()  # symlinks this layer created
        self.dirs: list[tuple[Path, int, int, int]] = []  # deferred (path, mode, atime, mtime)
        self.entry = ""

    # -- helpers -----------------------------------------------------------------------------
    def _bad(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"unsafe layer entry {self.entry!r}: {why}; refusing to apply the layer"
        )

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s", msg)

    def _is_new_link(self, link: Path) -> bool:
        return str(link) in self.created_links

    def _join(self, rel: str) -> Path:
        try:
            return safe_join(self.root, rel, strict=self._is_new_link)
        except SymlinkEscapeError as e:
            raise self._bad(
                f"writes through symlink {e.link!r} -> {e.target!r} that points outside the root"
            ) from None
        except UnsafePathError as e:
            raise self._bad(str(e).split(": ", 1)[-1]) from None

    def _resolve(self, rel: str) -> Path:
        """The on-disk location for root-relative ``rel`` (final component not followed)."""
        return self._join(os.path.dirname(rel)) / os.path.basename(rel)

    def _mkparents(self, path: Path) -> None:
        """Create missing parents (0755, like containerd's implied directories)."""
        missing: list[Path] = []
        p = path.parent
        while p != self.root:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                missing.append(p)
                p = p.parent
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise self._bad(f"parent {os.path.relpath(p, self.root)!r} is not a directory")
            break
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            self.written.add(str(d))

    def _remove(self, path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)  # rmtree never follows symlinks inside
        else:
            os.unlink(path)

    # -- whiteouts ---------------------------------------------------------------------------
    def _whiteout(self, rel: str, kind: str, target_name: str) -> None:
        parent_rel = os.path.dirname(rel)
        if kind == "whiteout" and target_name in ("", ".", ".."):
            raise self._bad("whiteout names no file")
        parent = self._join(parent_rel)
        if self.mode == "flatten":
            if kind == "opaque":
                self._clear_opaque(parent)
            elif str(parent / target_name) not in self.written:
                # a whiteout hides lower content only, never this layer's own entries
                self._remove(parent / target_name)
            return
        # overlay form
        if kind == "opaque":
            self._mkparents(parent / "x")  # creates ``parent`` itself when missing
            try:
                os.setxattr(parent, self.opaque_xattr, b"y", follow_symlinks=False)
            except OSError as e:
                raise StoreError(
                    f"cannot mark {parent} opaque ({self.opaque_xattr}): {e.strerror}",
                    hint="overlay mode needs root (trusted.*) or a filesystem with user xattrs",
                ) from e
            return
        dest = parent / target_name
        if str(dest) in self.written:
            return
        self._mkparents(dest)
        self._remove(dest)
        try:
            os.mknod(dest, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        except PermissionError as e:
            raise StoreError(
                f"cannot create overlay whiteout {dest}: {e.strerror}",
                hint="overlay mode needs root (CAP_MKNOD); use flatten mode when rootless",
            ) from e
        self.written.add(str(dest))

    def _clear_opaque(self, d: Path) -> None:
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        for name in os.listdir(d):
            child = d / name
            if str(child) in self.written:
                if child.is_dir() and not child.is_symlink():
                    self._clear_opaque(child)
                continue
            self._remove(child)

    # -- members -----------------------------------------------------------------------------
    def member(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        self.entry = ti.name
        try:
            rel = clean_name(ti.name)
        except UnsafePathError as e:
            raise self._bad(str(e).split(": ", 1)[-1]) from None
        if not rel:
            return  # "./": the root's own metadata belongs to whoever owns the root
        base = os.path.basename(rel)
        kind, target_name = classify(base)
        if kind in ("opaque", "whiteout"):
            self._whiteout(rel, kind, target_name)
            return
        if kind == "meta":
            return
        path = self._resolve(rel)
        self._mkparents(path)

        if ti.isdir():
            try:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(path)
                    os.mkdir(path, 0o700)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
        elif ti.islnk():
            self._hardlink(ti, path)
            self.written.add(str(path))
            return  # metadata belongs to the shared inode, already set
        else:
            self._remove(path)
            if ti.isreg():
                self._write_file(tf, ti, path)
            elif ti.issym():
                if not ti.linkname:
                    raise self._bad("symlink with an empty target")
                os.symlink(ti.linkname, path)
                self.created_links.add(str(path))
            elif ti.ischr() or ti.isblk():
                if not _is_root():
                    self._warn(f"skipped device node {rel!r}: creating devices needs root")
                    return
                kind_bits = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                os.mknod(path, kind_bits | (ti.mode & 0o7777), os.makedev(ti.devmajor, ti.devminor))
            elif ti.isfifo():
                os.mkfifo(path, 0o600)
            else:
                self._warn(f"skipped {rel!r}: unsupported tar entry type {ti.type!r}")
                return
        self.written.add(str(path))
        self._metadata(ti, path, rel)

    def _write_file(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            src = tf.extractfile(ti)
            if src is None:
                return
            remaining = ti.size
            while remaining:
                chunk = src.read(min(_CHUNK, remaining))
                if not chunk:
                    raise IntegrityError(f"layer truncated inside {self.entry!r}")
                out.write(chunk)
                remaining -= len(chunk)

    def _hardlink(self, ti: tarfile.TarInfo, path: Path) -> None:
        try:
            target_rel = clean_name(ti.linkname, what="hardlink target")
        except UnsafePathError:
            raise self._bad(f"hardlink target {ti.linkname!r} is outside the root") from None
        if not target_rel:
            raise self._bad("hardlink to the root directory")
        src = self._resolve(target_rel)
        try:
            st = os.lstat(src)
        except (FileNotFoundError, NotADirectoryError):
            raise self._bad(
                f"hardlink target {ti.linkname!r} does not exist (links must point to an earlier entry)"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise self._bad(f"hardlink target {ti.linkname!r} is a directory")
        if src == path:
            return
        self._remove(path)
        os.link(src, path, follow_symlinks=False)

    def _metadata(self, ti: tarfile.TarInfo, path: Path, rel: str) -> None:
        is_link = ti.issym()
        if self.same_owner:
            try:
                os.chown(path, ti.uid, ti.gid, follow_symlinks=False)
            except OSError as e:
                self._warn(f"cannot chown {rel!r} to {ti.uid}:{ti.gid}: {e.strerror}")
        for key, value in sorted(ti.pax_headers.items()):
            if not key.startswith("SCHILY.xattr."):
                continue
            xname = key[len("SCHILY.xattr.") :]
            if xname.startswith(_OVERLAY_XATTR_PREFIXES):
                self._warn(f"dropped overlayfs xattr {xname!r} on {rel!r} from the archive")
                continue
            try:
                os.setxattr(
                    path, xname, value.encode("utf-8", "surrogateescape"), follow_symlinks=False
                )
            except OSError as e:
                self._warn(f"cannot set xattr {xname!r} on {rel!r}: {e.strerror}")
        mtime_ns = round(float(ti.mtime) * 1e9)
        atime_s = ti.pax_headers.get("atime")
        atime_ns = round(float(atime_s) * 1e9) if atime_s else mtime_ns
        mode = ti.mode & 0o7777
        if ti.isdir():
            # Mode and times last: children still to come would bump mtime, and a read-only
            # dir mode would block them when not root.
            self.dirs.append((path, mode, atime_ns, mtime_ns))
            return
        if not is_link:
            os.chmod(path, mode)  # after chown, which clears setuid/setgid
        os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)

    def finish(self) -> None:
        for path, mode, atime_ns, mtime_ns in reversed(self.dirs):
            # A later entry may have replaced this dir, or one of its parents, with a symlink
            # (chmod follows symlinks): only touch it if it still resolves to itself.
            try:
                still = safe_join(self.root, os.path.relpath(path, self.root))
                is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            except (UnsafePathError, FileNotFoundError, NotADirectoryError):
                continue
            if still != path or not is_dir:
                continue
            os.chmod(path, mode)
            os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)


def apply_layer(
    stream: BinaryIO,
    root: str | os.PathLike[str],
    *,
    mode: ApplyMode = "flatten",
    diff_id: str | None = None,
    same_owner: bool | None = None,
    opaque_xattr: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Apply a layer blob (gzip/zstd/plain tar, detected by magic) onto ``root``.

    ``diff_id``: when given, the uncompressed stream must hash to it (IntegrityError otherwise;
    the caller should then throw the root away). ``same_owner`` defaults to "running as root".
    """
    if mode not in ("flatten", "overlay"):
        raise UsageError(f"unknown apply mode {mode!r} (use 'flatten' or 'overlay')")
    rootp = Path(os.path.abspath(root))
    if not rootp.is_dir():
        raise StoreError(f"cannot apply layer: {rootp} is not a directory")
    expected = Digest(diff_id) if diff_id is not None else None
    is_root = _is_root()
    applier = _Applier(
        rootp,
        mode,
        is_root if same_owner is None else same_owner,
        opaque_xattr or ("trusted.overlay.opaque" if is_root else "user.overlay.opaque"),
    )
    digester = Digester(expected.algorithm if expected else "sha256")
    count = 0
    try:
        raw = decompress_stream(stream)
        hashing = _HashingReader(raw, digester)
        reader = io.BufferedReader(hashing, _CHUNK)
        with tarfile.open(fileobj=reader, mode="r|") as tf:
            for ti in tf:
                count += 1
                applier.member(tf, ti)
        # tarfile stops at the first zero block: hash the rest (end blocks, padding) too
        while reader.read(_CHUNK):
            pass
        applier.finish()
    except (tarfile.TarError, EOFError, zlib.error, _ISAL_ERROR, OSError) as e:
        if isinstance(e, OSError) and e.errno in _MALFORMED_ERRNOS:
            # The archive's own structure caused it (a file used as a directory, an empty
            # symlink target, ...): a bad layer, not a local storage problem.
            raise IntegrityError(
                f"malformed layer: cannot apply entry {applier.entry!r}: {e.strerror}"
            ) from e
        if isinstance(e, OSError) and e.errno is not None:
            raise StoreError(
                f"cannot apply layer entry {applier.entry!r} under {rootp}: {e.strerror or e}"
            ) from e
        raise IntegrityError(f"corrupt layer stream near entry {applier.entry!r}: {e}") from e
    finally:
        if on_warning is not None:
            for w in applier.warnings:
                on_warning(w)
    got = digester.digest()
    if expected is not None and got != expected:
        raise IntegrityError(
            f"layer diffID mismatch: expected {expected}, got {got}; the layer content is corrupt "
            "or not the one the image config names"
        )
    return ApplyResult(count, got, digester.size, tuple(applier.warnings))
