"""`xarch dockerfile parse --dump` (the CLI itself) reproduces BuildKit's golden dumps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.vectors import vectors

SUITE = "buildkit-parser"


def _cases(suite: Path) -> list[Path]:
    return sorted(p for p in (suite / "testfiles").iterdir() if p.is_dir())


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "xarch.cli.main", *args], capture_output=True, timeout=60)


def test_cli_dump_matches_every_buildkit_result() -> None:
    cases = _cases(vectors(SUITE))
    assert len(cases) == 33
    failures = []
    for case in cases:
        r = _run("dockerfile", "parse", "--dump", str(case / "Dockerfile"))
        if r.returncode != 0 or r.stdout != (case / "result").read_bytes():
            failures.append(f"{case.name}: rc={r.returncode} {r.stderr.decode()[-200:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["empty_dockerfile", "only_comments", "env_no_value", "shykes-nested-json"])
def test_cli_rejects_negative_cases(name: str) -> None:
    r = _run("dockerfile", "parse", "--dump",
             str(vectors(SUITE) / "testfiles-negative" / name / "Dockerfile"))
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Dockerfile:"), lines
    assert "Traceback" not in r.stderr.decode()


def test_cli_unknown_instruction_error_names_line(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM scratch\nFORM x\n")
    r = _run("dockerfile", "check", str(df))
    out = r.stdout.decode() + r.stderr.decode()
    assert "did you mean FROM" in out or "FORM" in out
