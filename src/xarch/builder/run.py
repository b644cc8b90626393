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
from xarch.executor.spec import NetworkMode, runtime_spec
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform, host_platform
from xarch.solver.solver import LayerRef
from xarch.transports.copy import copy_image
from xarch.transports.resolve import open_source, parse_location
from xarch.transports.store import LocalStore

# uname -m as each platform reports it (what `xarch test --expect-machine` checks).
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
    """Resolve ``image`` (store name or any location); copies it into the store when remote."""
    loc = parse_location(image, default_store=store, registry_options=registry_options)
    if loc.transport == "store":
        assert loc.tag is not None
        name = loc.tag
        root = store.resolve(name)
    else:
        name = f"xarch-run/{abs(hash(image)) % 10**8}:latest"
        src = open_source(loc)
        sink = store.sink(name)
        try:
            res = copy_image(src, sink)
        finally:
            sink.close()
            src.close()
        root = res.root
    raw = store.content.read_bytes(root.digest)
    doc = parse_any(raw, root.media_type)
    plats: list[tuple[Platform, Descriptor]] = []
    if isinstance(doc, Index):
        for m in doc.manifests:
            if m.platform is not None and m.platform.os != "unknown":
                plats.append((m.platform, m))
    else:
        man = Manifest.parse(raw, root.media_type)
        cfg = ImageConfig.parse(store.content.read_bytes(man.config.digest))
        plats.append((cfg.platform, root))
    return ImageRef(name, root, tuple(plats))


def _pick(ref: ImageRef, platform: Platform | None) -> tuple[Platform, Descriptor]:
    want = platform or host_platform()
    for p, d in ref.platforms:
        if want.matches(p):
            return p, d
    if platform is None and len(ref.platforms) == 1:
        return ref.platforms[0]
    have = ", ".join(str(p) for p, _ in ref.platforms)
    raise NotFoundError(f"{ref.name} has no image for {want} (it has: {have})", hint="pass --platform")


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
    worker = BuildWorker(store.content, home, lambda: runtime, WorkerOptions(context_dir=Path("/")))
    out = bytearray()

    def collect(chunk: bytes) -> None:
        out.extend(chunk)
        if on_output is not None:
            on_output(chunk)

    with worker._rootfs(layers, label="run-image") as (_key, merged):
        uid, gid, groups = resolve_user(merged, conf.get("User") or "")
        step = Path(tempfile.mkdtemp(prefix="xarch-run-", dir=worker.tmp_dir))
        try:
            net = xmounts.write_network_files(step / "etc", network=network)
            spec = runtime_spec(
                args=argv, env=[*(conf.get("Env") or []), *env], cwd=conf.get("WorkingDir") or "/",
                user=(uid, gid, groups), hostname="xarch", rootfs=str(merged), network=network,
                platform=p, resolv_conf=str(net.resolv_conf), hosts_file=str(net.hosts),
            )
            try:
                run_container(spec, step / "bundle", runtime=runtime, stdout_cb=collect,
                              state_root=home / "runtime-state")
                code = 0
            except ContainerExitError as e:
                code = e.exit_code
        finally:
            shutil.rmtree(step, ignore_errors=True)
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
    expect_machine: bool = False,
    platforms: Sequence[Platform] | None = None,
    prober: RuntimeProber | None = None,
) -> list[CheckRow]:
    """Run ``cmd`` (through /bin/sh -c; default: the image's entrypoint/cmd) on every platform."""
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
            machine = UNAME_MACHINE.get(str(p))
            if machine and not re.search(rf"\b{re.escape(machine)}\b", o.output):
                reasons.append(f"expected machine {machine} in the output")
        rows.append(CheckRow(p, not reasons, o.exit_code, o.output, "; ".join(reasons) or "ok"))
    if not rows:
        raise NotFoundError(f"{ref.name}: no platform to test")
    return rows


def split_cmd(s: str) -> list[str]:
    return shlex.split(s)
