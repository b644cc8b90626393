"""Mounts a build step sees: binds, tmpfs, persistent caches and secrets.

A ``Mount`` is the solver's description; :func:`to_spec_mounts` turns it into OCI runtime-spec
mount entries. Secrets are files in a tmpfs-backed directory *outside* every snapshot and are
bind-mounted read-only, so their bytes can never end up in a layer diff. Mount targets that did
not exist in the rootfs are created by the runtime as empty stubs; :func:`missing_targets` and
:func:`remove_mount_stubs` let the executor take them out of the upper dir again (BuildKit does
the same), otherwise every ``RUN --mount`` would leak an empty file or directory into the layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xarch.archive import inroot
from xarch.errors import StoreError, UsageError

MountType = Literal["bind", "tmpfs", "cache", "secret"]
_TYPES = ("bind", "tmpfs", "cache", "secret")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def clean_target(target: str) -> str:
    """Normalise an in-container absolute path; reject relative paths and NULs."""
    if not target or "\x00" in target:
        raise UsageError(f"invalid mount target {target!r}: must be a non-empty absolute path")
    if not target.startswith("/"):
        raise UsageError(f"invalid mount target {target!r}: must be absolute (start with '/')")
    cleaned = posixpath.normpath(target)
    # normpath keeps a leading "//"; the container sees one root only.
    cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/":
        raise UsageError("invalid mount target '/': cannot mount over the root filesystem")
    return cleaned


@dataclass(frozen=True)
class Mount:
    """One mount of a build step.

    ``bind``: ``source`` is a host path. ``tmpfs``: ``source`` is ignored. ``cache``: ``source``
    is a persistent host dir (see :class:`CacheStore`). ``secret``: ``source`` is a file created
    by :class:`SecretStore`; it is always mounted read-only whatever ``readonly`` says.
    """

    type: MountType
    source: str
    target: str
    readonly: bool = False
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise UsageError(
                f"unknown mount type {self.type!r} (expected one of {', '.join(_TYPES)})"
            )
        object.__setattr__(self, "target", clean_target(self.target))
        if self.type != "tmpfs" and not self.source:
            raise UsageError(f"{self.type} mount at {self.target} needs a source path")
        if self.type != "tmpfs" and not os.path.isabs(self.source):
            raise UsageError(
                f"{self.type} mount source {self.source!r} must be an absolute host path"
            )
        for opt in self.options:
            if not opt or "," in opt or "\x00" in opt:
                raise UsageError(f"invalid mount option {opt!r} for {self.target}")
        object.__setattr__(self, "options", tuple(self.options))

    @property
    def effective_readonly(self) -> bool:
        return self.readonly or self.type == "secret"


def to_spec_mount(m: Mount) -> dict[str, Any]:
    """One OCI runtime-spec mount entry for ``m``."""
    extra = [o for o in m.options if o not in ("ro", "rw")]
    if m.type == "tmpfs":
        opts = ["nosuid", "nodev", *extra]
        if m.readonly:
            opts.append("ro")
        return {"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}
    opts = ["rbind"]
    if m.type == "secret":
        # Secrets are data, never programs or devices.
        opts += ["nosuid", "nodev", "noexec"]
    opts += extra
    opts.append("ro" if m.effective_readonly else "rw")
    return {"destination": m.target, "type": "bind", "source": m.source, "options": opts}


def _depth(target: str) -> int:
    return target.count("/")


def to_spec_mounts(mounts: Iterable[Mount]) -> list[dict[str, Any]]:
    """Spec entries, parents before children (runc mounts in list order)."""
    ms = list(mounts)
    seen: set[str] = set()
    for m in ms:
        if m.target in seen:
            raise UsageError(f"two mounts target {m.target}: each target may be mounted once")
        seen.add(m.target)
    return [to_spec_mount(m) for m in sorted(ms, key=lambda m: _depth(m.target))]


# --------------------------------------------------------------------------- stubs


def missing_targets(rootfs: Path, targets: Iterable[str]) -> list[str]:
    """The stubs the runtime will create for ``targets``: physical in-root paths (absolute,
    as seen from inside the root), each target and its missing parents, deepest first, ready for
    :func:`remove_mount_stubs`.

    Targets resolve inside the root as runc resolves them (absolute symlinks restart at the
    root, ``..`` stops there), so a stub's recorded path is where the runtime really puts it,
    never a host path reached by joining strings.
    """
    out: set[str] = set()
    with inroot.rooted(rootfs) as root_fd:
        for t in targets:
            try:
                physical = inroot.resolve(root_fd, clean_target(t))
            except OSError:
                continue  # a non-directory or a loop on the way: the runtime fails, no stub
            cur = "/" + physical
            while cur != "/":
                try:
                    inroot.lstat_in_root(root_fd, cur)
                    break
                except OSError:
                    out.add(cur)
                    cur = posixpath.dirname(cur)
    return sorted(out, key=lambda p: (-_depth(p), p))


def remove_mount_stubs(rootfs: Path, stubs: Sequence[str]) -> list[str]:
    """Remove the empty files/dirs the runtime created for mount targets.

    Only removes what is still an empty regular file or an empty directory, so anything the
    step itself wrote there is kept. Every removal walks the recorded physical path from the
    root without following any symlink: a step that turned a parent into a symlink (to
    ``/`` or any host-looking path) makes that stub simply gone, it never redirects the
    removal (the class of BuildKit's CVE-2024-23652). Returns the removed stubs.
    """
    removed: list[str] = []
    with inroot.rooted(rootfs) as root_fd:
        for t in sorted(stubs, key=lambda p: (-_depth(p), p)):
            rel = t.strip("/")
            try:
                st = inroot.lstat_in_root(root_fd, rel)
                if stat.S_ISDIR(st.st_mode):
                    inroot.rmdir_in_root(root_fd, rel)  # fails (kept) when not empty
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    inroot.unlink_in_root(root_fd, rel)
                else:
                    continue
            except OSError:
                continue
            removed.append(t)
    return removed


def _restore_times(root_fd: int, rel: str, atime: int, mtime: int) -> None:
    """utime of the directory at physical in-root ``rel`` ("/" = the root), no symlink followed."""
    fd = inroot.walk_nofollow(root_fd, rel)
    try:
        os.utime(inroot.proc_path(fd), ns=(atime, mtime))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class MountStubs:
    """Mount stubs the runtime is about to create, and how to undo them.

    Creating a stub also bumps the mtime of the existing directory that receives it (and on
    overlayfs copies that directory up); :meth:`cleanup` removes the stubs and restores those
    directories' times so the differ sees them unchanged. All paths are physical in-root
    paths, and every operation resolves inside ``rootfs`` (see :mod:`xarch.archive.inroot`).
    """

    rootfs: Path
    stubs: tuple[str, ...]
    parent_times: tuple[tuple[str, int, int], ...]

    @classmethod
    def record(cls, rootfs: Path, targets: Iterable[str]) -> MountStubs:
        stubs = missing_targets(rootfs, targets)
        times: dict[str, tuple[int, int]] = {}
        with inroot.rooted(rootfs) as root_fd:
            for s in stubs:
                parent = posixpath.dirname(s)
                if parent in stubs or parent in times:
                    continue
                with contextlib.suppress(OSError):
                    fd = inroot.walk_nofollow(root_fd, parent)
                    try:
                        st = os.fstat(fd)
                    finally:
                        os.close(fd)
                    times[parent] = (st.st_atime_ns, st.st_mtime_ns)
        return cls(rootfs, tuple(stubs), tuple((p, a, m) for p, (a, m) in times.items()))

    def cleanup(self) -> list[str]:
        removed = remove_mount_stubs(self.rootfs, self.stubs)
        with inroot.rooted(self.rootfs) as root_fd:
            for parent, atime, mtime in self.parent_times:
                with contextlib.suppress(OSError):
                    _restore_times(root_fd, parent, atime, mtime)
        return removed


# --------------------------------------------------------------------------- caches


@dataclass(frozen=True)
class CacheStore:
    """Persistent directories for ``RUN --mount=type=cache`` keyed by cache id."""

    root: Path

    def dir_for(self, cache_id: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
        if not cache_id or "\x00" in cache_id:
            raise UsageError(f"invalid cache id {cache_id!r}")
        # Ids are user-controlled ("/root/.cache/go-build"): hash them into a flat safe name.
        name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]
        d = self.root / name
        try:
            d.mkdir(parents=True, exist_ok=True)
            if d.stat().st_uid != uid or d.stat().st_gid != gid:
                with contextlib.suppress(PermissionError):
                    os.chown(d, uid, gid)
            os.chmod(d, mode)
        except OSError as e:
            raise StoreError(f"cannot create cache dir {d}: {e.strerror}") from e
        return d


# --------------------------------------------------------------------------- secrets


def _fs_type(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    best, fstype = "", ""
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mp = fields[4].replace("\\040", " ")
        if (target == mp or target.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, fstype = mp, right.split()[0]
    return fstype


def _secret_bases() -> list[Path]:
    return [Path("/dev/shm"), Path(os.environ.get("XDG_RUNTIME_DIR", "/run"))]


class SecretStore:
    """Secret files in a private tmpfs-backed directory (never on disk, never in a snapshot).

    Use as a context manager; everything is removed on exit. ``owner`` (a build's lease id)
    goes into the directory's name, so :func:`remove_owned_secrets` can remove what a killed
    build left behind.
    """

    def __init__(
        self, base: Path | None = None, *, require_tmpfs: bool = True, owner: str | None = None
    ) -> None:
        if owner is not None and not _SAFE_ID.fullmatch(owner):
            raise UsageError(f"invalid secret store owner {owner!r}")
        candidates = [base] if base is not None else _secret_bases()
        chosen: Path | None = None
        for c in candidates:
            if (
                c is not None
                and c.is_dir()
                and (not require_tmpfs or _fs_type(c) in ("tmpfs", "ramfs"))
            ):
                chosen = c
                break
        if chosen is None:
            raise StoreError(
                "no tmpfs directory for build secrets",
                hint="mount a tmpfs at /dev/shm or pass a tmpfs-backed directory",
            )
        prefix = f"xarch-secrets-{owner}-" if owner else "xarch-secrets-"
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir=chosen))
        os.chmod(self.dir, 0o700)

    def add(
        self, secret_id: str, data: bytes, *, uid: int = 0, gid: int = 0, mode: int = 0o400
    ) -> Path:
        if not _SAFE_ID.fullmatch(secret_id):
            raise UsageError(
                f"invalid secret id {secret_id!r}: use letters, digits, '.', '_' and '-'"
            )
        p = self.dir / secret_id
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            with contextlib.suppress(PermissionError):
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return p

    def mount(self, secret_id: str, target: str) -> Mount:
        return Mount("secret", str(self.dir / secret_id), target, readonly=True)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SecretStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_owned_secrets(owner: str, bases: Sequence[Path] | None = None) -> list[Path]:
    """Remove the secret directories ``owner``'s SecretStores left (a killed build's)."""
    if not _SAFE_ID.fullmatch(owner):
        raise UsageError(f"invalid secret store owner {owner!r}")
    removed: list[Path] = []
    for base in bases if bases is not None else _secret_bases():
        with contextlib.suppress(OSError):
            for d in base.glob(f"xarch-secrets-{owner}-*"):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed


# --------------------------------------------------------------------------- /etc files


DEFAULT_HOSTNAME = "buildkitsandbox"


@dataclass(frozen=True)
class NetworkFiles:
    resolv_conf: Path
    hosts: Path


def _filter_resolv(text: str, *, drop_localhost: bool) -> str:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if (
            drop_localhost
            and len(parts) >= 2
            and parts[0] == "nameserver"
            and (parts[1].startswith("127.") or parts[1] == "::1")
        ):
            # A host-local resolver is unreachable from a new network namespace.
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def write_network_files(
    directory: Path,
    *,
    hostname: str = DEFAULT_HOSTNAME,
    network: str = "sandbox",
    host_resolv: Path = Path("/etc/resolv.conf"),
) -> NetworkFiles:
    """Generate /etc/resolv.conf and /etc/hosts for a step into ``directory`` (outside the
    snapshot, bind-mounted read-only)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        resolv = host_resolv.read_text()
    except OSError:
        resolv = ""
    resolv = _filter_resolv(resolv, drop_localhost=network == "none")
    hosts = f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    rp, hp = directory / "resolv.conf", directory / "hosts"
    rp.write_text(resolv)
    hp.write_text(hosts)
    os.chmod(rp, 0o644)
    os.chmod(hp, 0o644)
    return NetworkFiles(rp, hp)
