"""Runtime detection and the run loop, against fake runtimes (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xarch.errors import RuntimeFailure
from xarch.executor.runtime import (
    ContainerExitError,
    ContainerTimeout,
    RuntimeInfo,
    RuntimeProber,
    cgroup_mode,
    clamp_rlimits,
    detect_runtime,
    run,
)

from .helpers import hybrid_cgroups, write_fake


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    write_fake(d, "crun", version="1.8.1", hybrid_fail=True)
    write_fake(d, "runc", version="1.1.5", hybrid_fail=False)
    return d


def test_cgroup_mode_layouts(tmp_path: Path) -> None:
    assert cgroup_mode(hybrid_cgroups(tmp_path)) == "hybrid"
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory")
    assert cgroup_mode(v2) == "v2"
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    assert cgroup_mode(v1) == "v1"
    assert cgroup_mode(tmp_path / "nothing") == "none"


def test_prober_skips_crun_on_hybrid_cgroups_by_trial(fakes: Path, tmp_path: Path) -> None:
    prober = RuntimeProber(search_path=str(fakes), trial=True, cgroup_root=hybrid_cgroups(tmp_path))
    info = prober.detect()
    assert info.name == "runc"
    assert info.path == str(fakes / "runc")
    assert info.version == "1.1.5"
    crun = prober.probe("crun")
    assert not crun.usable
    assert "hybrid" in crun.reason and "crun" in crun.reason
    assert prober.probe("runc").usable
    # the verdict is cached per prober: no second trial run
    calls = (fakes / "calls.log").read_text().splitlines()
    detect_runtime(prober=prober)
    assert (fakes / "calls.log").read_text().splitlines() == calls
    assert sum(1 for c in calls if c.startswith("crun") and " run " in f" {c} ") == 1


def test_prober_static_check_without_trial(fakes: Path, tmp_path: Path) -> None:
    prober = RuntimeProber(
        search_path=str(fakes), trial=False, cgroup_root=hybrid_cgroups(tmp_path)
    )
    crun = prober.probe("crun")
    assert not crun.usable and "hybrid" in crun.reason
    assert prober.detect().name == "runc"
    assert not any(" run " in c for c in (fakes / "calls.log").read_text().splitlines())


def test_prober_prefers_crun_when_it_works(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    write_fake(d, "crun", version="1.14", hybrid_fail=False)
    write_fake(d, "runc", version="1.1.5", hybrid_fail=False)
    assert RuntimeProber(search_path=str(d), trial=True).detect().name == "crun"
    assert RuntimeProber(search_path=str(d), trial=True).detect(["runc", "crun"]).name == "runc"


def test_no_runtime_explains_each(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    write_fake(d, "crun", version="1.8.1", hybrid_fail=True)
    with pytest.raises(RuntimeFailure) as ei:
        RuntimeProber(search_path=str(d), trial=True).detect()
    msg = str(ei.value)
    assert "crun:" in msg and "hybrid" in msg
    assert "runc: runc not found" in msg


def fake_info(fakes: Path) -> RuntimeInfo:
    return RuntimeInfo("runc", str(fakes / "runc"), "1.1.5")


def mini_spec(*args: str) -> dict:
    return {"ociVersion": "1.0.2", "process": {"args": list(args), "terminal": False}}


def test_run_streams_output_and_deletes(fakes: Path, tmp_path: Path) -> None:
    chunks: list[bytes] = []
    res = run(
        mini_spec("sh", "-c", "echo hello; echo world >&2"),
        tmp_path / "bundle",
        runtime=fake_info(fakes),
        stdout_cb=chunks.append,
        container_id="c1",
        state_root=tmp_path / "state",
    )
    assert res.exit_code == 0 and res.runtime_name == "runc"
    out = b"".join(chunks).decode()
    assert "hello" in out and "world" in out
    assert res.output_tail.splitlines()[-2:] == ["hello", "world"] or "world" in res.output_tail
    assert (
        json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["args"][0] == "sh"
    )
    calls = (fakes / "calls.log").read_text().splitlines()
    assert calls[-1] == f"runc --root {tmp_path / 'state'} delete -f c1"


def test_run_failure_carries_exit_code_and_tail(fakes: Path, tmp_path: Path) -> None:
    with pytest.raises(ContainerExitError) as ei:
        run(
            mini_spec("sh", "-c", "for i in $(seq 1 50); do echo line$i; done; exit 7"),
            tmp_path / "b",
            runtime=fake_info(fakes),
            container_id="c2",
        )
    e = ei.value
    assert e.exit_code == 7
    assert e.output_tail.splitlines()[-1] == "line50"
    assert "line1\n" not in e.output_tail + "\n"  # only the tail is kept
    assert "exit code 7" in str(e)
    assert (fakes / "calls.log").read_text().splitlines()[-1] == "runc delete -f c2"


def test_run_stdin(fakes: Path, tmp_path: Path) -> None:
    res = run(mini_spec("cat"), tmp_path / "b", runtime=fake_info(fakes), stdin=b"from-stdin\n")
    assert res.output_tail == "from-stdin"


def test_run_timeout_kills_and_deletes(fakes: Path, tmp_path: Path) -> None:
    with pytest.raises(ContainerTimeout, match="timed out"):
        run(
            mini_spec("sleep", "30"),
            tmp_path / "b",
            runtime=fake_info(fakes),
            timeout=0.5,
            container_id="c3",
        )
    calls = (fakes / "calls.log").read_text().splitlines()
    assert "runc kill c3 KILL" in calls
    assert calls[-1] == "runc delete -f c3"


def test_run_missing_runtime_binary(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="cannot execute OCI runtime"):
        run(
            mini_spec("true"),
            tmp_path / "b",
            runtime=RuntimeInfo("runc", str(tmp_path / "nope"), "1"),
        )


def test_clamp_rlimits_never_raises_above_hard_limit() -> None:
    import resource

    spec = {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1 << 40, "soft": 1 << 40}]}}
    out = clamp_rlimits(spec)
    hard = out["process"]["rlimits"][0]["hard"]
    assert hard <= int(Path("/proc/sys/fs/nr_open").read_text())
    assert out["process"]["rlimits"][0]["soft"] <= hard
    assert spec["process"]["rlimits"][0]["hard"] == 1 << 40  # input untouched
    if os.geteuid() != 0:
        assert hard <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_run_callback_error_does_not_hang(fakes: Path, tmp_path: Path) -> None:
    def boom(_: bytes) -> None:
        raise ValueError("consumer broke")

    with pytest.raises(ValueError, match="consumer broke"):
        run(
            mini_spec("sh", "-c", "head -c 1000000 /dev/zero"),
            tmp_path / "b",
            runtime=fake_info(fakes),
            stdout_cb=boom,
            timeout=30,
            container_id="c4",
        )
    assert (fakes / "calls.log").read_text().splitlines()[-1] == "runc delete -f c4"
