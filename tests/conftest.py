"""Shared test fixtures, and the conformance-vectors rule of helpers/vectors.py wired into pytest."""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path

import pytest

from helpers.system import IN_CI
from helpers.vectors import ENV, MARK, MISSING, vectors


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}(subdir): needs the conformance vectors' subdir (skip; fail in CI)"
    )


@pytest.hookimpl(tryfirst=True)  # before fixtures: a missing vector file must not crash one
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(MARK):
        vectors(*mark.args)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """Root of the shared conformance vectors (never copied into the repo)."""
    return vectors()


_MISSING_AT = re.compile(re.escape(MISSING) + r" (.+?) \(set ")


def _missing_vectors_path(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    # a skip's longrepr is (path, line, reason); a failure's is rendered text
    text = longrepr[2] if isinstance(longrepr, tuple) else report.longreprtext
    m = _MISSING_AT.search(text)
    return m.group(1) if m else None


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the short test summary
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """One line saying how many tests the missing vectors skipped (or failed, in CI), and why."""
    try:
        return (yield)
    finally:
        stats = terminalreporter.stats
        kinds = ("failed", "error") if IN_CI else ("skipped",)
        hit: dict[str, str] = {}  # nodeid -> missing path
        for kind in kinds:
            for rep in stats.get(kind, []):
                if isinstance(rep, pytest.TestReport) and (where := _missing_vectors_path(rep)):
                    hit[rep.nodeid] = where
        if hit:
            verb = "failed (CI needs them)" if IN_CI else "skipped"
            at = ", ".join(sorted(set(hit.values())))
            terminalreporter.write_line(
                f"xarch: {len(hit)} tests {verb}: {MISSING} {at} (set {ENV})",
                yellow=not IN_CI,
                red=IN_CI,
            )

