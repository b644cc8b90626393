"""The CLI imports a command's module only when that command runs (start-up time)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from xarch.cli.main import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[2]


def test_command_table_matches_the_modules() -> None:
    found: dict[str, str] = {}
    for module in sorted(set(COMMAND_MODULES.values())):
        mod = importlib.import_module(f"xarch.cli.{module}")
        for command in mod.COMMANDS:
            assert command.name is not None
            found[command.name] = module
    assert found == COMMAND_MODULES


def _modules_after(*args: str) -> set[str]:
    code = (
        "import sys\n"
        "from xarch.cli.main import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO / "src")), check=True)
    return set(r.stderr.split())


def test_version_imports_no_command_module() -> None:
    loaded = _modules_after("--version")
    heavy = {"xarch.api", "httpx", "rich", "sqlite3", "zstandard", "isal", "cryptography"}
    assert not {m for m in loaded if m.split(".")[0] in heavy or m in heavy}
    assert not {m for m in loaded if m.startswith("xarch.cli.") and m != "xarch.cli.main"}


def test_help_lists_every_command() -> None:
    r = subprocess.run([sys.executable, "-m", "xarch.cli.main", "--help"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")), check=True)
    listed = {line.split()[0] for line in r.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert listed == set(COMMAND_MODULES)
