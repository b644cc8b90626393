"""Issue 10, item 5 acceptance: interrupting ``xarch build`` / ``run`` / ``test`` is clean.

A signal during a long RUN on two platforms (linux/amd64 native, linux/arm64 under QEMU)
exits within 2 s with 128+N, no container process survives, nothing stays mounted under
XARCH_HOME, and the next build in that home works. What a ``kill -9`` leaves is cleaned at
the next start; a live build's containers and mounts in the same home are never touched.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builder.conftest import BASE, make_build_env, usable, write_context
from tests.helpers.system import missing, need, umount_below

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
XARCH = REPO / ".venv" / "bin" / "xarch"
PLATFORMS = "linux/amd64,linux/arm64"
SLEEP = "sleep 61"  # the long RUN; its processes are found by this text in their cmdline
EXIT_WITHIN = 2.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    why = usable()
    if why:
        missing(f"a real build environment ({why})")
    need("runc")
    from xarch.executor.emulation import EmulationStatus, setup_emulation
    from xarch.oci.platform import Platform

    arm64 = Platform.parse("linux/arm64")
    if not EmulationStatus.probe(arm64).runnable:
        setup_emulation([arm64])  # what `xarch setup emulation` does
        if not EmulationStatus.probe(arm64).runnable:
            missing("linux/arm64 emulation (qemu-user-static + binfmt_misc)")
    h = tmp_path_factory.mktemp("interrupt-home").resolve()
    make_build_env(h, ("linux/amd64", "linux/arm64"), riscv=False)
    try:
        yield h
    finally:
        for pid in _procs(SLEEP):
            with_suppress_kill(pid)
        umount_below(h)


def with_suppress_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _xarch(home: Path, *args: str) -> subprocess.Popen[str]:
    # own session: SIGINT goes to the whole group, as Ctrl-C at a terminal does
    return subprocess.Popen([str(XARCH), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, XARCH_HOME=str(home)),
                            start_new_session=True)


def _xarch_ok(home: Path, *args: str) -> str:
    r = subprocess.run([str(XARCH), *args], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, XARCH_HOME=str(home)))
    assert r.returncode == 0, f"xarch {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
    return r.stdout


def _roots(home: Path) -> list[str]:
    return sorted(glob.glob(str(home / "builder" / "owners" / "*" / "rt" / "*")))


def _containers(roots: list[str]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for root in roots:
        if not Path(root).is_dir():
            continue  # no state, no container (and `runc list` would create the root)
        out = subprocess.run(["runc", "--root", root, "list", "--format", "json"],
                             capture_output=True, text=True, check=False).stdout.strip()
        found += json.loads(out) or [] if out else []
    return found


def _procs(marker: str) -> list[int]:
    """Processes (emulated ones too: qemu running the program) whose command line has it."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            cmdline = Path(d, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(d[6:]) != os.getpid():
            pids.append(int(d[6:]))
    return pids


def _mounts(home: Path) -> list[str]:
    top = str(home.resolve())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp == top or mp.startswith(top + "/"):
            out.append(mp)
    return out


