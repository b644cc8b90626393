"""Real containers with runc/crun: host arch, 32-bit compat, and foreign arches via QEMU."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from xarch.executor.emulation import EmulationState, EmulationStatus, setup_emulation, tiny_elf
from xarch.executor.mounts import (
    Mount,
    MountStubs,
    SecretStore,
    missing_targets,
    remove_mount_stubs,
    write_network_files,
)
from xarch.executor.runtime import (
    ContainerExitError,
    ContainerTimeout,
    RunResult,
    RuntimeInfo,
    RuntimeProber,
    run,
)
from xarch.executor.spec import runtime_spec
from xarch.oci.platform import Platform, host_platform
from xarch.snapshot.overlay import Snapshotter

from .helpers import FOREIGN, make_busybox_rootfs, need_root_runc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runtime() -> RuntimeInfo:
    need_root_runc()
    return RuntimeProber().detect()


def exec_in(
    rootfs: Path,
    args: list[str],
    runtime: RuntimeInfo,
    bundle: Path,
    *,
    platform: Platform | None = None,
    mounts: tuple[Mount, ...] = (),
    network: str = "sandbox",
    user: tuple[int, int, tuple[int, ...]] = (0, 0, ()),
) -> RunResult:
    net = write_network_files(bundle / "net", hostname="buildkitsandbox", network=network)
    spec = runtime_spec(
        args=args,
        env=["PATH=/bin", "HOME=/root"],
        cwd="/",
        user=user,
        hostname="buildkitsandbox",
        rootfs=str(rootfs),
        mounts=list(mounts),
        network=network,  # type: ignore[arg-type,unused-ignore]
        platform=platform or host_platform(),
        host=host_platform(),
        resolv_conf=str(net.resolv_conf),
        hosts_file=str(net.hosts),
    )
    return run(spec, bundle, runtime=runtime, timeout=120)


def test_uname_host(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    res = exec_in(host_rootfs, ["uname", "-m"], runtime, tmp_path / "b")
    expected = {"amd64": "x86_64", "arm64": "aarch64"}.get(host_platform().architecture)
    if expected:
        assert res.output_tail.strip() == expected
    assert res.runtime_name == runtime.name
    # /etc/hosts and /etc/resolv.conf stubs were created by the runtime in the rootfs
    assert res.exit_code == 0


def test_container_environment(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    script = (
        "hostname; id -u; cat /etc/hosts | head -n1; "
        "ls /dev/null /dev/zero /dev/urandom /dev/tty; "
        "touch /sys/x 2>/dev/null && echo sys-rw || echo sys-ro; "
        "cat /proc/kcore 2>/dev/null | head -c1 | wc -c || true"
    )
    res = exec_in(host_rootfs, ["sh", "-c", script], runtime, tmp_path / "b")
    lines = res.output_tail.splitlines()
    assert lines[0] == "buildkitsandbox"
    assert lines[1] == "0"
    assert "buildkitsandbox" in lines[2]
    assert "/dev/urandom" in res.output_tail
    assert "sys-ro" in lines


def test_network_none_has_only_lo(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    res = exec_in(host_rootfs, ["ls", "/sys/class/net"], runtime, tmp_path / "b", network="none")
    assert res.output_tail.split() == ["lo"]


def test_failing_step(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    with pytest.raises(ContainerExitError) as ei:
        exec_in(host_rootfs, ["sh", "-c", "echo about to fail; exit 3"], runtime, tmp_path / "b")
    assert ei.value.exit_code == 3
    assert "about to fail" in ei.value.output_tail
    assert ei.value.runtime_name == runtime.name


def test_timeout_kills_real_container(
    host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path
) -> None:
    spec = runtime_spec(
        args=["sleep", "60"],
        env=["PATH=/bin"],
        cwd="/",
        user=(0, 0, ()),
        hostname="t",
        rootfs=str(host_rootfs),
        platform=host_platform(),
    )
    start = time.monotonic()
    with pytest.raises(ContainerTimeout):
        run(spec, tmp_path / "b", runtime=runtime, timeout=1, container_id="xarch-test-timeout")
    assert time.monotonic() - start < 20
    listing = subprocess.run(
        [runtime.path, "list", "-q"], capture_output=True, text=True, check=False
    )
    assert "xarch-test-timeout" not in listing.stdout


def test_missing_command_is_a_clear_failure(
    host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path
) -> None:
    with pytest.raises(ContainerExitError) as ei:
        exec_in(host_rootfs, ["/bin/does-not-exist"], runtime, tmp_path / "b")
    assert ei.value.exit_code != 0
    assert "does-not-exist" in str(ei.value)


def test_secret_and_cache_mounts(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    targets = ["/run/secrets/token", "/root/.cache/x", "/etc/resolv.conf", "/etc/hosts"]
    stubs = missing_targets(host_rootfs, targets)
    with SecretStore() as secrets:
        secrets.add("token", b"hunter2")
        mounts = (
            secrets.mount("token", "/run/secrets/token"),
            Mount("cache", str(cache), "/root/.cache/x"),
        )
        script = (
            "cat /run/secrets/token; echo; stat -c %a /run/secrets/token; "
            "echo data > /root/.cache/x/f; "
            "(echo nope > /run/secrets/token) 2>/dev/null && echo secret-writable || echo secret-ro"
        )
        res = exec_in(host_rootfs, ["sh", "-c", script], runtime, tmp_path / "b", mounts=mounts)
    lines = res.output_tail.splitlines()
    assert lines[:2] == ["hunter2", "400"]
    assert lines[-1] == "secret-ro"
    assert (cache / "f").read_text() == "data\n"
    # the secret never touched the rootfs; only an empty mount stub did, and it goes away
    assert (host_rootfs / "run" / "secrets" / "token").stat().st_size == 0
    remove_mount_stubs(host_rootfs, stubs)
    assert not (host_rootfs / "run").exists()
    assert not (host_rootfs / "root" / ".cache").exists()
    assert not (host_rootfs / "etc" / "hosts").exists()


@pytest.mark.slow
def test_step_on_overlay_snapshot(host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "snaps")
    m = snap.prepare("step1", [host_rootfs])
    with snap.mounted("step1") as rootfs:
        stubs = MountStubs.record(rootfs, ["/etc/hosts", "/etc/resolv.conf"])
        exec_in(rootfs, ["sh", "-c", "echo hi > /made; rm /bin/cat"], runtime, tmp_path / "b")
        assert stubs.cleanup() == ["/etc/hosts", "/etc/resolv.conf"]
    c = snap.commit("step1")
    assert (c.upper / "made").read_text() == "hi\n"
    if m.kind == "overlay":
        wh = (c.upper / "bin" / "cat").lstat()
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        names = {str(p.relative_to(c.upper)) for p in c.upper.rglob("*")}
        # /etc was copied up to hold the stubs; it must be empty and look unchanged
        assert names <= {"made", "bin", "bin/cat", "etc"}, (
            "mount stubs or runtime files leaked into the layer"
        )
        if (c.upper / "etc").exists():
            assert list((c.upper / "etc").iterdir()) == []
            assert (c.upper / "etc").stat().st_mtime_ns == (host_rootfs / "etc").stat().st_mtime_ns
    assert (host_rootfs / "bin" / "cat").is_symlink()  # the lower is untouched
    snap.remove("step1")


@pytest.mark.slow
def test_386_runs_natively(
    runtime: RuntimeInfo, foreign_busybox: Callable[[str], Path], tmp_path: Path
) -> None:
    if host_platform().architecture != "amd64":
        pytest.skip("needs an amd64 host")
    p = Platform.parse("linux/386")
    st = EmulationStatus.probe(p)
    if st.state is EmulationState.UNAVAILABLE:
        pytest.skip(f"386 cannot run here: {st.reason}")
    rootfs = make_busybox_rootfs(foreign_busybox("i386"), tmp_path / "rootfs")
    res = exec_in(rootfs, ["sh", "-c", "echo ran; uname -m"], runtime, tmp_path / "b", platform=p)
    lines = res.output_tail.splitlines()
    assert lines[0] == "ran"
    # LINUX32 personality is honoured by crun and runc >= 1.2; runc 1.1 ignores it.
    assert lines[1] in ("i686", "x86_64")


@pytest.mark.slow
@pytest.mark.parametrize("platform", list(FOREIGN))
def test_foreign_arch_via_qemu(
    platform: str, runtime: RuntimeInfo, foreign_busybox: Callable[[str], Path], tmp_path: Path
) -> None:
    debarch, expected = FOREIGN[platform]
    p = Platform.parse(platform)
    if p.architecture == host_platform().architecture:
        pytest.skip("native here")
    if os.geteuid() != 0:
        pytest.skip("setup_emulation needs root")
    rootfs = make_busybox_rootfs(foreign_busybox(debarch), tmp_path / "rootfs")
    setup_emulation([platform])
    assert EmulationStatus.probe(p).state is EmulationState.EMULATED
    res = exec_in(rootfs, ["uname", "-m"], runtime, tmp_path / "b", platform=p)
    assert res.output_tail.strip() == expected


@pytest.mark.parametrize(
    "platform", ["linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/386", "linux/amd64"]
)
def test_tiny_elf_in_container(platform: str, runtime: RuntimeInfo, tmp_path: Path) -> None:
    """Works for arches without a busybox package too (riscv64 is not in Debian 12)."""
    from xarch.executor.emulation import qemu_arch

    p = Platform.parse(platform)
    arch = qemu_arch(p)
    st = EmulationStatus.probe(p)
    if st.state is EmulationState.UNAVAILABLE:
        setup_emulation([platform])
    blob = tiny_elf(arch)
    assert blob is not None
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "probe").write_bytes(blob)
    (rootfs / "probe").chmod(0o755)
    with pytest.raises(ContainerExitError) as ei:
        exec_in(rootfs, ["/probe"], runtime, tmp_path / "b", platform=p)
    assert ei.value.exit_code == 42
