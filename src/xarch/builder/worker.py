"""The build worker: does the I/O for each graph op (the solver's ``Worker``).

Layers are extracted once per store into ``chains/<chainid>`` in overlayfs form (whiteouts as
0/0 char devices, opaque dirs by xattr) and stacked as lowerdirs; a RUN or COPY writes into a
fresh upper dir whose contents *are* the new layer. After a step the upper dir is adopted as
the extracted form of the layer it produced, so the next step stacks it without re-extracting.
A layer is extracted on top of its parents' merged view (archive.apply's ``parents``: an entry
under a lower layer's symlinked directory lands where the symlink points, as in an exported
image), so its directory depends on the whole chain below it and is keyed by the ChainID. The
``layers/<diffid>`` dirs of older versions were extracted without their parents and are never
read.

Each worker holds a :class:`Lease` on ``owners/<id>`` for its step dirs, downloads and the
runtime's state (``owners/<id>/rt/<runtime>``, passed as ``--root``); its snapshots and secret
dirs carry the same id. :meth:`BuildWorker.cancel` kills the running containers and starts no
new work; :meth:`BuildWorker.close` gives everything back. What a killed process (kill -9)
left, whose lease lock nobody holds any more, the next worker in that home cleans up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from xarch.archive.apply import apply_layer
from xarch.archive.diff import diff_overlay_upper, diff_trees
from xarch.archive.entry import TarEntry
from xarch.archive.tarwriter import read_xattrs
from xarch.archive.whiteout import is_overlay_opaque, is_overlay_whiteout
from xarch.builder import fileop
from xarch.builder import git as gitsrc
from xarch.builder.layers import store_layer
from xarch.builder.users import resolve_chown, resolve_user
from xarch.content.store import ContentStore
from xarch.errors import (
    InputError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    RuntimeFailure,
    StoreError,
    UsageError,
    XarchError,
)
from xarch.executor import mounts as xmounts
from xarch.executor.runtime import (
    Cancelled,
    ContainerExitError,
    Containers,
    RuntimeInfo,
    note_stopped,
    remove_containers,
)
from xarch.executor.runtime import run as run_container
from xarch.executor.seccomp import default_profile as default_seccomp
from xarch.executor.spec import DEFAULT_CAPABILITIES, KEPT_MOUNT_POINTS, NetworkMode, runtime_spec
from xarch.frontend.dockerfile.dockerignore import PatternMatcher
from xarch.graph.ops import ContextOp, CopyOp, ExecOp, ImageOp, MkdirOp, MountSpec, Vertex
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform
from xarch.snapshot.chain import chain_id, chain_ids
from xarch.snapshot.overlay import Snapshotter, mounts_below, unmount_below
from xarch.solver.solver import LayerRef, Result

# How long a cancelled build waits for its steps to unwind (stopped containers return at
# once; an uninterruptible copy or extraction may not) before it stops waiting.
CANCEL_GRACE = 1.0


@dataclass(frozen=True)
class SecretSource:
    id: str
    data: bytes


@dataclass(frozen=True)
class WorkerOptions:
    context_dir: Path
    ignore: PatternMatcher | None = None
    compression: str = "gzip"
    oci_media_types: bool = True
    source_date_epoch: int | None = None
    secrets: Mapping[str, bytes] | None = None
    host_network_ok: bool = True


class Lease:
    """A worker's claim on its state under ``owners/``: an flock on ``<id>.lock`` held for as
    long as the worker lives, and the directory ``<id>/``.

    The kernel drops the lock when the process dies, however it dies (kill -9 included): a
    lock anybody can take belongs to a dead owner whose leftovers may go; a held one is never
    touched. The lock is taken before its name is visible, so nobody sees a live one free.
    """

    def __init__(self, owners: Path) -> None:
        owners.mkdir(parents=True, exist_ok=True)
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lock_path = owners / f"{self.id}.lock"
        self.dir = owners / self.id
        new = owners / f".{self.id}.lock.new"
        # O_CLOEXEC: a runtime child holding the lock would keep a dead owner looking alive
        fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.replace(new, self.lock_path)
            self.dir.mkdir()
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def runtime_root(self, runtime_name: str) -> Path:
        """The ``--root`` for the runtime's container state: one per lease and runtime."""
        return self.dir / "rt" / runtime_name

    def release(self, snapshots: Snapshotter) -> bool:
        """Stop and remove everything the lease holds, then drop it; True when all went
        (otherwise the lock file stays for the next worker to retry)."""
        if self._fd is None:
            return True
        try:
            clean = clean_owner(self.dir.parent, self.id, snapshots)
            if clean:
                self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
        return clean


def _claim(lock_path: Path) -> int | None:
    """A descriptor holding ``lock_path``'s lock when its owner is dead, else None."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock_path).st_ino:
            raise FileNotFoundError(lock_path)  # cleaned and replaced while we opened it
    except OSError:
        os.close(fd)
        return None
    return fd


def clean_owner(owners: Path, owner: str, snapshots: Snapshotter) -> bool:
    """Kill and delete ``owner``'s containers, unmount and remove its snapshots, secrets and
    directory. Only for a dead owner, or one's own lease. True when nothing is left."""
    d = owners / owner
    clean = True
    rt = d / "rt"
    if rt.is_dir():
        for root in sorted(p for p in rt.iterdir() if p.is_dir()):
            path = shutil.which(root.name)
            if path is None:
                clean = False  # its containers can only be stopped with their runtime
                continue
            remove_containers(RuntimeInfo(root.name, path, ""), root)
            if any(root.iterdir()):
                clean = False
    snapshots.remove_owned(owner)
    xmounts.remove_owned_secrets(owner)
    if clean and d.exists():
        with contextlib.suppress(XarchError):
            unmount_below(d)
        if mounts_below(d):
            return False
        shutil.rmtree(d, ignore_errors=True)
        clean = not d.exists()
    return clean


