"""The ``xarch`` command: thin click wrappers over the library API.

Every command turns flags into explicit option objects, calls one library function and
renders the result. Errors raised on purpose are ``XarchError``: one line on stderr and the
error's exit code (1, or 2 for usage). Anything else is a bug: a short line, and the
traceback only with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import click

from xarch import __version__
from xarch.errors import XarchError


@dataclass(frozen=True)
class GlobalOptions:
    debug: bool
    progress: str  # auto | plain | json | tty | quiet


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _register() -> None:
    # Imported here so `xarch --help` stays fast and a broken optional module cannot hide the rest.
    from xarch.cli import attest, auth, build, dockerfile, images, manifest, system

    for mod in (attest, auth, build, dockerfile, images, manifest, system):
        for command in mod.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        _register()
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
