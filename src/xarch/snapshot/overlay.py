"""Snapshots for build steps: overlayfs over extracted layers, with a copy fallback.

Lifecycle mirrors containerd's snapshotter: ``prepare(key, parents)`` creates an active
snapshot, ``mount``/``unmount`` expose it as a rootfs, ``commit(key)`` freezes it and hands the
differ what it needs, ``remove(key)`` deletes it.

* overlay: parents (topmost first) become ``lowerdir``; the step writes into ``upperdir``, which
  after commit *is* the diff (whiteouts are 0/0 char devices, opaque dirs carry
  ``trusted.overlay.opaque=y``). Mount data is limited to one page, so lowerdirs are passed as
  short symlink names relative to ``<root>/l`` (Docker's overlay2 trick), with ``mount`` run in
  that directory. ``redirect_dir`` and ``metacopy`` are turned off so the upper dir stays a
  plain tree a tar differ understands.
* copy: parents are flattened (whiteouts applied, overlayfs' rules) into ``base``, copied to
  ``merged``; after commit the differ compares ``base`` and ``merged`` (archive's diff_trees).
  Used when overlayfs is unavailable (not root, unsupported backing fs) or when a stack is too
  deep to mount.

Parents must be extracted on top of the parents below them (archive.apply ``parents``): then
both kinds show what flattening the image's layer tars shows (export, sbom).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from xarch.errors import NotFoundError, StoreError, UsageError

Kind = Literal["overlay", "copy"]
Mode = Literal["auto", "overlay", "copy"]

MAX_MOUNT_DATA = 4000  # one page (4096) minus headroom for the kernel's own parsing
MAX_OVERLAY_LOWERS = 500  # OVL_MAX_STACK
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_WH_PREFIX = ".wh."
_WH_OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Mountable:
    """An active snapshot: where the step's rootfs is and where its changes go."""

    key: str
    kind: Kind
    lowers: tuple[Path, ...]  # topmost first
    upper: Path  # overlay: upperdir; copy: the full writable tree (same as merged)
    work: Path | None  # overlay workdir
    merged: Path  # the rootfs path to give the runtime (valid while mounted)
    base: Path | None  # copy: the flattened parents, for diff_trees(base, upper)


@dataclass(frozen=True)
class Committed:
    """What the differ needs: overlay -> ``upper`` alone; copy -> compare ``base`` and ``upper``."""

    key: str
    kind: Kind
    upper: Path
    base: Path | None


def _mounted_paths() -> set[str]:
    out: set[str] = set()
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split(" - ")[0].split()
            if len(fields) >= 5:
                out.add(
                    fields[4].encode().decode("unicode_escape") if "\\" in fields[4] else fields[4]
                )
    except OSError:
        pass
    return out


def is_mounted(path: Path) -> bool:
    return os.path.realpath(path) in _mounted_paths()


def _run(cmd: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # own session: a Ctrl-C at the terminal (sent to the whole process group) must not kill a
    # mount or umount half-way; the interrupt is handled by the process that asked for it
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
                          start_new_session=True)


def _umount(path: Path) -> None:
    if not is_mounted(path):
        return
    res = _run(["umount", str(path)])
    if res.returncode != 0 and is_mounted(path):
        # Something (a straggling process) still holds it: detach lazily so removal can go on.
        res = _run(["umount", "-l", str(path)])
        if res.returncode != 0 and is_mounted(path):
            raise StoreError(f"cannot unmount snapshot at {path}: {res.stderr.strip()}")


def mounts_below(root: Path) -> list[Path]:
    """Mount points at or under ``root`` (per /proc/self/mountinfo), deepest first."""
    top = os.path.realpath(root)
    inside = top.rstrip("/") + "/"
    found = {p for p in _mounted_paths() if p == top or p.startswith(inside)}
    return [Path(p) for p in sorted(found, key=lambda p: (-p.count("/"), p))]


def unmount_below(root: Path) -> list[Path]:
    """Unmount everything mounted at or under ``root``, deepest first (lazily when busy);
    returns the mount points. Raises StoreError when something stays mounted."""
    done: list[Path] = []
    for _ in range(8):  # a mount point can carry stacked mounts: one umount each
        points = mounts_below(root)
        if not points:
            return done
        for mp in points:
            _umount(mp)
            done.append(mp)
    if mounts_below(root):
        raise StoreError(f"cannot unmount everything below {root}")
    return done