def recover_home(home: Path) -> list[str]:
    """What ``xarch prune`` does for the builder state: clean up after every dead owner
    (containers a ``kill -9`` left running, mounted snapshots), without taking a lease.
    Live builds are never touched (their lock is held). Returns the owner ids cleaned."""
    owners = home / "owners"
    if not owners.is_dir():
        return []
    cleaned = recover_leftovers(owners, Snapshotter(private_dir(home) / "snapshots"))
    # layers extracted per diffID by xarch before chains/ (never read now): once no live
    # owner is left that could still have them mounted, they are only dead weight
    legacy = home / "layers"
    if legacy.is_dir() and not any(owners.glob("*.lock")) and not mounts_below(legacy):
        shutil.rmtree(legacy, ignore_errors=True)
    return cleaned


def recover_leftovers(owners: Path, snapshots: Snapshotter) -> list[str]:
    """Clean up after every dead owner under ``owners`` (a build or run that was killed):
    running containers, mounted snapshots, step dirs. Returns the owner ids cleaned."""
    cleaned: list[str] = []
    for lock in sorted(owners.glob("*.lock")):
        fd = _claim(lock)
        if fd is None:
            continue
        try:
            owner = lock.name[: -len(".lock")]
            if clean_owner(owners, owner, snapshots):
                lock.unlink(missing_ok=True)
                cleaned.append(owner)
        finally:
            os.close(fd)
    for new in owners.glob(".*.lock.new"):  # died before publishing its lock
        with contextlib.suppress(OSError):
            # a young one may belong to a lease being taken right now, not locked yet
            if time.time() - new.stat().st_mtime > 60 and (fd := _claim(new)) is not None:
                new.unlink(missing_ok=True)
                os.close(fd)
    # A live owner's lock exists before its first snapshot: without one, the owner is gone
    # (its release could not unmount everything at the time).
    for owner in sorted(snapshots.owners()):
        if not (owners / f"{owner}.lock").exists() and snapshots.remove_owned(owner):
            cleaned.append(owner)
    return cleaned


