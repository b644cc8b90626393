"""Every benchmark script starts as the README tells people to run it (``python bench/X.py``).

bench/copy.py (the name issue #2 gives it) shadows the standard library's ``copy`` for any
script run from bench/ unless the script drops its directory from sys.path first; this
catches a script that forgot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))  # _x: helpers


def test_there_are_scripts() -> None:
    assert {"copy.py", "parse.py", "build.py", "sbom_vs_copy.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts(script: str) -> None:
    p = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        cwd=BENCH.parent,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "usage:" in p.stdout
