"""Dependency direction as a test (the import-linter contract of ARCHITECTURE.md).

Data flows one way: oci <- image <- transports/content/archive <- solver/executor/exporter
<- attest/release <- cli. The frontend sees only oci and graph. A module importing against
the flow fails here with the offending file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "xarch"

BASE = {"errors", "__init__"}  # xarch/errors.py and the package root (version) are free to use
ALLOWED: dict[str, set[str]] = {
    "oci": set(),
    "graph": {"oci"},
    "frontend": {"oci", "graph"},
    "image": {"oci"},
    "content": {"oci", "image"},
    "archive": {"oci", "image"},
    "transports": {"oci", "image", "content", "archive"},
    "snapshot": {"oci", "archive"},
    "executor": {"oci", "snapshot", "archive"},
    "exporter": {"oci", "image", "content", "archive", "transports"},
    "solver": {"oci", "image", "content", "archive", "transports", "graph", "snapshot", "executor", "exporter"},
    # build orchestrates everything below it, attestations included
    "builder": {"oci", "image", "content", "archive", "transports", "graph", "frontend", "snapshot",
              "executor", "exporter", "solver", "attest"},
    "attest": {"oci", "image", "content", "archive", "transports"},
    "release": {"oci", "image", "content", "archive", "transports", "attest"},
}


def _subsystem(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_dependency_direction() -> None:
    violations: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        sub = _subsystem(path)
        if sub in BASE or sub == "cli" or sub not in ALLOWED:
            continue
        allowed = ALLOWED[sub] | BASE | {sub}
        for lineno, mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "xarch" or len(parts) < 2:
                continue
            target = parts[1]
            if target not in allowed:
                violations.append(f"{path.relative_to(SRC.parent)}:{lineno}: {sub} imports xarch.{target}")
    assert not violations, "imports against the data flow:\n" + "\n".join(violations)


def test_every_subsystem_is_known() -> None:
    subs = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unknown = subs - set(ALLOWED) - {"cli"}
    assert not unknown, f"add these subsystems to the contract in {__file__}: {sorted(unknown)}"
