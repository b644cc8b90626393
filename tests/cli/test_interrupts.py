"""The CLI's signal handling: SIGINT/SIGTERM/SIGHUP -> one line, 130/143/129, fast; later
signals cannot cut the cleanup short; a hung cleanup or a straggler thread cannot hold the
exit. Runs a real ``xarch`` entry point (with one extra test command) in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xarch.cli.main import HARD_EXIT_AFTER

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """\
    import sys, threading, time
    import click
    from xarch.cli.main import cli, main

    @cli.command("hang")
    @click.option("--cleanup", type=float, default=0.0, help="seconds the cleanup takes")
    @click.option("--straggler", is_flag=True, help="leave a busy non-daemon thread")
    def hang(cleanup: float, straggler: bool) -> None:
        if straggler:
            threading.Thread(target=time.sleep, args=(30,)).start()
        try:
            # "ready" inside the try: a signal right after it must find the finally armed
            print("ready", flush=True)
            time.sleep(60)
        finally:
            time.sleep(cleanup)
            print("cleaned", flush=True)

    main(sys.argv[1:])
    """
)


def _start(*args: str, ignore: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    def setup() -> None:
        for sig in ignore:
            signal.signal(sig, signal.SIG_IGN)

    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=setup, start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p


def _finish(p: subprocess.Popen[str], t0: float) -> tuple[int, str, str, float]:
    out, err = p.communicate(timeout=30)
    return p.returncode, out, err, time.monotonic() - t0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                           (signal.SIGHUP, 129)])
def test_signal_exits_with_one_line(sig: signal.Signals, code: int) -> None:
    p = _start("hang")
    t0 = time.monotonic()
    p.send_signal(sig)
    rc, out, err, took = _finish(p, t0)
    assert rc == code, err
    assert err == f"xarch: interrupted ({sig.name})\n"
    assert "cleaned" in out  # the command's finally ran
    assert took < 2


def test_debug_shows_the_traceback() -> None:
    p = _start("--debug", "hang")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc, _, err, _ = _finish(p, t0)
    assert rc == 143
    assert "Traceback" in err and "Interrupted" in err
    assert err.splitlines()[-1] == "xarch: interrupted (SIGTERM)"


def test_a_second_signal_does_not_cut_the_cleanup_short() -> None:
    p = _start("hang", "--cleanup", "0.6")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    rc, out, err, _ = _finish(p, t0)
    assert rc == 143 and "cleaned" in out
    assert err == "xarch: interrupted (SIGTERM)\n"


def test_a_hung_cleanup_cannot_hold_the_exit() -> None:
    p = _start("hang", "--cleanup", "30")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc, out, err, took = _finish(p, t0)
    assert rc == 143
    assert "cleaned" not in out
    assert "cleanup did not finish" in err and "next build/run/test" in err
    assert HARD_EXIT_AFTER <= took < HARD_EXIT_AFTER + 1


def test_a_straggler_thread_cannot_hold_the_exit() -> None:
    p = _start("hang", "--straggler")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc, _, err, took = _finish(p, t0)
    assert rc == 143 and err == "xarch: interrupted (SIGTERM)\n"
    assert took < 2


def test_an_inherited_ignored_signal_stays_ignored() -> None:
    p = _start("hang", ignore=(signal.SIGHUP,))  # nohup
    p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert p.poll() is None
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc, _, _, _ = _finish(p, t0)
    assert rc == 143


def test_handlers_are_restored_after_main() -> None:
    from xarch.cli.main import main

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(SystemExit):
        main(["--version"])
    assert {s: signal.getsignal(s) for s in before} == before
