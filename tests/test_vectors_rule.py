"""The conformance-vectors rule (tests/helpers/vectors.py + tests/conftest.py): without the
vectors every test that reads them skips, and one summary line says why; with ``CI=true`` they
fail instead. Checked on a tiny suite run by pytest in a subprocess with tests/conftest.py as
its plugin and ``XARCH_CONFORMANCE_DIR`` pointing somewhere under tmp_path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUITE = '''
from helpers.vectors import needs, parametrize, vectors


def test_fixture(conformance_dir):
    assert conformance_dir.is_dir()


@needs("buildkit-shell")
def test_mark():
    pass


@parametrize("patternmatcher/cases.json", "case", [1, 2])
def test_params(case):
    assert case in (1, 2)


def test_helper():
    assert vectors("oci-schema").is_dir()


def test_plain():
    pass
'''


def _run(tmp_path: Path, conformance: Path, *, ci: bool) -> tuple[int, str]:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_tiny.py").write_text(SUITE)
    (suite / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "XARCH_CONFORMANCE_DIR")}
    env["XARCH_CONFORMANCE_DIR"] = str(conformance)
    if ci:
        env["CI"] = "true"
    # tests/ first on the path: `-p conftest` loads tests/conftest.py, the tiny suite imports helpers
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-c", str(suite / "pytest.ini"), "--rootdir", str(suite), str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )
    return r.returncode, r.stdout + r.stderr


def _summary(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("xarch: ")]


def _counts(out: str) -> dict[str, int]:
    last = out.strip().splitlines()[-1]
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|skipped|failed|errors?)", last)}


def test_missing_root_skips_with_one_summary_line(tmp_path: Path) -> None:
    gone = tmp_path / "nowhere"
    code, out = _run(tmp_path, gone, ci=False)
    assert code == 0, out
    assert _counts(out) == {"passed": 1, "skipped": 4}, out
    assert _summary(out) == [
        f"xarch: 4 tests skipped: conformance vectors not found at {gone} "
        "(set XARCH_CONFORMANCE_DIR)"
    ], out
    assert "empty parameter set" not in out


def test_empty_dir_skips_what_it_lacks(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _run(tmp_path, empty, ci=False)
    assert code == 0, out
    assert _counts(out) == {"passed": 2, "skipped": 3}, out  # the root itself is there
    missing = ", ".join(str(empty / s) for s in
                        ("buildkit-shell", "oci-schema", "patternmatcher/cases.json"))
    assert _summary(out) == [
        f"xarch: 3 tests skipped: conformance vectors not found at {missing} "
        "(set XARCH_CONFORMANCE_DIR)"
    ], out


@pytest.mark.parametrize("where", ["nowhere", "empty"])
def test_in_ci_missing_vectors_fail(tmp_path: Path, where: str) -> None:
    conformance = tmp_path / where
    if where == "empty":
        conformance.mkdir()
    code, out = _run(tmp_path, conformance, ci=True)
    assert code == 1, out
    counts = _counts(out)
    assert "skipped" not in counts, out
    failing = 4 if where == "nowhere" else 3
    assert counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0) == failing
    (line,) = _summary(out)
    assert line.startswith(f"xarch: {failing} tests failed (CI needs them): "), out


@pytest.mark.parametrize("ci", [False, True])
def test_present_vectors_run_and_say_nothing(tmp_path: Path, ci: bool) -> None:
    root = tmp_path / "conformance"
    for d in ("buildkit-shell", "oci-schema", "patternmatcher"):
        (root / d).mkdir(parents=True)
    (root / "patternmatcher" / "cases.json").write_text("{}")
    code, out = _run(tmp_path, root, ci=ci)
    assert code == 0, out
    assert _counts(out) == {"passed": 6}, out
    assert _summary(out) == [], out
