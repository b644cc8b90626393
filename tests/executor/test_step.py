from __future__ import annotations

from pathlib import Path

import pytest

from xarch.errors import RuntimeFailure
from xarch.executor.mounts import SecretStore
from xarch.executor.runtime import ContainerExitError, RuntimeInfo, RuntimeProber
from xarch.executor.step import StepOptions, run_step
from xarch.oci.platform import Platform, host_platform
from xarch.snapshot.overlay import Snapshotter

from .helpers import need_root_runc


def test_unrunnable_platform_fails_before_starting(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    never = RuntimeInfo("runc", str(tmp_path / "no-such-runtime"), "0")
    with pytest.raises(RuntimeFailure) as ei:
        run_step(
            rootfs,
            tmp_path / "scratch",
            StepOptions(args=("true",)),
            platform=Platform.parse("linux/riscv64"),
            runtime=never,
            host=Platform.parse("linux/amd64"),
            binfmt_dir=empty,
            qemu_dir=empty,
        )
    assert str(ei.value) == (
        "linux/riscv64 cannot run here: install qemu-user-static and run `xarch setup emulation`"
    )
    assert list(rootfs.iterdir()) == []


@pytest.fixture(scope="module")
def runtime() -> RuntimeInfo:
    need_root_runc()
    return RuntimeProber().detect()


@pytest.mark.integration
def test_step_with_secret_on_snapshot(
    host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path
) -> None:
    snap = Snapshotter(tmp_path / "snaps")
    snap.prepare("s", [host_rootfs])
    out: list[bytes] = []
    with SecretStore() as secrets, snap.mounted("s") as rootfs:
        secrets.add("tok", b"hunter2")
        opts = StepOptions(
            args=("sh", "-c", "cat /run/secrets/tok > /dev/null && echo used-secret > /result"),
            env=("PATH=/bin",),
            mounts=(secrets.mount("tok", "/run/secrets/tok"),),
        )
        res = run_step(
            rootfs,
            tmp_path / "scratch",
            opts,
            platform=host_platform(),
            runtime=runtime,
            stdout_cb=out.append,
        )
    assert res.exit_code == 0
    c = snap.commit("s")
    files = sorted(str(p.relative_to(c.upper)) for p in c.upper.rglob("*"))
    if c.kind == "overlay":
        # neither the secret, nor its mount stub, nor /etc/hosts stubs are in the layer
        assert [f for f in files if not f.startswith("etc")] == ["result"]
        if (c.upper / "etc").exists():
            assert list((c.upper / "etc").iterdir()) == []
    assert b"hunter2" not in b"".join(out)
    for p in c.upper.rglob("*"):
        if p.is_file():
            assert b"hunter2" not in p.read_bytes()


@pytest.mark.integration
def test_failed_step_still_removes_stubs(
    host_rootfs: Path, runtime: RuntimeInfo, tmp_path: Path
) -> None:
    opts = StepOptions(args=("sh", "-c", "exit 5"), env=("PATH=/bin",))
    with pytest.raises(ContainerExitError) as ei:
        run_step(host_rootfs, tmp_path / "scratch", opts, platform=host_platform(), runtime=runtime)
    assert ei.value.exit_code == 5
    assert not (host_rootfs / "etc" / "hosts").exists()
    assert not (host_rootfs / "etc" / "resolv.conf").exists()
