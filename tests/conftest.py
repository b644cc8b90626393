"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """Root of the shared conformance vectors (never copied into the repo)."""
    env = os.environ.get("XARCH_CONFORMANCE_DIR")
    path = (
        Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "conformance"
    )
    path = path.resolve()
    if not path.is_dir():
        msg = f"conformance vectors not found at {path} (set XARCH_CONFORMANCE_DIR)"
        if os.environ.get("CI") == "true":  # CI always has ../shared: a skip would hide a failure
            pytest.fail(msg)
        pytest.skip(msg)
    return path
