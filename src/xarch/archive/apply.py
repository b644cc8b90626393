"""Safe application of (untrusted) layer tarballs onto a directory.

Modes:

* ``flatten``: apply layer after layer into one root. ``.wh.<x>`` removes ``x``;
  ``.wh..wh..opq`` removes everything of the directory that this layer did not write itself
  (containerd semantics, so an opaque marker may come before or after the layer's children).
* ``overlay``: extract each layer into its own (empty) directory as an overlayfs lowerdir:
  ``.wh.<x>`` becomes a char device 0/0, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y``
  xattr (``user.overlay.opaque`` when not root: mount with ``userxattr``).

Both modes give the same filesystem (containerd's rule: a layer applies on top of its parents'
merged view). In ``flatten`` mode the parents *are* ``root``. In ``overlay`` mode they are the
``parents`` directories (the layers below, topmost first, each extracted the same way): every
entry's parent path is resolved through the merged view of ``root`` over ``parents``, with
overlayfs' lookup rules (a whiteout or a non-directory hides what is below it, an opaque
directory hides the same directory below) and symlinks from any layer followed inside the
root, and the entry is written at the *physical* path that names. Parent directories this
layer does not have yet are created with the metadata of the lower directory they stand for,
as overlayfs' copy-up does. So ``lib/x/f`` over a lower ``lib -> usr/lib`` lands at
``usr/lib/x/f`` of the layer's directory, and overlayfs (or ``snapshot.flatten``, which copies
layer dirs without following symlinks) shows what ``flatten`` mode builds: an extracted layer
dir only holds physical paths, which is also what an overlay upper dir holds. An extracted
dir therefore depends on its parents: cache it by the chain (ChainID), not the diffID.

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

import contextlib
import errno
import io
import logging
import os
import shutil
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

from isal import isal_zlib

from xarch.archive.compress import TapReader, decompress_stream
from xarch.archive.safepath import (
    MAX_SYMLINKS,
    SymlinkEscapeError,
    UnsafePathError,
    clean_name,
    safe_join,
    short_name,
)
from xarch.archive.whiteout import classify, is_overlay_opaque, is_overlay_whiteout
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


def _is_root() -> bool:
    return os.geteuid() == 0


class _Applier:
    def __init__(
        self,
        root: Path,
        mode: ApplyMode,
        same_owner: bool,
        opaque_xattr: str,
        parents: Sequence[Path] = (),
    ) -> None:
        self.root = root
        self.mode = mode
        self.same_owner = same_owner
        self.opaque_xattr = opaque_xattr
        self.parents = tuple(parents)  # overlay mode: the layer dirs below, topmost first
        self.warnings: list[str] = []
        self.written: set[str] = set()  # absolute paths this layer created
        self.created_links: set[str] = set()  # symlinks this layer created
        # deferred directory (mode, atime, mtime); a later entry for the same dir wins
        self.dirs: dict[Path, tuple[int, int, int]] = {}
        # overlay mode: the last parent resolved (name, result, physical paths looked at), kept
        # across a run of regular files (the bulk of a layer) that do not touch those paths
        self._memo: tuple[str, Path, tuple[str, ...]] | None = None
        self.entry = ""

    # -- helpers -----------------------------------------------------------------------------
    def _bad(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"unsafe layer entry {short_name(self.entry)}: {why}; refusing to apply the layer"
        )

    def _escape(self, link: str, target: str) -> IntegrityError:
        return self._bad(
            f"writes through symlink {short_name(link)} -> {short_name(target)} that "
            "points outside the root"
        )

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s", msg)

    def _is_new_link(self, link: Path) -> bool:
        return str(link) in self.created_links

    def _join(self, rel: str) -> Path:
        """Where directory path ``rel`` is, physically, in ``root``."""
        if self.mode == "overlay":
            return self._merged_join(rel)
        try:
            return safe_join(self.root, rel, strict=self._is_new_link)
        except SymlinkEscapeError as e:
            raise self._escape(e.link, e.target) from None
        except UnsafePathError as e:
            raise self._bad(e.reason) from None

    def _resolve(self, rel: str) -> Path:
        """The on-disk location for root-relative ``rel`` (final component not followed)."""
        return self._join(os.path.dirname(rel)) / os.path.basename(rel)

    # -- the merged view (overlay mode) ------------------------------------------------------
    def _lookup(
        self, layers: Sequence[Path], parts: Sequence[str], comp: str
    ) -> tuple[Path | None, os.stat_result | None, tuple[Path, ...]]:
        """What ``layers`` (topmost first: those whose directory ``parts`` is in the merged
        view) show at ``parts/comp``, by overlayfs' rules: the topmost object's path and lstat
        (None when absent or whited out) and the layers whose directory there is merged
        (empty unless the topmost object is a directory)."""
        top: Path | None = None
        top_st: os.stat_result | None = None
        merged: list[Path] = []
        for layer in layers:
            p = layer.joinpath(*parts, comp)
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_overlay_whiteout(p, st):
                break
            if top is None:
                top, top_st = p, st
            if not stat.S_ISDIR(st.st_mode):
                break  # a non-directory hides everything below (or stops a directory's merge)
            merged.append(layer)
            if is_overlay_opaque(p):
                break
        return top, top_st, tuple(merged)

    def _merged_join(self, rel: str) -> Path:
        """Directory path ``rel`` resolved through the merged view of ``root`` over
        ``parents``: its physical path under ``root``. Symlinks of every layer are followed
        as safe_join does (absolute targets restart at the root, ``..`` stops there);
        missing components are taken literally. A symlink this archive created that points
        outside the root is refused, as in flatten mode."""
        memo = self._memo
        if memo is not None and memo[0] == rel:
            return memo[1]
        every = (self.root, *self.parents)
        pending: deque[str | None] = deque(rel.split("/"))
        parts: list[str] = []
        levels: list[tuple[Path, ...]] = [every]  # merged layers of each dir in ``parts``
        visited: list[str] = []
        strict: list[tuple[str, str]] = []  # expansions of links this archive created
        links = 0
        while pending:
            comp = pending.popleft()
            if comp is None:
                strict.pop()
                continue
            if comp in ("", "."):
                continue
            if comp == "..":
                if parts:
                    parts.pop()
                    levels.pop()
                elif strict:
                    raise self._escape(*strict[0])
                continue
            top, st, merged = self._lookup(levels[-1], parts, comp)
            visited.append(str(self.root.joinpath(*parts, comp)))
            if top is None or st is None or not stat.S_ISLNK(st.st_mode):
                parts.append(comp)
                levels.append(merged)
                continue
            links += 1
            if links > MAX_SYMLINKS:
                raise self._bad("too many levels of symbolic links (a loop?)")
            target = os.readlink(top)
            if self._is_new_link(top):
                strict.append(("/".join([*parts, comp]), target))
                pending.appendleft(None)
            if target.startswith("/"):
                if strict:
                    raise self._escape(*strict[0])
                parts.clear()
                del levels[1:]
            pending.extendleft(reversed(target.split("/")))
        out = self.root.joinpath(*parts)
        self._memo = (rel, out, tuple(visited))
        return out

    def _merged_at(self, path: Path) -> tuple[Path, os.stat_result] | None:
        """The topmost object the merged view shows at physical ``path`` (no symlink
        followed); None when absent, whited out or under a non-directory."""
        parts = path.relative_to(self.root).parts
        layers: tuple[Path, ...] = (self.root, *self.parents)
        for i, comp in enumerate(parts):
            top, st, merged = self._lookup(layers, parts[:i], comp)
            if top is None or st is None:
                return None
            if i == len(parts) - 1:
                return top, st
            layers = merged
        return None

    def _forget(self, path: Path, *, always: bool) -> None:
        """Drop the memoised resolution when this entry may have changed it."""
        if self._memo is None:
            return
        if always:
            self._memo = None
            return
        s = str(path)
        if any(v == s or v.startswith(s + "/") for v in self._memo[2]):
            self._memo = None

    def _copy_meta(self, src: Path, st: os.stat_result, dst: Path) -> None:
        """Owner and xattrs of ``src`` onto ``dst`` now; mode and times now, or at finish()
        for a directory (its children would bump its mtime)."""
        if self.same_owner:
            try:
                os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
            except OSError as e:
                self._warn(f"cannot chown {dst} to {st.st_uid}:{st.st_gid}: {e.strerror}")
        with contextlib.suppress(OSError):
            for name in os.listxattr(src, follow_symlinks=False):
                if name.startswith(_OVERLAY_XATTR_PREFIXES):
                    continue  # overlay bookkeeping of the lower layer, not file content
                with contextlib.suppress(OSError):
                    os.setxattr(
                        dst,
                        name,
                        os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False,
                    )
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            self.dirs[dst] = (mode, st.st_atime_ns, st.st_mtime_ns)
            return
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, mode)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _set_opaque(self, d: Path) -> None:
        try:
            os.setxattr(d, self.opaque_xattr, b"y", follow_symlinks=False)
        except OSError as e:
            raise StoreError(
                f"cannot mark {d} opaque ({self.opaque_xattr}): {e.strerror}",
                hint="overlay mode needs root (trusted.*) or a filesystem with user xattrs",
            ) from e

    def _mkparents(self, path: Path) -> None:
        """Create missing parents: 0755 like containerd's implied directories; in overlay mode
        with the metadata of the lower directory they stand for (a copy-up), and a whiteout of
        this layer becomes an opaque directory (deleted, then created again)."""
        missing: list[Path] = []
        p = path.parent
        while p != self.root:
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):  # or under what is checked next
                missing.append(p)
                p = p.parent
                continue
            if self.mode == "overlay" and is_overlay_whiteout(p, st):
                missing.append(p)
                break
            if not stat.S_ISDIR(st.st_mode):
                raise self._not_dir(p)
            break
        for d in reversed(missing):
            lower = None
            opaque = False
            if self.mode == "overlay":
                if os.path.lexists(d):  # this layer's whiteout
                    os.unlink(d)
                    opaque = True
                else:
                    lower = self._merged_at(d)
                    if lower is not None and not stat.S_ISDIR(lower[1].st_mode):
                        raise self._not_dir(d)
            os.mkdir(d, 0o755)
            self.written.add(str(d))
            if opaque:
                self._set_opaque(d)
            elif lower is not None:
                self._copy_meta(lower[0], lower[1], d)

    def _not_dir(self, p: Path) -> IntegrityError:
        return self._bad(f"parent {short_name(os.path.relpath(p, self.root))} is not a directory")

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
            self._set_opaque(parent)
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
            raise self._bad(e.reason) from None
        if not rel:
            return  # "./": the root's own metadata belongs to whoever owns the root
        base = os.path.basename(rel)
        kind, target_name = classify(base)
        if kind in ("opaque", "whiteout"):
            self._whiteout(rel, kind, target_name)
            self._forget(self.root, always=True)
            return
        if kind == "meta":
            return
        path = self._resolve(rel)
        self._forget(path, always=not ti.isreg())
        self._mkparents(path)

        if ti.isdir():
            try:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    # overlay: a directory over this layer's whiteout must hide the lower one
                    opaque = self.mode == "overlay" and is_overlay_whiteout(path, st)
                    self._remove(path)
                    os.mkdir(path, 0o700)
                    if opaque:
                        self._set_opaque(path)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
        elif ti.islnk():
            self._hardlink(ti, path)
            self.written.add(str(path))
            # The link entry's header is applied to the shared inode, last header wins, as
            # containerd's and BuildKit's untar do (GNU tar keeps the target's): the owner
            # always, mode and times unless the inode is a symlink (no lchmod there).
            self._metadata(ti, path, rel, times_and_mode=not os.path.islink(path))
            return
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
                    self._warn(
                        f"skipped device node {short_name(rel)}: creating devices needs root"
                    )
                    return
                kind_bits = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                os.mknod(path, kind_bits | (ti.mode & 0o7777), os.makedev(ti.devmajor, ti.devminor))
            elif ti.isfifo():
                os.mkfifo(path, 0o600)
            else:
                self._warn(f"skipped {short_name(rel)}: unsupported tar entry type {ti.type!r}")
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
                    raise IntegrityError(f"layer truncated inside {short_name(self.entry)}")
                out.write(chunk)
                remaining -= len(chunk)

    def _hardlink(self, ti: tarfile.TarInfo, path: Path) -> None:
        try:
            target_rel = clean_name(ti.linkname, what="hardlink target")
        except UnsafePathError:
            raise self._bad(
                f"hardlink target {short_name(ti.linkname)} is outside the root"
            ) from None
        if not target_rel:
            raise self._bad("hardlink to the root directory")
        src = self._resolve(target_rel)
        missing = self._bad(
            f"hardlink target {short_name(ti.linkname)} does not exist (links must point to "
            "an earlier entry)"
        )
        try:
            st = os.lstat(src)
        except (FileNotFoundError, NotADirectoryError):
            if self.mode != "overlay":
                raise missing from None
            st = self._copy_up(src, missing)
        if self.mode == "overlay" and is_overlay_whiteout(src, st):
            raise missing
        if stat.S_ISDIR(st.st_mode):
            raise self._bad(f"hardlink target {short_name(ti.linkname)} is a directory")
        if src == path:
            return
        self._remove(path)
        os.link(src, path, follow_symlinks=False)

    def _copy_up(self, dst: Path, missing: IntegrityError) -> os.stat_result:
        """Overlay mode: bring the lower layers' file at ``dst`` into this layer (as overlayfs
        does before it links a lower file), for a hardlink to an earlier layer's file."""
        found = self._merged_at(dst)
        if found is None:
            raise missing
        src, st = found
        if stat.S_ISDIR(st.st_mode):
            return st  # the caller refuses it
        self._mkparents(dst)
        if stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            raise self._bad("hardlink target in a lower layer is not a regular file or symlink")
        self._copy_meta(src, st, dst)
        self.written.add(str(dst))
        return os.lstat(dst)

    def _metadata(self, ti: tarfile.TarInfo, path: Path, rel: str, *,
                  times_and_mode: bool = True) -> None:
        is_link = ti.issym()
        if self.same_owner:
            try:
                os.chown(path, ti.uid, ti.gid, follow_symlinks=False)
            except OSError as e:
                self._warn(f"cannot chown {short_name(rel)} to {ti.uid}:{ti.gid}: {e.strerror}")
        for key, value in sorted(ti.pax_headers.items()):
            if not key.startswith("SCHILY.xattr."):
                continue
            xname = key[len("SCHILY.xattr.") :]
            if xname.startswith(_OVERLAY_XATTR_PREFIXES):
                self._warn(
                    f"dropped overlayfs xattr {short_name(xname)} on {short_name(rel)} from the archive"
                )
                continue
            try:
                os.setxattr(
                    path, xname, value.encode("utf-8", "surrogateescape"), follow_symlinks=False
                )
            except OSError as e:
                self._warn(
                    f"cannot set xattr {short_name(xname)} on {short_name(rel)}: {e.strerror}"
                )
        mtime_ns = round(float(ti.mtime) * 1e9)
        atime_s = ti.pax_headers.get("atime")
        atime_ns = round(float(atime_s) * 1e9) if atime_s else mtime_ns
        mode = ti.mode & 0o7777
        if ti.isdir():
            # Mode and times last: children still to come would bump mtime, and a read-only
            # dir mode would block them when not root.
            self.dirs.pop(path, None)
            self.dirs[path] = (mode, atime_ns, mtime_ns)
            return
        if not times_and_mode:
            return
        if not is_link:
            os.chmod(path, mode)  # after chown, which clears setuid/setgid
        os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)

    def finish(self) -> None:
        for path, (mode, atime_ns, mtime_ns) in reversed(self.dirs.items()):
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
    parents: Sequence[str | os.PathLike[str]] = (),
) -> ApplyResult:
    """Apply a layer blob (gzip/zstd/plain tar, detected by magic) onto ``root``.

    ``diff_id``: when given, the uncompressed stream must hash to it (IntegrityError otherwise;
    the caller should then throw the root away). ``same_owner`` defaults to "running as root".
    ``parents`` (overlay mode only): the extracted dirs of the layers below, topmost first;
    the layer is applied on top of their merged view (see the module docstring).
    """
    if mode not in ("flatten", "overlay"):
        raise UsageError(f"unknown apply mode {mode!r} (use 'flatten' or 'overlay')")
    if parents and mode != "overlay":
        raise UsageError("parents are for overlay mode (in flatten mode they are the root)")
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
        tuple(Path(os.path.abspath(p)) for p in parents),
    )
    digester = Digester(expected.algorithm if expected else "sha256")
    count = 0
    try:
        raw = decompress_stream(stream)
        hashing = TapReader(raw, digester.update)
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
                f"malformed layer: cannot apply entry {short_name(applier.entry)}: {e.strerror}"
            ) from e
        if isinstance(e, OSError) and e.errno is not None:
            raise StoreError(
                f"cannot apply layer entry {short_name(applier.entry)} under {rootp}: "
                f"{e.strerror or e}"
            ) from e
        raise IntegrityError(
            f"corrupt layer stream near entry {short_name(applier.entry)}: {e}"
        ) from e
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