def _wait_running(home: Path, p: subprocess.Popen[str], n: int) -> list[str]:
    """Wait until ``n`` containers run the long RUN; returns their state roots."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise AssertionError(f"xarch exited early ({p.returncode}): {p.communicate()[1]}")
        roots = _roots(home)
        running = [c for c in _containers(roots) if c.get("status") == "running"]
        if len(running) >= n and len(_procs(SLEEP)) >= n:
            time.sleep(0.5)  # well inside the step
            return roots
        time.sleep(0.1)
    raise AssertionError("the long RUN never ran on every platform")


def _signal(p: subprocess.Popen[str], sig: signal.Signals) -> float:
    t0 = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(p.pid, sig)  # Ctrl-C
    else:
        p.send_signal(sig)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    return time.monotonic() - t0


def _assert_clean(home: Path, roots: list[str]) -> None:
    assert _procs(SLEEP) == [], "a container process survived"
    assert roots and _containers(roots) == []
    assert _mounts(home) == []
    assert os.listdir(home / "builder" / "owners") == []  # step dirs, runtime state: gone
    assert os.listdir(home / "builder" / "snapshots" / "s") == []


def _long_build(tmp_path: Path) -> tuple[Path, str]:
    nonce = uuid.uuid4().hex[:10]
    ctx = write_context(tmp_path / f"ctx-{nonce}",
                        f"FROM {BASE}\nRUN echo {nonce} > /n && {SLEEP}\nRUN touch /after-{nonce}\n",
                        {})
    return ctx, nonce


def _quick_build(home: Path, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex[:10]
    ctx = write_context(tmp_path / f"quick-{nonce}", f"FROM {BASE}\nRUN echo {nonce} > /ok\n", {})
    digest = _xarch_ok(home, "build", str(ctx), "--platform", PLATFORMS, "-t", f"quick:{nonce}")
    assert digest.strip().startswith("sha256:")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_long_run_on_two_platforms(home: Path, tmp_path: Path,
                                                   sig: signal.Signals, code: int) -> None:
    ctx, nonce = _long_build(tmp_path)
    p = _xarch(home, "--progress", "plain", "build", str(ctx), "--platform", PLATFORMS,
               "-t", f"long:{nonce}")
    roots = _wait_running(home, p, 2)
    took = _signal(p, sig)
    _, err = p.communicate()
    print(f"{sig.name}: exited {p.returncode} after {took:.2f}s")
    assert p.returncode == code, err
    assert took < EXIT_WITHIN, f"{sig.name}: exit took {took:.2f}s"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"xarch: interrupted ({sig.name}): stopped 2 running steps", err
    assert "Traceback" not in err
    assert f"touch /after-{nonce}" not in err  # no later step started
    _assert_clean(home, roots)
    _quick_build(home, tmp_path)


@pytest.mark.parametrize("command", [
    ("run", BASE, "sh", "-c", SLEEP),
    ("run", "--platform", "linux/arm64", BASE, "sh", "-c", SLEEP),
    ("test", BASE, "--cmd", SLEEP, "--platform", "linux/arm64"),
], ids=["run-native", "run-emulated", "test-emulated"])
def test_sigterm_during_run_and_test(home: Path, tmp_path: Path, command: tuple[str, ...]) -> None:
    p = _xarch(home, *command)
    roots = _wait_running(home, p, 1)
    took = _signal(p, signal.SIGTERM)
    _, err = p.communicate()
    print(f"xarch {command[0]}: exited {p.returncode} after {took:.2f}s")
    assert p.returncode == 143, err
    assert took < EXIT_WITHIN
    assert err.splitlines()[-1] == "xarch: interrupted (SIGTERM): stopped 1 running container"
    assert "Traceback" not in err
    _assert_clean(home, roots)
    _quick_build(home, tmp_path)


@pytest.mark.parametrize("next_start", ["build", "run", "prune"])
def test_kill_9_leftovers_are_cleaned_at_the_next_start(home: Path, tmp_path: Path,
                                                        next_start: str) -> None:
    ctx, nonce = _long_build(tmp_path)
    p = _xarch(home, "build", str(ctx), "--platform", PLATFORMS, "-t", f"killed:{nonce}")
    roots = _wait_running(home, p, 2)
    p.kill()
    p.communicate()
    # what kill -9 leaves: running containers, mounted overlays, a dead lease
    assert len(_procs(SLEEP)) >= 2 and len(_containers(roots)) == 2
    assert _mounts(home)
    t0 = time.monotonic()
    if next_start == "build":
        _quick_build(home, tmp_path)
    elif next_start == "prune":
        _xarch_ok(home, "prune")
    else:
        assert _xarch_ok(home, "run", BASE, "echo", "hi").strip() == "hi"
    print(f"next {next_start} with the clean-up: {time.monotonic() - t0:.2f}s")
    _assert_clean(home, roots)


def test_a_live_build_in_the_same_home_is_never_touched(home: Path, tmp_path: Path) -> None:
    ctx, nonce = _long_build(tmp_path)
    live = _xarch(home, "build", str(ctx), "--platform", PLATFORMS, "-t", f"live:{nonce}")
    try:
        roots = _wait_running(home, live, 2)
        mounted = _mounts(home)
        procs = sorted(_procs(SLEEP))
        assert _xarch_ok(home, "run", BASE, "echo", "hi").strip() == "hi"
        _quick_build(home, tmp_path)
        assert live.poll() is None
        assert sorted(_procs(SLEEP)) == procs
        assert len([c for c in _containers(roots) if c.get("status") == "running"]) == 2
        assert set(mounted) <= set(_mounts(home))
    finally:
        _signal(live, signal.SIGTERM)
        live.communicate()
    assert live.returncode == 143
    _assert_clean(home, roots)
