"""COPY/ADD/WORKDIR file operations with BuildKit's (fsutil copy) semantics.

The rules users rely on, all from BuildKit:
- A source directory's *contents* are copied, not the directory itself.
- A source file lands at ``dest/<name>`` when ``dest`` ends in ``/`` or is an existing
  directory, else at ``dest``. Missing parents of ``dest`` are created (0755).
- Wildcards (``*``, ``?``, ``[...]``) match per path component below the first wildcard; a
  wildcard matching nothing copies nothing, a missing literal path is an error.
- The top-level source is followed if it is a symlink; everything below is copied as is.
- Files from the build context are owned by 0:0 unless ``--chown``; files from a stage or an
  image keep their owner. ``--chmod`` applies to every copied file and directory.
- ``.dockerignore`` exclusions make context files invisible; ``--exclude`` does the same for
  one COPY; ``--parents`` keeps the source path below the ``/./`` pivot (or the full path).

Every destination path is resolved with ``safe_join`` inside the destination root, so a
symlink in the image can never redirect a copy outside it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from xarch.archive.safepath import safe_join
from xarch.errors import InputError, NotFoundError
from xarch.frontend.dockerfile.dockerignore import PatternMatcher, filepath_match

Visible = Callable[[str, bool], bool]


@dataclass(frozen=True)
class CopySpec:
    sources: tuple[str, ...]
    dest: str  # absolute in the destination root; a trailing "/" means "a directory"
    owner: tuple[int, int] | None = None  # None: keep (stage/image) or 0:0 (context)
    mode: int | None = None
    excludes: tuple[str, ...] = ()
    parents: bool = False
    from_context: bool = True
    # mtime (seconds) of the directories the COPY creates implicitly (the missing parents,
    # or a "dest/" that does not exist yet). None: whenever they were written, as BuildKit
    # does. The worker passes the build's start (or SOURCE_DATE_EPOCH), so every platform
    # of one build writes an identical layer for the same COPY.
    created_mtime: int | None = None


def _has_wildcard(component: str) -> bool:
    i = 0
    while i < len(component):
        ch = component[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


def clean_rel(p: str) -> str:
    """``p`` as a clean root-relative path ("" for the root); ``..`` cannot climb out."""
    parts: list[str] = []
    for c in p.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if parts:
                parts.pop()
            continue
        parts.append(c)
    return "/".join(parts)


class DigestCache:
    """sha256 of context files by stat identity, kept across builds in one JSON file (BuildKit
    keeps such a content-hash cache with its snapshots), so a no-change rebuild of a large
    context reads no file content.

    An entry is trusted only while the file's device, inode, size, mtime and ctime are all
    unchanged: any write moves ctime, which no user can set back. A file changed within the
    last ``RACY_NS`` when it was hashed is not remembered (git's "racy" rule: a second write
    within one timestamp tick could leave every field equal).
    """

    RACY_NS = 2_000_000_000
    MAX_ENTRIES = 200_000
    VERSION = 1

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[object]] = {}
        self._used: set[str] = set()
        self._dirty = False
        if path is not None:
            try:
                doc = json.loads(path.read_bytes())
                if isinstance(doc, dict) and doc.get("version") == self.VERSION:
                    entries = doc.get("files")
                    if isinstance(entries, dict):
                        self._entries = entries
            except (OSError, ValueError):
                pass  # no cache or a damaged one: everything is hashed again

    @staticmethod
    def _ident(st: os.stat_result) -> list[object]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def get(self, path: str, st: os.stat_result) -> str | None:
        with self._lock:
            e = self._entries.get(path)
            if e is None or e[:5] != self._ident(st) or not isinstance(e[5], str):
                return None
            self._used.add(path)
            return e[5]

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < self.RACY_NS:
            return
        with self._lock:
            self._entries[path] = [*self._ident(st), digest]
            self._used.add(path)
            self._dirty = True

    def save(self) -> None:
        """Write the cache (temp file + rename) if this build learned something."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            entries = self._entries
            if len(entries) > self.MAX_ENTRIES:  # keep this build's files, then any others
                keep = {k: entries[k] for k in self._used if k in entries}
                for k, v in entries.items():
                    if len(keep) >= self.MAX_ENTRIES:
                        break
                    keep.setdefault(k, v)
                entries = keep
            data = json.dumps({"version": self.VERSION, "files": entries},
                              separators=(",", ":")).encode()
            self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: losing it costs time, never correctness


