"""Every test folder yields collected tests.

pytest's default ``norecursedirs`` once hid all of ``tests/build/`` (91 engine tests) without a
word. This asks pytest itself what it collects and fails for any folder holding ``test_*.py``
files from which nothing was collected.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


@functools.cache
def _collected() -> tuple[str, ...]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", str(TESTS)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    ids = tuple(line for line in out.stdout.splitlines() if "::" in line)
    assert ids, f"pytest collected nothing:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return ids


def _collected_files() -> set[Path]:
    return {(ROOT / i.split("::", 1)[0]).resolve() for i in _collected()}


def test_every_test_folder_is_collected() -> None:
    collected = _collected_files()
    folders = {p.parent for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts}
    missing = sorted(
        str(d.relative_to(ROOT)) for d in folders if not any(f.parent == d for f in collected)
    )
    assert not missing, f"test folders with no collected test: {missing}"


def test_engine_tests_are_collected() -> None:
    engine = [i for i in _collected() if i.startswith("tests/builder/")]
    assert len(engine) > 90, f"only {len(engine)} engine tests collected"