def private_dir(path: Path) -> Path:
    """Create (or check) the worker's state directory: ours and 0700.

    Extracted layers keep what images ship: setuid/setgid files, file capabilities, device
    nodes. Anyone who can traverse to them can run an image's setuid shell as root, so, as
    containerd and BuildKit do for their snapshot roots, nobody but the owner may enter this
    directory; a looser mode found at start (an older xarch made it 0755, or a umask) is
    tightened, and a directory owned by another user is refused rather than used.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"build state directory {path} is owned by uid {st.st_uid}, not by this user "
            f"({os.geteuid()}); refusing to run images' files from a directory others control",
            hint="use an XARCH_HOME of your own",
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


class BuildWorker:
    def __init__(
        self,
        store: ContentStore,
        home: Path,
        runtime: Callable[[], RuntimeInfo],
        options: WorkerOptions,
    ) -> None:
        self.store = store
        # runc refuses a rootfs path that goes through a symlink (/tmp/... -> ...): resolve once
        self.home = private_dir(home).resolve()
        home = self.home
        self.opts = options
        self._runtime = runtime
        # keyed by ChainID (an extracted layer depends on its parents): not the diffID-keyed
        # ``layers/`` of older versions, whose dirs may hold lower symlinks' paths as real dirs
        self.layers_dir = home / "chains"
        self.layers_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # our own lease first: from then on no other worker mistakes our state for leftovers
        self.lease = Lease(home / "owners")
        self.tmp_dir = self.lease.dir / "tmp"
        self.tmp_dir.mkdir()
        self.snapshots = Snapshotter(home / "snapshots", owner=self.lease.id)
        self.recovered = recover_leftovers(home / "owners", self.snapshots)
        self.containers = Containers()
        # runs at close() or, if never closed, when the worker goes (or the interpreter exits)
        self._release = weakref.finalize(self, self.lease.release, self.snapshots)
        self.caches = xmounts.CacheStore(home / "cache-mounts")
        self._extract_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._closed = False
        # one timestamp for the directories COPY creates, shared by every platform of the build
        epoch = options.source_date_epoch
        self._created_mtime = epoch if epoch is not None else int(time.time())
        self._tree = fileop.SourceTree(options.context_dir, options.ignore,
                                       fileop.DigestCache(home / "context-digests.json"))
        self._snap_lowers: dict[str, list[Path]] = {}
        self._snap_chains: dict[str, Digest | None] = {}  # snapshot key -> its parents' chain
        self._downloads: dict[str, _Download] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._git_resolved: dict[str, gitsrc.Resolved] = {}
        self._dl_dir: Path | None = None
        self._cache_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        """Keep what this build learned that outlives it (context file digests) and give the
        lease back: containers, snapshots and step dirs go. While a cancelled build's steps
        are still unwinding, the last of them does that."""
        if self._tree.cache is not None:
            self._tree.cache.save()
        with self._idle:
            self._closed = True
            idle = self._inflight == 0
        if idle:
            self._release()

    def state_root(self, runtime: RuntimeInfo) -> Path:
        return self.lease.runtime_root(runtime.name)

    def cancel(self, cause: BaseException | None = None) -> int:
        """Kill every running container and start no new work; returns how many steps were
        running (counted on ``cause`` when that is the CLI's Interrupted)."""
        n = self.containers.cancel()
        note_stopped(cause, "step", n)
        return n

    def wait_idle(self, timeout: float = CANCEL_GRACE) -> bool:
        """Wait until no step uses the worker's state; False when ``timeout`` passed first."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Work in flight on the worker's state (snapshots, step dirs): none starts once
        cancelled, and a closed worker's lease goes when the last one ends."""
        with self._idle:
            if self.containers.cancelled:
                raise Cancelled("not starting new work: the build was cancelled")
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                last = self._inflight == 0
                if last:
                    self._idle.notify_all()
            if last and self._closed:
                self._release()

    # -- sources -------------------------------------------------------------------------

    def resolve_image(self, op: ImageOp) -> tuple[LayerRef, ...]:
        digest = Digest(op.manifest_digest)
        if not self.store.has(digest):
            raise NotFoundError(f"base image {op.ref} ({digest}) is not in the store", hint="pull it first")
        man = Manifest.parse(self.store.read_bytes(digest))
        cfg = ImageConfig.parse(self.store.read_bytes(man.config))
        if len(cfg.diff_ids) != len(man.layers):
            raise InputError(f"image {op.ref}: {len(man.layers)} layers but {len(cfg.diff_ids)} diff_ids")
        for layer in man.layers:
            if not self.store.has(layer.digest):
                raise NotFoundError(f"image {op.ref}: layer {layer.digest} missing from the store",
                                    hint="pull the image again")
        return tuple(LayerRef(d, diff) for d, diff in zip(man.layers, cfg.diff_ids, strict=True))

    def context_dir(self, op: ContextOp) -> Path:
        if op.name != "context":
            raise UsageError(f"unknown build context {op.name!r}")
        return self.opts.context_dir

    def copy_checksum(self, op: CopyOp, source: Result) -> str:
        urls = [s for s in op.sources if _is_url(s)]
        repos = _git_sources(op)
        local = tuple(s for s in op.sources if not _is_url(s) and s not in repos)
        parts = []
        for url in urls:
            # BuildKit: a pinned --checksum is the key; else the content decides (re-fetched)
            parts.append(f"url:{url}:" + (op.checksum or str(self._fetch(url, "").digest)))
        for src, ref in repos.items():
            # BuildKit's git source: the commit the ref names now (ls-remote once per build)
            parts.append(gitsrc.cache_key(ref, self._resolve_git(src, ref)))
        if source.local_dir is not None and local:
            parts.append(fileop.checksum(self._tree, local, op.excludes))
        return ",".join(parts)  # a stage or image source: its cache key already names its content

    def has_blob(self, desc: Descriptor) -> bool:
        return self.store.has(desc.digest)

    # -- layer extraction ----------------------------------------------------------------

    def layer_dir(self, layer: LayerRef, chain: Digest, parents: Sequence[Path] = ()) -> Path:
        """The extracted overlay-form directory of ``layer`` as the top of the stack ``chain``
        (its ChainID) over ``parents`` (the extracted dirs below it, topmost first), extracted
        on first use on top of their merged view."""
        d = self.layers_dir / chain.hex
        if (self.layers_dir / f"{chain.hex}.complete").exists():
            return d
        with self._busy(), self._layer_lock(chain.hex):
            marker = self.layers_dir / f"{chain.hex}.complete"
            if marker.exists():
                return d
            tmp = Path(tempfile.mkdtemp(prefix="extract-", dir=self.tmp_dir))
            try:
                with self.store.open(layer.descriptor.digest) as f:
                    apply_layer(
                        cast(BinaryIO, f),
                        tmp,
                        mode="overlay",
                        diff_id=str(layer.diff_id),
                        parents=parents,
                    )
                if d.exists():
                    shutil.rmtree(d)
                os.replace(tmp, d)
                marker.touch()
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return d

    @contextlib.contextmanager
    def _layer_lock(self, hexdigest: str) -> Iterator[None]:
        """Exclusive right to create ``layers/<hex>``, across threads *and* processes: another
        build sharing the store may be mounting a layer dir the moment it is complete, so a
        complete one must never be replaced."""
        with self._lock:
            tlock = self._extract_locks.setdefault(hexdigest, threading.Lock())
        with tlock, open(self.layers_dir / f"{hexdigest}.lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _adopt_upper(self, upper: Path, chain: Digest) -> None:
        """Keep a step's overlay upper dir as the extracted form of the layer it produced
        (``chain``: that layer's ChainID over the step's parents). An upper dir holds physical
        paths only, as an extraction over the same parents does."""
        marker = self.layers_dir / f"{chain.hex}.complete"
        d = self.layers_dir / chain.hex
        with self._layer_lock(chain.hex):
            if marker.exists():
                return
            if d.exists():
                shutil.rmtree(d)
            os.replace(upper, d)
            marker.touch()

    def _lowers(self, layers: Sequence[LayerRef]) -> list[Path]:
        """The extracted dirs of ``layers`` (bottom first), topmost first: each one extracted
        over the ones below it."""
        dirs: list[Path] = []  # topmost first
        chain: Digest | None = None
        for layer in layers:
            chain = chain_id(chain, layer.diff_id)
            dirs.insert(0, self.layer_dir(layer, chain, tuple(dirs)))
        return dirs

    @contextlib.contextmanager
    def _rootfs(self, layers: Sequence[LayerRef], *, label: str) -> Iterator[tuple[str, Path]]:
        """An active snapshot over ``layers``: yields (key, merged path); removed on exit."""
        with self._busy():
            key = f"{label}-{uuid.uuid4().hex}"
            lowers = self._lowers(layers)
            self.snapshots.prepare(key, lowers)
            chains = chain_ids([layer.diff_id for layer in layers])
            with self._lock:
                self._snap_lowers[key] = lowers
                self._snap_chains[key] = chains[-1] if chains else None
            try:
                merged = self.snapshots.mount(key)
                yield key, merged
            finally:
                with self._lock:
                    self._snap_lowers.pop(key, None)
                    self._snap_chains.pop(key, None)
                with contextlib.suppress(XarchError):
                    self.snapshots.unmount(key)
                with contextlib.suppress(XarchError):
                    self.snapshots.remove(key)

    def _commit_layer(self, key: str) -> LayerRef:
        """Diff the snapshot and store the layer blob. A step that changed nothing still gets
        a layer, an empty tar (1024 zero bytes, diffID ``sha256:5f70bf18…``): BuildKit keeps
        one for every RUN, COPY/ADD and WORKDIR whatever its diff (docs/compat.md)."""
        c = self.snapshots.commit(key)
        epoch = self.opts.source_date_epoch
        entries: Iterator[TarEntry]
        if c.kind == "overlay":
            with self._lock:
                lowers = list(self._snap_lowers.get(key, ()))
            prune_copied_up_dirs(c.upper, lowers)
            entries = diff_overlay_upper(c.upper, source_date_epoch=epoch)
        else:
            assert c.base is not None
            entries = diff_trees(c.base, c.upper, source_date_epoch=epoch)
        collected = list(entries)
        desc, res = store_layer(
            self.store, collected, compression=self.opts.compression,
            oci_media_types=self.opts.oci_media_types,
        )
        # an upper with nothing in the diff may still hold leftovers: extract the empty tar
        # when needed instead of adopting it
        if c.kind == "overlay" and collected:
            with self._lock:
                parent = self._snap_chains.get(key)
            self._adopt_upper(c.upper, chain_id(parent, res.diff_id))
        return LayerRef(desc, res.diff_id)

    # -- RUN -----------------------------------------------------------------------------

    def run_exec(self, op: ExecOp, inputs: list[Result], log: Callable[[str], None]) -> LayerRef | None:
        base = inputs[0]
        with self._rootfs(base.layers, label="run") as (key, merged), contextlib.ExitStack() as stack:
            uid, gid, groups = resolve_user(merged, op.user)
            cwd_path = fileop.safe_join(merged, op.cwd)
            if not cwd_path.exists():
                os.makedirs(cwd_path, 0o755, exist_ok=True)
                os.chown(cwd_path, uid, gid)
            step_dir = Path(tempfile.mkdtemp(prefix="step-", dir=self.tmp_dir))
            stack.callback(shutil.rmtree, step_dir, True)
            spec_mounts: list[xmounts.Mount] = []
            for m in op.mounts:
                spec_mounts += self._mount(m, inputs, stack, step_dir)
            if op.inline_files:
                pipes = step_dir / "pipes"
                pipes.mkdir()
                for name, data in op.inline_files:
                    p = pipes / name
                    p.write_text(data)
                    os.chmod(p, 0o755)
                spec_mounts.append(xmounts.Mount("bind", str(pipes), "/dev/pipes", readonly=True))
            # No CNI here: the default network is the host's (BuildKit's --oci-worker-net=host).
            network: NetworkMode = "none" if op.network == "none" else "host"
            netfiles = xmounts.write_network_files(step_dir / "etc", network=network)
            env = list(op.env) + list(op.proxy_env)
            for m in op.mounts:
                if m.type == "secret" and m.env:
                    secret = (self.opts.secrets or {}).get(m.secret_id)
                    if secret is not None:
                        # only in the process env: never in the op (cache key) or history
                        env = [e for e in env if e.partition("=")[0] != m.env]
                        env.append(f"{m.env}={secret.decode(errors='replace')}")
            spec = runtime_spec(
                args=list(op.args), env=env, cwd=op.cwd, user=(uid, gid, groups),
                hostname="buildkitsandbox", rootfs=str(merged), mounts=spec_mounts,
                network=network, platform=op.platform, resolv_conf=str(netfiles.resolv_conf),
                hosts_file=str(netfiles.hosts),
                seccomp=default_seccomp(DEFAULT_CAPABILITIES),  # as BuildKit: the default filter
            )
            # /dev, /proc and /sys stay in the layer of the first RUN on a base lacking them,
            # 0755 root, as BuildKit leaves them (docs/compat.md): made here, so whatever the
            # runtime's umask they are not stubs. Every other mount target the runtime may
            # create (/etc/hosts, /etc/resolv.conf, --mount targets) must not leak into the
            # layer as an empty stub.
            root_fd = os.open(merged, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for kept in KEPT_MOUNT_POINTS:
                    with contextlib.suppress(FileExistsError):  # a symlink there is left alone
                        os.mkdir(kept.lstrip("/"), 0o755, dir_fd=root_fd)
                        os.chmod(kept.lstrip("/"), 0o755, dir_fd=root_fd)  # just made: a dir
            finally:
                os.close(root_fd)
            stubs = xmounts.MountStubs.record(merged, [m["destination"] for m in spec["mounts"]])
            runtime = self._runtime()
            buf = bytearray()

            def on_output(chunk: bytes) -> None:
                buf.extend(chunk)
                while b"\n" in buf:
                    line, _, rest = bytes(buf).partition(b"\n")
                    buf[:] = rest
                    log(line.decode(errors="replace"))

            try:
                run_container(spec, step_dir / "bundle", runtime=runtime, stdout_cb=on_output,
                              state_root=self.state_root(runtime), containers=self.containers)
            except ContainerExitError as e:
                if buf:
                    log(buf.decode(errors="replace"))
                shown = " ".join(op.args)
                raise RuntimeFailure(
                    f'process "{shown}" did not complete successfully: exit code: {e.exit_code}'
                    f" (runtime {e.runtime_name}; last output: {_last_lines(e.output_tail)})"
                ) from e
            if buf:
                log(buf.decode(errors="replace"))
            stubs.cleanup()
            return self._commit_layer(key)

    def _mount(self, m: MountSpec, inputs: list[Result], stack: contextlib.ExitStack,
               step_dir: Path) -> list[xmounts.Mount]:
        if m.type == "cache":
            d = self.caches.dir_for(m.cache_id, uid=m.uid or 0, gid=m.gid or 0,
                                    mode=m.mode if m.mode is not None else 0o755)
            if m.sharing in ("locked", "private"):
                # locked: one step at a time; private (a fresh instance per concurrent user in
                # BuildKit) is served the same way: never two writers at once
                with self._lock:
                    lock = self._cache_locks.setdefault(m.cache_id, threading.Lock())
                lock.acquire()
                stack.callback(lock.release)
            if m.input is not None and not any(d.iterdir()):
                # from=: a new cache starts as a copy of that stage's (or context's) path
                seed_src = inputs[m.input]
                if seed_src.local_dir is not None:
                    seed = fileop.safe_join(seed_src.local_dir, m.source)
                    tree = self._tree
                else:
                    _, seed_root = stack.enter_context(self._rootfs(seed_src.layers, label="cache-seed"))
                    seed = fileop.safe_join(seed_root, m.source)
                    tree = fileop.SourceTree(seed_root)
                if seed.is_dir():
                    fileop.copy(tree, d, fileop.CopySpec(sources=(fileop.clean_rel(m.source) or ".",),
                                                         dest="/", from_context=False))
            return [xmounts.Mount("bind", str(d), m.target, readonly=m.readonly)]
        if m.type == "tmpfs":
            opts = (f"size={m.size}",) if m.size else ()
            return [xmounts.Mount("tmpfs", "", m.target, readonly=False, options=opts)]
        if m.type == "bind":
            src = inputs[m.input] if m.input is not None else None
            if src is None:
                raise UsageError("bind mount without a source")
            if src.local_dir is not None:
                root = src.local_dir
            else:
                _, root = stack.enter_context(self._rootfs(src.layers, label="bind"))
            if src.local_dir is not None and self.opts.ignore is not None:
                # BuildKit mounts the context as sent, i.e. after .dockerignore: give the step
                # a filtered copy, never the raw directory with ignored files in it
                path = self._filtered_context(m.source, step_dir)
                return [xmounts.Mount("bind", str(path), m.target, readonly=m.readonly)]
            path = fileop.safe_join(root, m.source)
            if not path.exists():
                raise NotFoundError(f"bind mount source {m.source!r} not found")
            if not m.readonly and src.local_dir is not None:
                # A writable bind is a scratch copy-on-write view (as BuildKit's): the step's
                # writes must never reach the user's build context.
                path = self._scratch_view(path, stack, step_dir)
            return [xmounts.Mount("bind", str(path), m.target, readonly=m.readonly)]
        if m.type == "secret":
            data = (self.opts.secrets or {}).get(m.secret_id)
            if data is None:
                if m.required:
                    raise NotFoundError(f"secret {m.secret_id} not found", hint=f"pass --secret id={m.secret_id},src=FILE")
                return []
            if not m.target:
                return []  # env= only: run_exec puts it in the process environment
            store = stack.enter_context(xmounts.SecretStore(owner=self.lease.id))
            store.add(m.secret_id, data, uid=m.uid or 0, gid=m.gid or 0, mode=m.mode if m.mode is not None else 0o400)
            return [store.mount(m.secret_id, m.target)]
        if m.type == "ssh":
            raise UsageError("RUN --mount=type=ssh is not supported yet", hint="use a secret mount")
        raise UsageError(f"unknown mount type {m.type}")

    def _filtered_context(self, source: str, step_dir: Path) -> Path:
        view = step_dir / f"ctx-{uuid.uuid4().hex}"
        view.mkdir()
        rel = fileop.clean_rel(source)
        try:
            is_dir = self._tree.resolve(rel).is_dir()
            if is_dir:
                fileop.copy(self._tree, view, fileop.CopySpec(sources=(rel or ".",), dest="/"))
                return view
            fileop.copy(self._tree, view, fileop.CopySpec(sources=(rel,), dest="/source"))
        except NotFoundError:
            raise NotFoundError(f"bind mount source {source!r} not found in the build context",
                                hint="check the path and .dockerignore") from None
        return view / "source"

    def exec_checksum(self, op: ExecOp, inputs: list[Result]) -> str:
        """Checksum of the context files an ExecOp bind-mounts (for its cache key): a RUN
        that reads a context file through a mount must re-run when that file changes."""
        parts = []
        for m in op.mounts:
            if m.type == "bind" and m.input is not None and inputs[m.input].local_dir is not None:
                parts.append(fileop.checksum(self._tree, (fileop.clean_rel(m.source) or ".",)))
        return ",".join(parts)

    def _scratch_view(self, path: Path, stack: contextlib.ExitStack, step_dir: Path) -> Path:
        if path.is_dir():
            _, merged = stack.enter_context(self._dir_snapshot(path))
            return merged
        copy = step_dir / f"bind-{uuid.uuid4().hex}"
        shutil.copy2(path, copy)
        return copy

    @contextlib.contextmanager
    def _dir_snapshot(self, lower: Path) -> Iterator[tuple[str, Path]]:
        key = f"bindrw-{uuid.uuid4().hex}"
        self.snapshots.prepare(key, [lower])
        try:
            yield key, self.snapshots.mount(key)
        finally:
            with contextlib.suppress(XarchError):
                self.snapshots.unmount(key)
            with contextlib.suppress(XarchError):
                self.snapshots.remove(key)

    # -- COPY / ADD / WORKDIR ------------------------------------------------------------

    def _source_tree(self, src: Result, stack: contextlib.ExitStack) -> tuple[fileop.SourceTree, bool]:
        if src.local_dir is not None:
            return self._tree, True
        _, root = stack.enter_context(self._rootfs(src.layers, label="src"))
        return fileop.SourceTree(root), False

    def run_copy(self, op: CopyOp, inputs: list[Result]) -> LayerRef | None:
        dest = inputs[0]
        # BuildKit makes a link layer (a copy onto scratch, merged) only without --chmod: with
        # one, COPY/ADD --link is a plain copy onto the image (dockerfile2llb's dispatchCopy)
        link = op.link and not op.chmod
        base_layers: Sequence[LayerRef] = () if link else dest.layers
        with contextlib.ExitStack() as stack:
            key, merged = stack.enter_context(self._rootfs(base_layers, label="copy"))
            owner_root = merged
            if link and op.chown and not op.chown.replace(":", "").isdigit():
                _, owner_root = stack.enter_context(self._rootfs(dest.layers, label="chown"))
            owner = resolve_chown(owner_root, op.chown) if op.chown else None
            mode = _parse_chmod(op.chmod)
            if op.inline_files:
                self._write_inline(merged, op, owner, mode)
            else:
                tree, from_context = self._source_tree(inputs[1], stack)
                urls = [s for s in op.sources if _is_url(s)]
                repos = _git_sources(op)
                if urls and not op.is_add:
                    raise InputError(f"COPY {urls[0]}: source can't be a URL", hint="use ADD")
                if op.checksum and not urls and not repos:
                    raise InputError("ADD --checksum requires HTTP(S) or Git sources")
                for url in urls:
                    self._add_url(merged, op, url, owner, mode)
                for src, ref in repos.items():
                    self._add_git(merged, op, src, ref, owner, mode)
                op = dataclasses.replace(op, sources=tuple(s for s in op.sources
                                                           if not _is_url(s) and s not in repos))
                if not op.sources:
                    pass  # only URLs
                elif op.is_add and op.unpack is not False:
                    self._add_with_unpack(tree, merged, op, owner, mode, from_context)
                else:
                    fileop.copy(tree, merged, fileop.CopySpec(
                        sources=op.sources, dest=op.dest, owner=owner, mode=mode,
                        excludes=op.excludes, parents=op.parents, from_context=from_context,
                        created_mtime=self._created_mtime,
                    ))
            return self._commit_layer(key)

    def _fetch(self, url: str, checksum: str) -> _Download:
        """Download ``url`` once per build (into the worker's tmp dir), verifying ``checksum``."""
        with self._lock:
            lock = self._fetch_locks.setdefault(url, threading.Lock())
        with self._busy(), lock:
            got = self._downloads.get(url)
            if got is None:
                with self._lock:
                    if self._dl_dir is None:
                        self._dl_dir = Path(tempfile.mkdtemp(prefix="http-", dir=self.tmp_dir))
                        # downloads live as long as this build's worker
                        weakref.finalize(self, shutil.rmtree, self._dl_dir, True)
                got = _download(url, self._dl_dir)
                self._downloads[url] = got
        if checksum and checksum != str(got.digest):
            raise IntegrityError(
                f"digest mismatch for {url}: expected {checksum}, got {got.digest}",
                hint="fix ADD --checksum or the URL",
            )
        return got

    def _add_url(self, root: Path, op: CopyOp, url: str, owner: tuple[int, int] | None,
                 mode: int | None) -> None:
        got = self._fetch(url, op.checksum)
        target = op.dest + got.filename if op.dest.endswith("/") else op.dest
        parent = os.path.dirname(target.rstrip("/")) or "/"
        fileop.mkdir(root, parent, owner)
        p = fileop.safe_join(root, target)
        if p.is_dir() and not p.is_symlink():
            p = fileop.safe_join(root, target.rstrip("/") + "/" + got.filename)
        if os.path.lexists(p):
            os.unlink(p)
        shutil.copyfile(got.path, p)
        os.chmod(p, mode if mode is not None else 0o600)  # Docker: remote files are 0600
        os.chown(p, *(owner or (0, 0)))
        if got.mtime is not None:
            os.utime(p, (got.mtime, got.mtime))

    def _resolve_git(self, src: str, ref: gitsrc.GitRef) -> gitsrc.Resolved:
        """The commit ``ref`` names, asked of the remote once per build (per URL and ref)."""
        key = f"{ref.remote}#{ref.ref}" + (f"@{ref.checksum}" if ref.fetch_by_commit else "")
        with self._lock:
            lock = self._fetch_locks.setdefault("git:" + key, threading.Lock())
        with self._busy(), lock:
            got = self._git_resolved.get(key)
            if got is None:
                ask = ref if ref.fetch_by_commit else dataclasses.replace(ref, checksum="")
                got = gitsrc.resolve(ask, src)
                self._git_resolved[key] = got
        # the checksum is checked on every use (two ADDs may pin the same ref differently)
        return gitsrc.check_checksum(ref, got, src)

    def _add_git(self, root: Path, op: CopyOp, src: str, ref: gitsrc.GitRef,
                 owner: tuple[int, int] | None, mode: int | None) -> None:
        """ADD <git repository> <dest>: the checkout's files onto dest like a local directory
        (owned by root or --chown, --chmod on all, --exclude honoured)."""
        resolved = self._resolve_git(src, ref)
        with self._busy():
            work, top = gitsrc.checkout(ref, resolved, src, self.home / "git", self.tmp_dir)
        try:
            dest = op.dest if op.dest.endswith("/") else op.dest + "/"
            fileop.copy(fileop.SourceTree(top), root, fileop.CopySpec(
                sources=(".",), dest=dest, owner=owner, mode=mode, excludes=op.excludes,
                from_context=True, created_mtime=self._created_mtime,
            ))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _write_inline(self, root: Path, op: CopyOp, owner: tuple[int, int] | None, mode: int | None) -> None:
        for name, data in op.inline_files:
            target = op.dest + name if op.dest.endswith("/") else op.dest
            parent = os.path.dirname(target.rstrip("/")) or "/"
            fileop.mkdir(root, parent, owner)
            p = fileop.safe_join(root, target)
            p.write_text(data)
            os.chmod(p, mode if mode is not None else 0o644)
            if owner:
                os.chown(p, *owner)

    def _add_with_unpack(self, tree: fileop.SourceTree, root: Path, op: CopyOp,
                         owner: tuple[int, int] | None, mode: int | None, from_context: bool) -> None:
        plain: list[str] = []
        for pattern in op.sources:
            for rel in tree.expand(pattern):
                path = tree.resolve(rel)
                kind = _archive_kind(path) if path.is_file() else None
                if kind is not None:
                    dest_dir = op.dest if op.dest.endswith("/") else op.dest + "/"
                    fileop.mkdir(root, dest_dir, owner)
                    # unpack aside, then merge: --chown applies to what the archive holds
                    # (BuildKit's Untar with ChownOpts), modes and times stay the archive's
                    scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=self.tmp_dir))
                    try:
                        with _open_archive(path, kind) as f:
                            apply_layer(f, scratch, mode="flatten")
                        if owner is not None:
                            for dirpath, dirnames, filenames in os.walk(scratch):
                                for name in dirnames + filenames:
                                    os.lchown(os.path.join(dirpath, name), *owner)
                        fileop.copy(fileop.SourceTree(scratch), root, fileop.CopySpec(
                            sources=(".",), dest=dest_dir, from_context=False,
                        ))
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
                else:
                    plain.append(rel)
        if plain:
            fileop.copy(tree, root, fileop.CopySpec(
                sources=tuple(plain), dest=op.dest, owner=owner, mode=mode,
                excludes=op.excludes, from_context=from_context, created_mtime=self._created_mtime,
            ))

    def run_mkdir(self, op: MkdirOp, inputs: list[Result]) -> LayerRef | None:
        with self._rootfs(inputs[0].layers, label="mkdir") as (key, merged):
            owner = None
            if op.user:
                uid, gid, _ = resolve_user(merged, op.user)
                owner = (uid, gid)
            # BuildKit makes the path as written (WORKDIR /x/../y): a directory before ".." too
            parts = op.path.split("/")
            for i in (i for i, part in enumerate(parts) if part == ".."):
                fileop.mkdir(merged, "/".join(parts[:i]), owner, op.mode)
            fileop.mkdir(merged, op.path, owner, op.mode)
            return self._commit_layer(key)


def _lower_lookup(lowers: Sequence[Path], rel: str) -> tuple[Path, os.stat_result] | None:
    """What the stacked ``lowers`` (topmost first) show at ``rel``: (path, lstat), or None
    when it is absent or hidden (a whiteout, an opaque directory or a non-directory above)."""
    parts = rel.split("/")
    for layer in lowers:
        cur = layer
        hidden = False
        for i, comp in enumerate(parts):
            cur = cur / comp
            try:
                st = os.lstat(cur)
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_overlay_whiteout(cur, st):
                return None
            if i == len(parts) - 1:
                return cur, st
            if not stat.S_ISDIR(st.st_mode):
                return None
            if is_overlay_opaque(cur):
                hidden = True  # nothing below this layer is visible under cur
        if hidden:
            return None
    return None


def prune_copied_up_dirs(upper: Path, lowers: Sequence[Path]) -> int:
    """Remove directories overlayfs copied up without any change from ``upper``.

    Mounting over a path, or removing a mount stub again, copies its parent directories up;
    when nothing below such a directory changed and its own metadata equals the lower's, it is
    no change and must not be in the layer (BuildKit's overlay differ skips them too; the
    overlay view is identical without them). Returns how many were removed.
    """
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(upper, topdown=False):
        d = Path(dirpath)
        if d == upper or filenames:
            continue
        try:
            if os.listdir(d):
                continue
            st = os.lstat(d)
        except OSError:
            continue
        if is_overlay_opaque(d):
            continue
        found = _lower_lookup(lowers, os.path.relpath(d, upper))
        if found is None or not stat.S_ISDIR(found[1].st_mode):
            continue  # a new directory (or one replacing a non-directory): a real change
        lst = found[1]
        if (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) != (
            lst.st_mode, lst.st_uid, lst.st_gid, lst.st_mtime_ns,
        ) or read_xattrs(d) != read_xattrs(found[0]):
            continue
        pst = os.lstat(d.parent)
        os.rmdir(d)
        # the rmdir itself bumps the parent's mtime: put it back so the parent can be judged
        # (and pruned) on its own merits
        os.utime(d.parent, ns=(pst.st_atime_ns, pst.st_mtime_ns), follow_symlinks=False)
        removed += 1
    return removed


def _is_url(src: str) -> bool:
    """An HTTP(S) download: not a git repository (``https://host/repo.git``)."""
    return src.startswith(("http://", "https://")) and not _is_git(src)


def _is_git(src: str) -> bool:
    try:
        return gitsrc.parse_git_ref(src) is not None
    except InputError:
        return True  # a git URL with a bad query: an error when it is used


def _git_sources(op: CopyOp) -> dict[str, gitsrc.GitRef]:
    """The sources of ``op`` that are git repositories, parsed, with ADD's flags applied."""
    found: dict[str, gitsrc.GitRef] = {}
    for s in op.sources:
        ref = gitsrc.parse_git_ref(s)
        if ref is None:
            continue
        if not op.is_add:
            raise InputError(f"COPY {s}: source can't be a git ref for COPY", hint="use ADD")
        if op.checksum and len(op.sources) != 1:
            raise InputError("ADD --checksum can't be specified for multiple sources")
        found[s] = gitsrc.apply_add_flags(ref, s, keep_git_dir=op.keep_git_dir, checksum=op.checksum)
    return found


@dataclass(frozen=True)
class _Download:
    path: Path
    digest: Digest
    filename: str
    mtime: int | None


def _download(url: str, tmp_dir: Path) -> _Download:
    """Fetch ``url`` into a file under ``tmp_dir``; the file name as BuildKit picks it
    (Content-Disposition, else the last path component, else ``index.html``)."""
    import hashlib
    from email.message import Message
    from email.utils import parsedate_to_datetime
    from urllib.parse import unquote, urlparse

    import httpx

    fd, tmp = tempfile.mkstemp(prefix="http-", dir=tmp_dir)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, httpx.stream("GET", url, follow_redirects=True, timeout=60) as resp:
            if resp.status_code >= 400:
                raise NotFoundError(f"ADD {url}: the server answered {resp.status_code} {resp.reason_phrase}")
            for chunk in resp.iter_bytes(1 << 20):
                h.update(chunk)
                f.write(chunk)
            headers = resp.headers
    except httpx.HTTPError as e:
        os.unlink(tmp)
        raise NetworkError(f"ADD {url}: download failed: {e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    name = ""
    if "content-disposition" in headers:
        msg = Message()
        msg["content-disposition"] = headers["content-disposition"]
        param = msg.get_param("filename", header="content-disposition")
        name = os.path.basename(param) if isinstance(param, str) else ""
    if not name:
        name = os.path.basename(unquote(urlparse(url).path).rstrip("/"))
    if name in ("", ".", ".."):
        name = "index.html"
    mtime = None
    if "last-modified" in headers:
        with contextlib.suppress(TypeError, ValueError):
            mtime = int(parsedate_to_datetime(headers["last-modified"]).timestamp())
    return _Download(Path(tmp), Digest("sha256:" + h.hexdigest()), name, mtime)


def _last_lines(output: str, n: int = 3, limit: int = 300) -> str:
    """The last ``n`` non-empty output lines on one line (errors are one line: `` | `` joins)."""
    lines = [ln.strip() for ln in output.replace("\r", "\n").splitlines() if ln.strip()]
    tail = " | ".join(lines[-n:])
    if len(tail) > limit:
        tail = "..." + tail[-limit:]
    return tail or "(none)"


def _parse_chmod(s: str) -> int | None:
    if not s:
        return None
    try:
        v = int(s, 8)
    except ValueError:
        raise InputError(f"invalid --chmod value {s!r}", hint="use an octal mode like 0755") from None
    if v > 0o7777:
        raise InputError(f"invalid --chmod value {s!r}")
    return v


def _archive_kind(path: Path) -> str | None:
    """What ADD unpacks (Docker: tar, plain or gzip/bzip2/xz compressed; zstd too), else None.
    A compressed file counts only when it decompresses to a tar."""
    import lzma

    with open(path, "rb") as f:
        head = f.read(512)
    kind: str | None = None
    if head[:2] == b"\x1f\x8b":
        kind = "gzip"
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        kind = "zstd"
    elif head[:3] == b"BZh":
        kind = "bz2"
    elif head[:6] == b"\xfd7zXZ\x00":
        kind = "xz"
    elif len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if kind is not None:
        try:
            with _open_archive(path, kind) as z:
                inner = z.read(512)
        except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
            return None
        if not (len(inner) >= 262 and inner[257:262] == b"ustar"):
            return None  # a compressed file that is no tar: copied as is
    return kind


def _open_archive(path: Path, kind: str) -> BinaryIO:
    """A decompressed stream of the archive (a plain tar for apply_layer)."""
    import bz2
    import gzip
    import lzma

    if kind == "gzip":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if kind == "zstd":
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    if kind == "bz2":
        return cast(BinaryIO, bz2.open(path, "rb"))
    if kind == "xz":
        return cast(BinaryIO, lzma.open(path, "rb"))
    return open(path, "rb")


def vertex_platforms(vertices: Sequence[Vertex]) -> set[Platform]:
    """Platforms whose RUN steps must execute (for the emulation pre-check)."""
    return {v.op.platform for v in vertices if isinstance(v.op, ExecOp)}

