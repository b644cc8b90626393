"""``xarch run`` / ``xarch test``: run an image (any platform of an index) in the OCI runtime.

The image's layers are stacked read-write in a throwaway overlay snapshot; entrypoint, cmd,
env, user and workdir come from its config, as ``docker run`` does. Foreign architectures run
through binfmt_misc + QEMU. Nothing is written back to the image.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xarch.builder.users import resolve_user
from xarch.builder.worker import BuildWorker, WorkerOptions
from xarch.errors import NotFoundError, UsageError
from xarch.executor import mounts as xmounts
from xarch.executor.emulation import EmulationStatus
from xarch.executor.runtime import ContainerExitError, RuntimeProber
from xarch.executor.runtime import run as run_container
from xarch.executor.seccomp import default_profile as default_seccomp
from xarch.executor.spec import DEFAULT_CAPABILITIES, NetworkMode, runtime_spec
from xarch.image.select import match
from xarch.image.view import open_root, root_platforms
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform, host_platform
from xarch.solver.solver import LayerRef
from xarch.transports.base import ImageSource
from xarch.transports.copy import copy_image
from xarch.transports.resolve import open_source, parse_location
from xarch.transports.store import ContentSink, ContentSource, LocalStore

# uname -m as each platform reports it (what `xarch test` checks unless --no-expect-machine).
UNAME_MACHINE = {
    "linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l",
    "linux/arm/v6": "armv6l", "linux/386": "i686", "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x", "linux/riscv64": "riscv64", "linux/mips64le": "mips64",
}


@dataclass(frozen=True)
class RunOutcome:
    platform: Platform
    exit_code: int
    output: str
    runtime: str


@dataclass(frozen=True)
class ImageRef:
    """An image resolved into the local store: root descriptor and per-platform manifests."""

    name: str
    root: Descriptor
    platforms: tuple[tuple[Platform, Descriptor], ...]


def ensure_local(store: LocalStore, image: str, *, registry_options: Any = None) -> ImageRef:
    """Resolve ``image`` (store name or any location). Remote content goes into the store's
    pull cache (recorded under the reference, never under a name the user did not give)."""
    loc = parse_location(image, default_store=store, registry_options=registry_options)
    if loc.transport == "store":
        assert loc.tag is not None
        name = loc.tag
        root = store.resolve(name)
        src: ImageSource = store.source(name)
    else:
        name = image
        src = open_source(loc)
        sink = ContentSink(store, image)
        try:
            root = copy_image(src, sink).root
        finally:
            sink.close()
            src.close()
        if loc.transport == "docker" and loc.reference is not None:
            store.record_pull(str(loc.reference), root)
        src = ContentSource(store, name, root)
    view = open_root(src, root)
    return ImageRef(name, root, tuple(root_platforms(src, view)))


def _pick(ref: ImageRef, platform: Platform | None) -> tuple[Platform, Descriptor]:
    want = platform or host_platform()
    found = match([d.replace(platform=p) for p, d in ref.platforms], want)
    if found is not None:
        return next((p, d) for p, d in ref.platforms if d.digest == found.digest)
    if platform is None and len(ref.platforms) == 1:
        return ref.platforms[0]
    have = ", ".join(str(p) for p, _ in ref.platforms)
    raise NotFoundError(f"{ref.name} has no image for {want} (available: {have})",
                        hint="pass --platform")


def run_image(
    store: LocalStore,
    ref: ImageRef,
    *,
    platform: Platform | None = None,
    args: Sequence[str] = (),
    entrypoint: Sequence[str] | None = None,
    env: Sequence[str] = (),
    network: NetworkMode = "host",
    on_output: Callable[[bytes], None] | None = None,
    prober: RuntimeProber | None = None,
) -> RunOutcome:
    p, mdesc = _pick(ref, platform)
    status = EmulationStatus.probe(p)
    if not status.runnable:
        raise UsageError(f"cannot run {p} here: {status.reason}",
                         hint="install qemu-user-static and run `xarch setup emulation`")
    man = Manifest.parse(store.content.read_bytes(mdesc.digest), mdesc.media_type)
    cfg = ImageConfig.parse(store.content.read_bytes(man.config.digest))
    conf = cfg.config or {}
    ep = list(entrypoint) if entrypoint is not None else list(conf.get("Entrypoint") or [])
    cmd = list(args) if args else ([] if entrypoint is not None else list(conf.get("Cmd") or []))
    argv = ep + cmd
    if not argv:
        raise UsageError(f"{ref.name} ({p}) has no entrypoint or cmd; give a command")
    layers = tuple(LayerRef(d, diff) for d, diff in zip(man.layers, cfg.diff_ids, strict=True))
    home = store.root.parent / "builder"
    runtime = (prober or RuntimeProber()).detect()
    # the worker's lease: an interrupt (any BaseException) kills the container on its way out
    # (run_container), the snapshot is unmounted, and close() removes the rest
    worker = BuildWorker(store.content, home, lambda: runtime, WorkerOptions(context_dir=Path("/")))
    out = bytearray()

    def collect(chunk: bytes) -> None:
        out.extend(chunk)
        if on_output is not None:
            on_output(chunk)

    try:
        with worker._rootfs(layers, label="run-image") as (_key, merged):
            uid, gid, groups = resolve_user(merged, conf.get("User") or "")
            step = Path(tempfile.mkdtemp(prefix="xarch-run-", dir=worker.tmp_dir))
            try:
                net = xmounts.write_network_files(step / "etc", network=network)
                spec = runtime_spec(
                    args=argv, env=[*(conf.get("Env") or []), *env],
                    cwd=conf.get("WorkingDir") or "/", user=(uid, gid, groups), hostname="xarch",
                    rootfs=str(merged), network=network, platform=p,
                    resolv_conf=str(net.resolv_conf), hosts_file=str(net.hosts),
                    seccomp=default_seccomp(DEFAULT_CAPABILITIES),  # as docker run does
                )
                try:
                    run_container(spec, step / "bundle", runtime=runtime, stdout_cb=collect,
                                  state_root=worker.state_root(runtime),
                                  containers=worker.containers)
                    code = 0
                except ContainerExitError as e:
                    code = e.exit_code
            finally:
                shutil.rmtree(step, ignore_errors=True)
    finally:
        worker.close()
    return RunOutcome(p, code, out.decode(errors="replace"), runtime.name)


@dataclass(frozen=True)
class CheckRow:
    platform: Platform
    ok: bool
    exit_code: int
    output: str
    reason: str


def check_image(
    store: LocalStore,
    ref: ImageRef,
    *,
    cmd: str | None,
    expect: str | None = None,
    expect_machine: bool = True,
    platforms: Sequence[Platform] | None = None,
    prober: RuntimeProber | None = None,
) -> list[CheckRow]:
    """Run ``cmd`` (through /bin/sh -c; default: the image's entrypoint/cmd) on every platform.

    A platform passes when the command exits 0, its output matches ``expect``, and (unless
    ``expect_machine`` is off) ``uname -m`` in its container is that platform's machine: an
    image whose arm64 entry holds amd64 binaries, run natively, fails.
    """
    pattern = re.compile(expect) if expect else None
    rows: list[CheckRow] = []
    prober = prober or RuntimeProber()
    for p, _ in ref.platforms:
        if platforms and not any(w.matches(p) for w in platforms):
            continue
        try:
            if cmd is not None:
                o = run_image(store, ref, platform=p, entrypoint=["/bin/sh", "-c"], args=[cmd], prober=prober)
            else:
                o = run_image(store, ref, platform=p, prober=prober)
        except UsageError as e:
            rows.append(CheckRow(p, False, -1, "", str(e)))
            continue
        reasons = []
        if o.exit_code != 0:
            reasons.append(f"exit code {o.exit_code}")
        if pattern is not None and not pattern.search(o.output):
            reasons.append(f"output does not match {expect!r}")
        if expect_machine:
            mismatch = _machine_mismatch(store, ref, p, cmd, o.output, prober)
            if mismatch:
                reasons.append(mismatch)
        rows.append(CheckRow(p, not reasons, o.exit_code, o.output, "; ".join(reasons) or "ok"))
    if not rows:
        raise NotFoundError(f"{ref.name}: no platform to test")
    return rows


# What else a platform's code may truthfully report: 32-bit ARM code runs on later CPUs too
# (QEMU's default ARM CPU is a v7, a 64-bit ARM kernel says armv8l), i386 code on any x86.
_ALSO_MACHINE: dict[str, tuple[str, ...]] = {
    "linux/arm/v6": ("armv7l", "armv8l"), "linux/arm/v7": ("armv8l",),
    "linux/386": ("i386", "i486", "i586"),
}


def expected_machines(platform: Platform) -> tuple[str, ...]:
    """The ``uname -m`` values that are right for ``platform`` (empty: not known)."""
    key = str(platform)
    first = UNAME_MACHINE.get(key)
    return (first, *_ALSO_MACHINE.get(key, ())) if first else ()


def _machine_mismatch(store: LocalStore, ref: ImageRef, p: Platform, cmd: str | None,
                      output: str, prober: RuntimeProber) -> str | None:
    """Why ``p``'s container does not run as ``p`` (per ``uname -m``), or None when it does."""
    want = expected_machines(p)
    if not want:
        return None
    if cmd is not None and cmd.split() == ["uname", "-m"]:
        seen = output  # the command was the check: no second run
    else:
        probe = run_image(store, ref, platform=p, entrypoint=["uname"], args=["-m"], prober=prober)
        if probe.exit_code != 0:
            return (f"cannot check the machine: `uname -m` exited {probe.exit_code} "
                    "(pass --no-expect-machine for images without uname)")
        seen = probe.output
    lines = seen.strip().splitlines()
    got = lines[-1].strip() if lines else ""
    if got not in want:
        return f"uname -m says {got or '(nothing)'}, expected {want[0]}"
    return None


def split_cmd(s: str) -> list[str]:
    return shlex.split(s)
