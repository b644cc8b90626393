"""The ``xarch`` command: thin click wrappers over the library API.

Every command turns flags into explicit option objects, calls one library function and
renders the result. Errors raised on purpose are ``XarchError``: one line on stderr and the
error's exit code (1, or 2 for usage). Anything else is a bug: a short line, and the
traceback only with ``--debug``.

SIGINT, SIGTERM and SIGHUP raise the library's ``Interrupted`` in the main thread, once: on
its way out every ``finally`` runs (a build cancels its solver and kills its containers,
snapshots are unmounted, step dirs removed), then one line on stderr and exit 128+N.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click

from xarch import __version__
from xarch.errors import Interrupted, XarchError

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Cleaning up after an interrupt takes a fraction of a second. Should something hang, exit
# anyway: the next build, run or test in that XARCH_HOME removes what is left.
HARD_EXIT_AFTER = 1.8
# How long the exit waits for a cancelled build's own threads to end.
STRAGGLER_WAIT = 0.3


@dataclass(frozen=True)
class GlobalOptions:
    debug: bool
    progress: str  # auto | plain | json | tty | quiet


# Which module defines each top-level command: `xarch build` imports only xarch.cli.build (and
# what it needs), `xarch --version` none; `xarch --help` loads them all to list their help.
# tests/cli/test_lazy_commands.py keeps this table equal to the modules' COMMANDS.
COMMAND_MODULES: dict[str, str] = {
    "attestations": "attest", "key": "attest", "sbom": "attest", "sign": "attest",
    "verify": "attest",
    "login": "auth", "logout": "auth",
    "bootstrap": "build", "build": "build", "run": "build", "test": "build",
    "dockerfile": "dockerfile",
    "copy": "images", "images": "images", "inspect": "images", "ls": "images",
    "prune": "images", "rm": "images", "store": "images", "tag": "images",
    "manifest": "manifest",
    "doctor": "system", "setup": "system",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use (see ``COMMAND_MODULES``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            _load(COMMAND_MODULES[cmd_name])
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="xarch", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="XARCH_DEBUG", help="Show tracebacks for errors.")
@click.option(
    "--progress",
    type=click.Choice(["auto", "plain", "tty", "json", "quiet"]),
    default="auto",
    envvar="XARCH_PROGRESS",
    show_default=True,
    help="Progress output: tty bars, plain lines, JSON events, or nothing.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, progress: str) -> None:
    """xarch: build once, ship everywhere. Daemonless multi-architecture images."""
    ctx.obj = GlobalOptions(debug=debug, progress=progress)


def _load(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"xarch.cli.{module}")
    for command in mod.COMMANDS:
        if command.name not in cli.commands:
            cli.add_command(command)


def _register() -> None:
    """Load every command module (what ``--help`` does on demand)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        _load(module)


class _Interrupts:
    """While installed, the first SIGINT/SIGTERM/SIGHUP raises ``Interrupted`` in the main
    thread; later ones are ignored so they cannot cut the cleanup short, and a watchdog exits
    after ``hard_exit_after`` seconds should the cleanup hang. A signal this process inherited
    as ignored (nohup, a non-interactive shell's background job) stays ignored."""

    def __init__(self, hard_exit_after: float = HARD_EXIT_AFTER) -> None:
        self.hard_exit_after = hard_exit_after
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}
        self._watchdog: threading.Timer | None = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for sig in _SIGNALS:
            prev = signal.getsignal(sig)
            if prev is signal.SIG_IGN:
                continue
            self._saved[sig] = prev
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._saved.items():
            signal.signal(sig, prev)
        self._saved.clear()
        self.disarm()

    def disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        self._watchdog = threading.Timer(self.hard_exit_after, self._force_exit, args=(signum,))
        self._watchdog.daemon = True
        self._watchdog.start()
        raise Interrupted(signum)

    def _force_exit(self, signum: int) -> None:
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):
            os.write(2, f"xarch: interrupted ({name}): cleanup did not finish within "
                        f"{self.hard_exit_after:g}s; the next build/run/test removes the "
                        "rest\n".encode())
        os._exit(128 + signum)


def _exit_interrupted(e: Interrupted, debug: bool, guard: _Interrupts,
                      before: set[threading.Thread]) -> None:
    if debug:
        traceback.print_exception(e)
    click.echo(f"xarch: {e}", err=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # A cancelled build's step that cannot be stopped (an uninterruptible copy) must not hold
    # the exit; interpreter shutdown would join it. What it leaves, the next start cleans.
    end = time.monotonic() + STRAGGLER_WAIT
    for t in set(threading.enumerate()) - before:
        if not t.daemon and t is not threading.current_thread():
            t.join(max(0.0, end - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in set(threading.enumerate()) - before):
        os._exit(e.exit_code)
    guard.disarm()
    sys.exit(e.exit_code)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    before = set(threading.enumerate())
    guard = _Interrupts()
    with guard:
        try:
            _main(argv, debug)
        except Interrupted as e:  # also when it lands in one of _main's except clauses
            _exit_interrupted(e, debug, guard, before)


def _main(argv: list[str] | None, debug: bool) -> None:
    try:
        rv = cli.main(args=argv, prog_name="xarch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: click's own message, exit 2
        e.show()
        sys.exit(e.exit_code)
    except XarchError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:  # a bug: keep it to one line unless asked
        if debug:
            traceback.print_exc()
        click.echo(f"internal error: {type(e).__name__}: {e} (re-run with --debug for details)", err=True)
        sys.exit(1)
    # standalone_mode=False returns ctx.exit()'s code (e.g. from --version) instead of exiting.
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
