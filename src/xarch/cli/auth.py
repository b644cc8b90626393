"""``xarch login`` / ``xarch logout``: registry credentials in the docker config."""

from __future__ import annotations

import sys

import click

from xarch import api
from xarch.cli.images import ca_file_option, guard, insecure_option, registry_options
from xarch.errors import UsageError


@click.command("login")
@click.argument("registry")
@click.option("-u", "--username", default=None, help="User name.")
@click.option(
    "-p",
    "--password",
    default=None,
    help="Password (visible in the process list and shell history; prefer --password-stdin).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@insecure_option
@ca_file_option
def login_cmd(
    registry: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    insecure: bool,
    ca_file: str | None,
) -> None:
    """Check credentials against REGISTRY and store them (docker config.json or its helper)."""
    if password is not None and password_stdin:
        raise UsageError("--password and --password-stdin exclude each other")
    if password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        click.echo(
            "warning: --password on the command line is insecure; use --password-stdin", err=True
        )
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise UsageError("login needs --username (no terminal to prompt on)")
        username = click.prompt("Username")
    if not password:
        if not interactive:
            raise UsageError("login needs a password: pipe it to --password-stdin")
        password = click.prompt("Password", hide_input=True)
    assert username is not None and password is not None
    where = guard(
        lambda: api.login(
            registry,
            username,
            password,
            registry_options=registry_options(insecure=insecure, ca_file=ca_file),
        ),
        f"store credentials for {registry}",
    )
    click.echo(f"Login succeeded (credentials stored in {where})")


@click.command("logout")
@click.argument("registry")
def logout_cmd(registry: str) -> None:
    """Forget the stored credentials of REGISTRY."""
    removed = guard(lambda: api.logout(registry), f"remove credentials for {registry}")
    if removed:
        click.echo(f"Removed login credentials for {api.normalize_registry(registry)}")
    else:
        click.echo(f"Not logged in to {api.normalize_registry(registry)}")


COMMANDS = [login_cmd, logout_cmd]