class SourceTree:
    """A read-only source root with an optional visibility filter (dockerignore)."""

    def __init__(self, root: Path, ignore: PatternMatcher | None = None,
                 cache: DigestCache | None = None) -> None:
        self.root = root
        self._ignore = ignore
        self.cache = cache
        # file digests by stat identity: one build hashes each file once, even when several
        # platforms ask at the same moment (a per-file lock makes the others wait)
        self.digests: dict[tuple[object, ...], str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def file_digest(self, path: str) -> str:
        st = os.stat(path)
        ident = DigestCache._ident(st)
        key = (path, *ident)
        d = self.digests.get(key)
        if d is not None:
            return d
        with self._locks_lock:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            d = self.digests.get(key)
            if d is None and self.cache is not None:
                d = self.cache.get(path, st)
            if d is None:
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                d = h.hexdigest()
                if self.cache is not None and DigestCache._ident(os.stat(path)) == ident:
                    self.cache.put(path, st, d)
            self.digests[key] = d
            return d

    def visible(self, rel: str) -> bool:
        if not rel or self._ignore is None:
            return True
        return not self._ignore.matches(rel)

    def may_contain_visible(self, rel: str) -> bool:
        """An ignored directory may still hold re-included (``!pattern``) children."""
        if self._ignore is None or self.visible(rel):
            return True
        return self._ignore.exclusions and self._ignore.could_reinclude_under(rel)

    def resolve(self, rel: str, *, follow: bool = True) -> Path:
        return safe_join(self.root, rel, follow_final=follow)

    def expand(self, pattern: str) -> list[str]:
        """Root-relative paths a source pattern names ([] for a wildcard matching nothing)."""
        rel = clean_rel(pattern)
        comps = rel.split("/") if rel else []
        first = next((i for i, c in enumerate(comps) if _has_wildcard(c)), None)
        if first is None:
            path = self.resolve(rel)
            if not os.path.lexists(path) or not self.visible(rel):
                raise NotFoundError(f'"/{rel}": not found', hint="check the path and .dockerignore")
            return [rel]
        base = "/".join(comps[:first])
        rest = "/".join(comps[first:])
        base_path = self.resolve(base)
        if not base_path.is_dir():
            return []
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base_path):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, base_path)
            rel_dir = "" if rel_dir == "." else rel_dir
            keep: list[str] = []
            for name in sorted(dirnames + filenames):
                candidate = f"{rel_dir}/{name}" if rel_dir else name
                full_rel = f"{base}/{candidate}" if base else candidate
                if filepath_match(rest, candidate):
                    if self.visible(full_rel):
                        out.append(full_rel)
                    continue  # a matched directory is copied whole, not searched further
                if name in dirnames and candidate.count("/") < rest.count("/"):
                    keep.append(name)
            dirnames[:] = [d for d in dirnames if d in keep]
        return out


def _mkdir_all(
    root: Path,
    rel_dir: str,
    owner: tuple[int, int] | None,
    created: list[Path] | None = None,
    mode: int = 0o755,
) -> Path:
    """Create ``rel_dir`` (and parents) under root with ``mode`` (0755; a COPY's ``--chmod``
    mode, as BuildKit gives every directory a COPY creates), owned by ``owner`` when given;
    ``created`` collects what was made.

    The path is resolved inside root first (symlinks scoped to root, as fs.RootPath), then
    the missing tail is created: nothing can be created outside root.
    """
    target = safe_join(root, rel_dir) if rel_dir else root
    missing: list[Path] = []
    cur = target
    while not os.path.lexists(cur):
        missing.append(cur)
        cur = cur.parent
    if not cur.is_dir():
        raise InputError(f"cannot copy to non-directory: /{os.path.relpath(cur, root)}")
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, mode)  # umask must not matter
        if owner is not None:
            os.lchown(path, *owner)
        if created is not None:
            created.append(path)
    return target


def _copy_meta(src_st: os.stat_result, dst: Path, owner: tuple[int, int] | None, mode: int | None,
               from_context: bool) -> None:
    uid, gid = owner if owner is not None else ((0, 0) if from_context else (src_st.st_uid, src_st.st_gid))
    os.lchown(dst, uid, gid)
    if not stat.S_ISLNK(src_st.st_mode):
        perm = mode if mode is not None else stat.S_IMODE(src_st.st_mode)
        os.chmod(dst, perm)
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(src: Path, dst: Path) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue  # overlayfs bookkeeping of the source snapshot, never content
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


