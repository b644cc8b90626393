"""One build step end to end: check the platform can run, generate /etc files, build the
spec, run it, and take the runtime's mount stubs back out of the rootfs.

The solver owns snapshots (prepare/mount before, commit after); this module only needs the
mounted rootfs path and a scratch directory outside the snapshot for the bundle and the
generated files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xarch.executor.emulation import BINFMT_DIR, QEMU_DIR, ensure_runnable
from xarch.executor.mounts import DEFAULT_HOSTNAME, Mount, MountStubs, write_network_files
from xarch.executor.runtime import Containers, RunResult, RuntimeInfo, run
from xarch.executor.spec import DEFAULT_CAPABILITIES, NetworkMode, runtime_spec
from xarch.oci.platform import Platform, host_platform


@dataclass(frozen=True)
class StepOptions:
    args: tuple[str, ...]
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    cwd: str = "/"
    user: tuple[int, int, tuple[int, ...]] = (0, 0, ())
    hostname: str = DEFAULT_HOSTNAME
    network: NetworkMode = "sandbox"
    mounts: tuple[Mount, ...] = ()
    readonly_rootfs: bool = False
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    timeout: float | None = None
    stdin: bytes | None = None
    extra_stub_targets: tuple[str, ...] = field(default=())


def run_step(
    rootfs: Path,
    scratch: Path,
    opts: StepOptions,
    *,
    platform: Platform,
    runtime: RuntimeInfo,
    stdout_cb: Callable[[bytes], None] | None = None,
    host: Platform | None = None,
    binfmt_dir: Path = BINFMT_DIR,
    qemu_dir: Path = QEMU_DIR,
    state_root: Path | None = None,
    containers: Containers | None = None,
) -> RunResult:
    """Run ``opts.args`` in ``rootfs`` for ``platform``.

    Raises RuntimeFailure (with the fix) before starting anything when the platform cannot
    run here, and ContainerExitError when the step fails. Mount stubs are removed in every
    case so a failed step leaves no trace in the snapshot either. ``containers`` is the
    registry a cancel stops the step's container through (see :class:`Containers`).
    """
    host = host or host_platform()
    ensure_runnable(platform, host=host, binfmt_dir=binfmt_dir, qemu_dir=qemu_dir)
    net = write_network_files(scratch / "etc", hostname=opts.hostname, network=opts.network)
    targets: Sequence[str] = [
        "/etc/resolv.conf",
        "/etc/hosts",
        *(m.target for m in opts.mounts),
        *opts.extra_stub_targets,
    ]
    stubs = MountStubs.record(rootfs, targets)
    spec = runtime_spec(
        args=opts.args,
        env=opts.env,
        cwd=opts.cwd,
        user=opts.user,
        hostname=opts.hostname,
        rootfs=str(rootfs),
        readonly_rootfs=opts.readonly_rootfs,
        mounts=opts.mounts,
        network=opts.network,
        platform=platform,
        host=host,
        capabilities=opts.capabilities,
        resolv_conf=str(net.resolv_conf),
        hosts_file=str(net.hosts),
    )
    try:
        return run(
            spec,
            scratch / "bundle",
            runtime=runtime,
            stdin=opts.stdin,
            stdout_cb=stdout_cb,
            timeout=opts.timeout,
            state_root=state_root,
            containers=containers,
        )
    finally:
        stubs.cleanup()
