"""``xarch dockerfile parse|check``: the frontend on its own, for comparison and linting."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xarch.errors import InputError

if TYPE_CHECKING:
    from xarch.frontend.dockerfile.parser import Node, ParseResult


def _read(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "Dockerfile"
    p = Path(path)
    try:
        return p.read_bytes(), p.name
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="pass the path of a Dockerfile") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", hint="pass the Dockerfile, e.g. DIR/Dockerfile") from None


@click.group("dockerfile")
def dockerfile_group() -> None:
    """Parse and lint Dockerfiles with BuildKit's semantics."""


@dockerfile_group.command("parse")
@click.argument("file", default="Dockerfile")
@click.option("--dump", "mode", flag_value="dump", default=True, help="BuildKit Node.Dump() form (default).")
@click.option("--json", "mode", flag_value="json", help="The AST as JSON, with line ranges.")
def parse_cmd(file: str, mode: str) -> None:
    """Parse FILE ('-' for stdin) and print its AST."""
    from xarch.frontend.dockerfile import parser

    data, name = _read(file)
    result = parser.parse(data, filename=name)
    if mode == "json":
        import json

        click.echo(json.dumps(_ast_json(result), indent=2))
    else:
        sys.stdout.write(parser.dump(result))
    for w in result.warnings:
        click.echo(f"WARN: {w.short} (line {w.line})", err=True)


def _node_json(n: Node) -> dict[str, object]:
    return {
        "instruction": n.value,
        "flags": list(n.flags),
        "args": [_node_json(c) for c in n.next.children] if n.next is not None and n.next.children
        else n.args(),
        "json": bool(n.attributes.get("json")),
        "heredocs": [{"name": h.name, "content": h.content, "expand": h.expand, "chomp": h.chomp}
                     for h in n.heredocs],
        "start_line": n.start_line,
        "end_line": n.end_line,
        "original": n.original,
    }


def _ast_json(result: ParseResult) -> dict[str, object]:
    return {
        "directives": dict(result.directives),
        "escape": result.escape_token,
        "instructions": [_node_json(c) for c in result.ast.children],
        "warnings": [{"short": w.short, "line": w.line} for w in result.warnings],
    }


@dockerfile_group.command("check")
@click.argument("file", default="Dockerfile")
def check_cmd(file: str) -> None:
    """Lint FILE with BuildKit's check rules; exit 1 when `# check=error=true` and warnings exist."""
    from xarch.frontend.dockerfile import check

    data, name = _read(file)
    report = check.check(data, filename=name)
    for w in report.warnings:
        click.echo(w.format(), err=False)
    if report.warnings:
        click.echo(f"{len(report.warnings)} warning(s) found", err=True)
    if report.warnings and report.error_on_warning:
        raise InputError(f"{name}: {len(report.warnings)} check warning(s) with check=error=true")


COMMANDS = [dockerfile_group]