class _Copier:
    def __init__(self, tree: SourceTree, dst_root: Path, spec: CopySpec, excludes: PatternMatcher | None):
        self.tree = tree
        self.dst_root = dst_root
        self.spec = spec
        self.excludes = excludes
        self.inodes: dict[tuple[int, int], Path] = {}

    def excluded(self, rel_below: str) -> bool:
        return bool(self.excludes is not None and rel_below and self.excludes.matches(rel_below))

    def copy(self, src: Path, src_rel: str, below: str, dst: Path, top: bool) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            created = False
            try:
                dst_st = os.lstat(dst)
                if not stat.S_ISDIR(dst_st.st_mode):
                    raise InputError(f"cannot copy to non-directory: {self._show(dst)}")
            except FileNotFoundError:
                os.mkdir(dst, 0o700)
                created = True
            for name in sorted(os.listdir(src)):
                child_rel = f"{src_rel}/{name}" if src_rel else name
                child_below = f"{below}/{name}" if below else name
                if not self.tree.may_contain_visible(child_rel) or self.excluded(child_below):
                    continue
                if not self.tree.visible(child_rel):
                    # ignored dir that may hold re-included children: descend without creating
                    self._copy_reincluded(src / name, child_rel, child_below, dst / name)
                    continue
                self.copy(src / name, child_rel, child_below, dst / name, top=False)
            if created or not top:
                _copy_meta(st, dst, self.spec.owner, self.spec.mode, self.spec.from_context)
                _copy_xattrs(src, dst)
            return
        # not a directory: replace whatever non-directory is there
        try:
            dst_st = os.lstat(dst)
            if stat.S_ISDIR(dst_st.st_mode):
                raise InputError(f"cannot replace to directory {self._show(dst)} with file")
            os.unlink(dst)
        except FileNotFoundError:
            pass
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            linked = self.inodes.get(key) if st.st_nlink > 1 else None
            if linked is not None:
                os.link(linked, dst)
                return
            shutil.copyfile(src, dst, follow_symlinks=False)
            if st.st_nlink > 1:
                self.inodes[key] = dst
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(dst, st.st_mode, st.st_rdev)
        else:
            return  # sockets and the like are not copied, as fsutil
        _copy_meta(st, dst, self.spec.owner, self.spec.mode, self.spec.from_context)
        _copy_xattrs(src, dst)

    def _copy_reincluded(self, src: Path, src_rel: str, below: str, dst: Path) -> None:
        if not os.path.isdir(src) or os.path.islink(src):
            return
        for name in sorted(os.listdir(src)):
            child_rel = f"{src_rel}/{name}"
            child_below = f"{below}/{name}"
            if self.excluded(child_below) or not self.tree.may_contain_visible(child_rel):
                continue
            if self.tree.visible(child_rel):
                parent = PurePosixPath(os.path.relpath(dst, self.dst_root)).as_posix()
                _mkdir_all(self.dst_root, parent, self.spec.owner)
                self.copy(src / name, child_rel, child_below, dst / name, top=False)
            else:
                self._copy_reincluded(src / name, child_rel, child_below, dst / name)

    def _show(self, p: Path) -> str:
        return "/" + os.path.relpath(p, self.dst_root)


def _parents_rel(rel: str, pattern: str) -> str:
    """--parents: the part of ``rel`` to keep (below a ``/./`` pivot in the pattern, if any)."""
    # BuildKit cuts the pattern at its first "/./" as written: a leading "./" is not a pivot
    # ("./src/./lib/x" pivots at src), while "/./x" pivots at the root.
    if "/./" in pattern:
        pivot = clean_rel(pattern.split("/./", 1)[0])
        if pivot and rel.startswith(pivot + "/"):
            return rel[len(pivot) + 1 :]
    return rel