# ----------------------------------------------------------------------------- flattening


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path, names: Sequence[str]) -> bool:
    if _WH_OPAQUE in names:
        return True
    for x in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, x, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _rm(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _copy_meta(src: Path, dst: Path, st: os.stat_result) -> None:
    with contextlib.suppress(PermissionError):
        os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        for name in os.listxattr(src, follow_symlinks=False):
            if name.startswith(("trusted.overlay.", "user.overlay.")):
                continue  # overlay bookkeeping is not file content
            os.setxattr(
                dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False
            )
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _apply_layer(layer: Path, dest: Path) -> None:
    """Copy one overlay-style (or AUFS-style ``.wh.``) layer dir onto ``dest``."""
    links: dict[tuple[int, int], Path] = {}
    dir_meta: list[tuple[Path, Path, os.stat_result]] = []

    def walk(src: Path, dst: Path) -> None:
        names = sorted(os.listdir(src))
        if _is_opaque(src, names):
            for child in list(dst.iterdir()):
                _rm(child)
        for name in names:
            s, d = src / name, dst / name
            if name == _WH_OPAQUE:
                continue
            if name.startswith(_WH_PREFIX):
                _rm(dst / name[len(_WH_PREFIX) :])
                continue
            st = s.lstat()
            if _is_whiteout(st):
                _rm(d)
                continue
            if stat.S_ISDIR(st.st_mode):
                if d.is_symlink() or (d.exists() and not d.is_dir()):
                    _rm(d)
                d.mkdir(exist_ok=True)
                walk(s, d)
                dir_meta.append((s, d, st))
                continue
            _rm(d)
            ino = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and ino in links:
                os.link(links[ino], d)
                continue
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(s, d, follow_symlinks=False)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                os.mknod(d, st.st_mode, st.st_rdev)
            else:
                continue  # sockets are not layer content
            _copy_meta(s, d, st)
            if st.st_nlink > 1:
                links[ino] = d

    walk(layer, dest)
    # Directory times last: filling a directory bumps its mtime.
    for s, d, st in dir_meta:
        _copy_meta(s, d, st)
    _copy_meta(layer, dest, layer.stat())


def flatten(lowers_topmost_first: Sequence[Path], dest: Path) -> None:
    """Materialise the union of overlay-style layer dirs into ``dest`` (whiteouts applied).

    Exactly what overlayfs shows for the same lowerdirs: layer dirs hold physical paths only
    (each was extracted on top of its parents' merged view, archive.apply's ``parents``, or is
    an overlay upper dir), so nothing here follows a symlink of ``dest``: a layer's directory
    over a lower symlink or file replaces it, a lower symlink is never written through.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for layer in reversed(list(lowers_topmost_first)):
        _apply_layer(layer, dest)


def _copy_tree(src: Path, dst: Path) -> None:
    res = _run(["cp", "-a", "--reflink=auto", f"{src}/.", str(dst)])
    if res.returncode != 0:
        raise StoreError(f"cannot copy snapshot {src} -> {dst}: {res.stderr.strip()}")


# ----------------------------------------------------------------------------- snapshotter


def overlay_supported(work_dir: Path, *, tag: str = "") -> tuple[bool, str]:
    """Try a real overlay mount under ``work_dir``; (ok, reason). ``tag`` goes into the probe
    directory's name (a snapshotter's owner: what it left when killed can be found)."""
    try:
        if "overlay" not in Path("/proc/filesystems").read_text().split():
            return False, "the kernel has no overlay filesystem"
    except OSError:
        return False, "cannot read /proc/filesystems"
    if os.geteuid() != 0:
        return False, "mounting overlayfs needs root"
    work_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"ovl-probe-{tag}-" if tag else "ovl-probe-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=work_dir) as tmp:
        t = Path(tmp)
        for d in ("l", "u", "w", "m"):
            (t / d).mkdir()
        (t / "l" / "f").write_text("x")
        res = _run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                "lowerdir=l,upperdir=u,workdir=w",
                str(t / "m"),
            ],
            cwd=t,
        )
        if res.returncode != 0:
            return False, f"overlay mount failed on {work_dir}: {res.stderr.strip()}"
        try:
            (t / "m" / "f").unlink()
            ok = _is_whiteout((t / "u" / "f").lstat())
        except OSError as e:
            ok = False
            res.stderr = str(e)
        finally:
            _umount(t / "m")
        if not ok:
            return False, "overlay mounted but did not record a whiteout"
    return True, f"overlay mount works on {work_dir}"


class Snapshotter:
    """Active and committed snapshots under ``root`` (one directory per key).

    Thread-safe; metadata changes also take an ``flock`` on ``root/.lock`` so two processes
    sharing a root do not trip over each other. ``owner`` (a build's lease id) is written into
    every snapshot it prepares, before anything else, so :meth:`remove_owned` finds what a
    killed or cancelled owner left mounted.
    """

    def __init__(
        self,
        root: Path,
        *,
        mode: Mode = "auto",
        max_lowers: int = MAX_OVERLAY_LOWERS,
        owner: str | None = None,
    ) -> None:
        if mode not in ("auto", "overlay", "copy"):
            raise UsageError(f"unknown snapshotter mode {mode!r} (auto, overlay or copy)")
        self.root = root
        self.mode = mode
        self.max_lowers = max_lowers
        if owner is not None and (not owner or "/" in owner or "\x00" in owner):
            raise UsageError(f"invalid snapshot owner {owner!r}")
        self.owner = owner
        self._lock = threading.RLock()
        self._kind: Kind | None = None
        self.kind_reason = ""
        for d in ("s", "l", "empty"):
            (root / d).mkdir(parents=True, exist_ok=True)

    # -- helpers

    @property
    def kind(self) -> Kind:
        """The snapshot kind new snapshots get (auto probes overlayfs once)."""
        with self._lock:
            if self._kind is None:
                if self.mode == "copy":
                    self._kind, self.kind_reason = "copy", "copy mode requested"
                else:
                    ok, why = overlay_supported(self.root / "probe", tag=self.owner or "")
                    if not ok and self.mode == "overlay":
                        raise StoreError(
                            f"overlay snapshots unavailable: {why}", hint="use the copy snapshotter"
                        )
                    self._kind, self.kind_reason = ("overlay" if ok else "copy"), why
            return self._kind

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        with self._lock, open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _dir(self, key: str) -> Path:
        if not key or "\x00" in key:
            raise UsageError(f"invalid snapshot key {key!r}")
        return self.root / "s" / hashlib.sha256(key.encode()).hexdigest()[:16]

    def _meta(self, key: str) -> dict[str, object]:
        p = self._dir(key) / "meta.json"
        try:
            meta = json.loads(p.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"snapshot {key!r} does not exist in {self.root}") from None
        except (OSError, ValueError) as e:
            raise StoreError(f"snapshot {key!r} metadata unreadable at {p}: {e}") from e
        if meta.get("key") != key:
            raise StoreError(
                f"snapshot directory {p.parent} belongs to {meta.get('key')!r}, not {key!r}"
            )
        return dict(meta)

    def _save(self, key: str, meta: dict[str, object]) -> None:
        d = self._dir(key)
        tmp = d / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, d / "meta.json")

    def _link(self, lower: Path) -> str:
        """Short relative name for a lowerdir (keeps mount data under one page)."""
        target = os.path.realpath(lower)
        name = hashlib.sha256(target.encode()).hexdigest()[:10]
        link = self.root / "l" / name
        try:
            link.symlink_to(target)
        except FileExistsError:
            if os.readlink(link) != target:  # pragma: no cover - 40-bit hash collision
                raise StoreError(f"lowerdir link collision at {link}") from None
        return name

    def _mountable(self, key: str, meta: dict[str, object]) -> Mountable:
        d = self._dir(key)
        kind: Kind = "overlay" if meta["kind"] == "overlay" else "copy"
        lowers = tuple(Path(str(p)) for p in meta["lowers"])  # type: ignore[attr-defined]
        if kind == "overlay":
            return Mountable(key, kind, lowers, d / "u", d / "w", d / "m", None)
        return Mountable(key, kind, lowers, d / "m", None, d / "m", d / "base")

    def _overlay_options(self, key: str, lowers: Sequence[Path]) -> str:
        rel = f"../s/{self._dir(key).name}"
        names = [self._link(p) for p in lowers] or ["../empty"]
        return f"lowerdir={':'.join(names)},upperdir={rel}/u,workdir={rel}/w"

    # -- lifecycle

    def prepare(self, key: str, parents: Sequence[Path]) -> Mountable:
        """Create an active snapshot over ``parents`` (topmost layer first)."""
        lowers = [Path(p) for p in parents]
        for p in lowers:
            if not p.is_dir():
                raise NotFoundError(f"snapshot parent {p} is not a directory")
        kind = self.kind
        if kind == "overlay" and (
            len(lowers) > self.max_lowers
            or len(self._overlay_options(key, lowers)) + 64 > MAX_MOUNT_DATA
        ):
            kind = "copy"  # too deep to mount in one page: flatten instead
        with self._flock():
            d = self._dir(key)
            if d.exists():
                raise StoreError(
                    f"snapshot {key!r} already exists in {self.root}", hint="remove it first"
                )
            d.mkdir()
            try:
                if self.owner is not None:
                    (d / "owner").write_text(self.owner)
                meta: dict[str, object] = {
                    "key": key,
                    "kind": kind,
                    "lowers": [str(p) for p in lowers],
                    "state": "active",
                }
                if kind == "overlay":
                    for sub in ("u", "w", "m"):
                        (d / sub).mkdir()
                else:
                    flatten(lowers, d / "base")
                    (d / "m").mkdir()
                    _copy_tree(d / "base", d / "m")
                self._save(key, meta)
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                raise
        return self._mountable(key, meta)

    def mounts(self, key: str) -> Mountable:
        return self._mountable(key, self._meta(key))

    def mount(self, key: str) -> Path:
        """Make the snapshot's rootfs available; returns its path. Idempotent."""
        with self._flock():
            meta = self._meta(key)
            m = self._mountable(key, meta)
            if meta["state"] != "active":
                raise StoreError(
                    f"snapshot {key!r} is {meta['state']}; only active snapshots mount"
                )
            if m.kind == "copy" or is_mounted(m.merged):
                return m.merged
            opts = self._overlay_options(key, m.lowers)
            lcwd = self.root / "l"
            res = _run(
                [
                    "mount",
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    opts + ",index=off,redirect_dir=off,metacopy=off",
                    str(m.merged),
                ],
                cwd=lcwd,
            )
            if res.returncode != 0:  # older kernels lack some of those options
                res = _run(
                    ["mount", "-t", "overlay", "overlay", "-o", opts, str(m.merged)], cwd=lcwd
                )
            if res.returncode != 0:
                raise StoreError(
                    f"cannot mount overlay snapshot {key!r} at {m.merged}: {res.stderr.strip()}"
                )
            return m.merged

    def unmount(self, key: str) -> None:
        with self._flock():
            m = self._mountable(key, self._meta(key))
            if m.kind == "overlay":
                _umount(m.merged)

    @contextlib.contextmanager
    def mounted(self, key: str) -> Iterator[Path]:
        path = self.mount(key)
        try:
            yield path
        finally:
            self.unmount(key)

    def commit(self, key: str) -> Committed:
        """Freeze an active snapshot (unmounting it) and return the differ's inputs."""
        with self._flock():
            meta = self._meta(key)
            m = self._mountable(key, meta)
            if m.kind == "overlay":
                _umount(m.merged)
                shutil.rmtree(self._dir(key) / "w", ignore_errors=True)
            meta["state"] = "committed"
            self._save(key, meta)
            return Committed(key, m.kind, m.upper, m.base)

    def remove(self, key: str) -> None:
        with self._flock():
            d = self._dir(key)
            if not d.exists():
                raise NotFoundError(f"snapshot {key!r} does not exist in {self.root}")
            merged = d / "m"
            _umount(merged)
            if is_mounted(merged):  # never rmtree through a mount: it would delete lower data
                raise StoreError(f"snapshot {key!r} is still mounted at {merged}; not removing")
            try:
                # The overlay workdir holds root-only 000 dirs; rmtree copes as root.
                shutil.rmtree(d)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise StoreError(f"cannot remove snapshot {key!r} at {d}: {e.strerror}") from e

    def remove_owned(self, owner: str) -> list[str]:
        """Unmount and remove every snapshot ``owner`` prepared, whatever its state, and its
        overlay probe: what a killed process left, or what a cancelled build's stragglers
        held. Never removes through a mount (a snapshot that stays mounted is kept). Returns
        the removed snapshot directories' names."""
        removed: list[str] = []
        with self._flock():
            for d in sorted((self.root / "s").iterdir()):
                try:
                    if (d / "owner").read_text() != owner:
                        continue
                except OSError:
                    continue
                if self._remove_tree(d):
                    removed.append(d.name)
            probe = self.root / "probe"
            if probe.is_dir():
                for t in probe.glob(f"ovl-probe-{owner}-*"):
                    self._remove_tree(t)
        return removed

    def owners(self) -> set[str]:
        """The owners that have snapshots under root."""
        found: set[str] = set()
        for d in (self.root / "s").iterdir():
            with contextlib.suppress(OSError):
                found.add((d / "owner").read_text())
        return found

    @staticmethod
    def _remove_tree(d: Path) -> bool:
        with contextlib.suppress(StoreError):
            unmount_below(d)
        if mounts_below(d):
            return False
        shutil.rmtree(d, ignore_errors=True)
        return not d.exists()

    def list(self) -> list[tuple[str, str, str]]:
        """(key, kind, state) of every snapshot under root."""
        out = []
        for d in sorted((self.root / "s").iterdir()):
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((d / "meta.json").read_text())
                out.append((str(meta["key"]), str(meta["kind"]), str(meta["state"])))
        return out
