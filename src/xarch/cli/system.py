"""``xarch doctor`` and ``xarch setup emulation``: what this machine can build and run."""

from __future__ import annotations

import click

from xarch.cli.main import GlobalOptions


@click.command("doctor")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def doctor_cmd(g: GlobalOptions, fmt: str) -> None:
    """Report, for every platform, whether it runs natively, emulated or not at all; which
    OCI runtime works; overlayfs, binfmt_misc, cgroups and store health."""
    from rich.console import Console

    from xarch.executor.doctor import doctor
    from xarch.transports.store import LocalStore

    report = doctor()
    store = LocalStore.default()
    problems = store.verify() if store.content.is_layout() else []
    if fmt == "json":
        doc = report.to_json()
        doc["store"] = {"root": str(store.root), "problems": problems}
        import json

        click.echo(json.dumps(doc, indent=2))
    else:
        Console().print(report.render())
        state = "ok" if not problems else f"{len(problems)} problem(s): {problems[0]}"
        click.echo(f"store {store.root}: {state}")
    if not report.ok or problems:
        raise SystemExit(1)


@click.group("setup")
def setup_group() -> None:
    """Machine setup (needs root)."""


@setup_group.command("emulation")
@click.option("--arch", "arches", multiple=True,
              help="Architectures to register (arm64, arm, ppc64le, s390x, riscv64, …); default all.")
def setup_emulation_cmd(arches: tuple[str, ...]) -> None:
    """Register QEMU user-mode emulators in binfmt_misc with the fix-binary flag (what
    tonistiigi/binfmt --install does), so foreign-architecture RUN steps execute."""
    from xarch.executor.emulation import setup_emulation

    wanted = [a for s in arches for a in s.split(",") if a] or None
    for r in setup_emulation(wanted):
        detail = f"{r.name} ({r.interpreter}, flags {r.flags})" if r.name else "runs natively"
        click.echo(f"{r.arch:<12} {r.action:<20} {detail}")


COMMANDS = [doctor_cmd, setup_group]