def copy(tree: SourceTree, dst_root: Path, spec: CopySpec) -> int:
    """Perform one COPY into ``dst_root``. Returns the number of top-level sources copied."""
    excludes = PatternMatcher(list(spec.excludes)) if spec.excludes else None
    dest = spec.dest
    dest_is_dir = dest.endswith("/") or dest in ("", ".")
    matches: list[tuple[str, str]] = []
    for pattern in spec.sources:
        for rel in tree.expand(pattern):
            if excludes is not None and rel and excludes.matches(rel):
                continue
            matches.append((pattern, rel))
    if len(matches) > 1 and not dest_is_dir and len(spec.sources) > 1:
        raise InputError(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
        )
    dest_clean = clean_rel(dest)
    # fsutil: ensure the parent of dest (or dest itself when it ends in "/") exists
    ensure = dest_clean if dest_is_dir else str(PurePosixPath("/" + dest_clean).parent).lstrip("/")
    made: list[Path] = []
    # every directory the COPY creates (dest, its parents, --parents' path) gets the --chmod
    # mode, as in BuildKit (its copy applies the mode to what it creates); 0755 without one
    dir_mode = spec.mode if spec.mode is not None else 0o755
    _mkdir_all(dst_root, ensure, spec.owner, made, dir_mode)
    copier = _Copier(tree, dst_root, spec, excludes)
    for pattern, rel in matches:
        # hardlink groups are kept within what one match copies (a directory's tree), never
        # across two sources or two wildcard matches of one COPY: BuildKit copies each match
        # on its own (corpus case hardlinks-from-stage)
        copier.inodes = {}
        src = tree.resolve(rel, follow=True)
        target_rel = dest_clean
        if spec.parents:
            keep = _parents_rel(rel, pattern)
            target_rel = f"{dest_clean}/{keep}" if dest_clean else keep
            _mkdir_all(dst_root, str(PurePosixPath("/" + target_rel).parent).lstrip("/"), spec.owner,
                       made, dir_mode)
            target = safe_join(dst_root, target_rel)
            # --exclude matches the path kept under dest (from the pivot), as BuildKit's copy
            # of the whole source root does: "*.log" spares src/a/x.log (copy-exclude-parents)
            copier.copy(src, rel, keep, target, top=True)
            continue
        target = safe_join(dst_root, target_rel) if target_rel else dst_root
        src_is_dir = src.is_dir()  # src was resolved with the top-level symlink followed
        dst_exists = os.path.lexists(target)
        if not src_is_dir and (dest_is_dir or (dst_exists and target.is_dir())):
            target_rel = f"{target_rel}/{PurePosixPath(rel).name}" if target_rel else PurePosixPath(rel).name
            target = safe_join(dst_root, target_rel)
        elif src_is_dir and not dst_exists:
            # created like a parent (the --chmod mode or 0755, not the source's metadata):
            # what BuildKit writes for COPY --chmod=600 dir /d (corpus case copy-chmod)
            _mkdir_all(dst_root, target_rel, spec.owner, made, dir_mode)
        copier.copy(src, rel, "", target, top=True)
    if spec.created_mtime is not None:
        ns = spec.created_mtime * 1_000_000_000
        for path in made:
            os.utime(path, ns=(ns, ns), follow_symlinks=False)
    return len(matches)


def checksum(tree: SourceTree, sources: tuple[str, ...], excludes: tuple[str, ...] = ()) -> str:
    """Content checksum of what a COPY reads: paths, types, modes, owners, link targets, bytes.

    mtimes are left out on purpose (BuildKit does too): touching a file must not bust the cache.
    """
    h = hashlib.sha256()
    ex = PatternMatcher(list(excludes)) if excludes else None
    for pattern in sources:
        h.update(b"P" + pattern.encode() + b"\0")
        try:
            rels = tree.expand(pattern)
        except NotFoundError:
            h.update(b"missing\0")
            continue
        for rel in rels:
            for path_rel, st, target in _walk(tree, rel):
                below = path_rel[len(rel) :].lstrip("/")
                if ex is not None and below and ex.matches(below):
                    continue
                h.update(f"{path_rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(target.encode() + b"\0")
                elif stat.S_ISREG(st.st_mode):
                    h.update(tree.file_digest(target).encode())
    return "sha256:" + h.hexdigest()


def _walk(tree: SourceTree, rel: str) -> Iterator[tuple[str, os.stat_result, str]]:
    top = tree.resolve(rel, follow=True)
    st = os.lstat(top)
    yield rel, st, str(top) if stat.S_ISREG(st.st_mode) else (os.readlink(top) if stat.S_ISLNK(st.st_mode) else "")
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            sub = os.path.relpath(full, top)
            child_rel = f"{rel}/{sub}" if rel else sub
            if not tree.visible(child_rel):
                continue
            cst = os.lstat(full)
            if stat.S_ISLNK(cst.st_mode):
                yield child_rel, cst, os.readlink(full)
            elif stat.S_ISREG(cst.st_mode):
                yield child_rel, cst, full
            else:
                yield child_rel, cst, ""


def mkdir(root: Path, path: str, owner: tuple[int, int] | None, mode: int = 0o755) -> bool:
    """WORKDIR: create ``path`` with parents. Returns True when something was created."""
    rel = clean_rel(path)
    existed = os.path.isdir(safe_join(root, rel)) if rel else True
    if not existed:
        _mkdir_all(root, rel, owner)
        os.chmod(safe_join(root, rel), mode)
    return not existed
