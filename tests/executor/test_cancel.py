"""Stopping containers: the Containers registry, run() interrupted, leftovers swept.

A fake runtime covers the race (a kill that comes before the container exists); real runc
covers the kill itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xarch.executor.mounts import write_network_files
from xarch.executor.runtime import (
    Cancelled,
    ContainerExitError,
    Containers,
    Interrupted,
    RuntimeInfo,
    RuntimeProber,
    note_stopped,
    remove_containers,
    run,
)
from xarch.executor.spec import runtime_spec
from xarch.oci.platform import host_platform

from .helpers import need_root_runc

# A runtime whose `run` takes FAKE_CREATE_DELAY seconds to "create" the container (a kill in
# that window finds nothing, as with runc), then runs `sleep 60` as the container process.
FAKE = textwrap.dedent(
    """\
    #!{python}
    import os, shutil, subprocess, sys, time
    args = sys.argv[1:]
    root = args[1]
    args = args[2:]
    with open(os.path.join(root, "calls.log"), "a") as f:
        f.write(" ".join(args) + "\\n")
    if args[0] == "run":
        d = os.path.join(root, args[-1])
        os.makedirs(d)
        time.sleep(float(os.environ.get("FAKE_CREATE_DELAY", "0")))
        p = subprocess.Popen(["sleep", "60"])
        with open(os.path.join(root, "pids"), "a") as f:
            f.write(f"{{p.pid}}\\n")
        with open(os.path.join(d, "pid"), "w") as f:
            f.write(str(p.pid))
        sys.exit(128 - p.wait())
    if args[0] == "kill":
        try:
            pid = int(open(os.path.join(root, args[1], "pid")).read())
        except FileNotFoundError:
            sys.stderr.write("container does not exist\\n")
            sys.exit(1)
        os.kill(pid, 9)
    if args[0] == "delete":
        shutil.rmtree(os.path.join(root, args[-1]), ignore_errors=True)
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> RuntimeInfo:
    path = tmp_path / "fake-runc"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return RuntimeInfo("fake", str(path), "1.0")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _in_thread(fn: Any, **kw: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            fn(**kw)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, errors


SPEC = {"process": {"args": ["sleep", "60"]}}


def test_interrupted_describes_itself() -> None:
    e = Interrupted(signal.SIGTERM)
    assert e.exit_code == 143 and str(e) == "interrupted (SIGTERM)"
    note_stopped(e, "step", 2)
    note_stopped(e, "container")
    note_stopped(ValueError(), "step")  # only an Interrupted counts
    assert str(e) == "interrupted (SIGTERM): stopped 1 running container, 2 running steps"
    assert Interrupted(signal.SIGINT).exit_code == 130
    assert Interrupted(signal.SIGHUP).exit_code == 129
    assert not isinstance(e, Exception)  # no `except Exception` on the way out swallows it


def test_cancelled_registry_refuses_new_containers(fake: RuntimeInfo, tmp_path: Path) -> None:
    reg = Containers()
    assert reg.cancel() == 0 and reg.cancelled
    root = tmp_path / "root"
    with pytest.raises(Cancelled):
        run(SPEC, tmp_path / "b", runtime=fake, state_root=root, containers=reg)
    assert not (root / "calls.log").exists()  # the runtime was never asked


def test_cancel_before_the_container_exists_still_stops_it(
    fake: RuntimeInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CREATE_DELAY", "0.6")
    root = tmp_path / "root"
    root.mkdir()
    reg = Containers()
    t, errors = _in_thread(run, spec=SPEC, bundle_dir=tmp_path / "b", runtime=fake,
                           state_root=root, containers=reg)
    deadline = time.monotonic() + 5
    while not reg.live() and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    assert reg.cancel() == 1  # the fake is still "creating": this kill finds nothing
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    calls = (root / "calls.log").read_text().splitlines()
    assert sum(c.startswith("kill ") for c in calls) >= 2  # killed again once it existed
    assert calls[-1].startswith("delete -f ")
    pid = int((root / "pids").read_text())
    deadline = time.monotonic() + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
    assert reg.live() == []


# ----------------------------------------------------------------------------- real runc


@pytest.fixture(scope="module")
def runtime() -> RuntimeInfo:
    need_root_runc()
    return RuntimeProber().detect()


def _spec(rootfs: Path, bundle: Path, args: list[str]) -> dict[str, Any]:
    net = write_network_files(bundle / "net", network="none")
    return runtime_spec(args=args, env=["PATH=/bin"], cwd="/", user=(0, 0, ()),
                        hostname="xarch-test", rootfs=str(rootfs), network="none",
                        platform=host_platform(), resolv_conf=str(net.resolv_conf),
                        hosts_file=str(net.hosts))


def _listed(runtime: RuntimeInfo, root: Path) -> list[dict[str, Any]]:
    out = subprocess.run([runtime.path, "--root", str(root), "list", "--format", "json"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return list(json.loads(out) or []) if out else []


@pytest.fixture
def running(runtime: RuntimeInfo, host_rootfs: Path,
            tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(state root, spec) of a `sleep 60` container; whatever is left is deleted afterwards."""
    root = tmp_path / "state"
    yield root, _spec(host_rootfs, tmp_path / "b", ["sleep", "60"])
    remove_containers(runtime, root)


def _wait_running(runtime: RuntimeInfo, root: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for c in _listed(runtime, root):
            if c.get("status") == "running":
                return c
        time.sleep(0.05)
    raise AssertionError("the container never ran")


@pytest.mark.integration
def test_cancel_kills_a_real_container(runtime: RuntimeInfo, tmp_path: Path,
                                       running: tuple[Path, dict[str, Any]]) -> None:
    root, spec = running
    reg = Containers()
    t, errors = _in_thread(run, spec=spec, bundle_dir=tmp_path / "b", runtime=runtime,
                           state_root=root, containers=reg)
    pid = int(_wait_running(runtime, root)["pid"])
    t0 = time.monotonic()
    assert reg.cancel() == 1
    t.join(5)
    took = time.monotonic() - t0
    assert not t.is_alive() and took < 2, took
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert not _alive(pid)
    assert _listed(runtime, root) == []


class _Boom(BaseException):
    pass


@pytest.mark.integration
def test_an_exception_in_the_waiting_thread_kills_the_container(
    runtime: RuntimeInfo, tmp_path: Path, running: tuple[Path, dict[str, Any]]
) -> None:
    """What a signal handler raising in the main thread (the CLI's, or Ctrl-C's
    KeyboardInterrupt) does to ``xarch run``: the container goes with the exception."""
    root, spec = running
    seen: dict[str, int] = {}

    def boom(signum: int, frame: object) -> None:
        raise _Boom()

    def fire() -> None:
        seen["pid"] = int(_wait_running(runtime, root)["pid"])
        os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, boom)
    try:
        threading.Thread(target=fire, daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(_Boom):
            run(spec, tmp_path / "b", runtime=runtime, state_root=root)
        assert time.monotonic() - t0 < 20
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert not _alive(seen["pid"])
    assert _listed(runtime, root) == []


@pytest.mark.integration
def test_remove_containers_sweeps_a_state_root(runtime: RuntimeInfo, tmp_path: Path,
                                               running: tuple[Path, dict[str, Any]]) -> None:
    root, spec = running
    t, errors = _in_thread(run, spec=spec, bundle_dir=tmp_path / "b", runtime=runtime,
                           state_root=root, container_id="xarch-sweep-me")
    pid = int(_wait_running(runtime, root)["pid"])
    assert remove_containers(runtime, root) == ["xarch-sweep-me"]
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ContainerExitError)
    assert errors[0].exit_code == 137
    assert not _alive(pid)
    assert remove_containers(runtime, root) == []
