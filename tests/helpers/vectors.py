"""The shared conformance vectors (``$XARCH_CONFORMANCE_DIR``, else ``<repo>/../shared/conformance``;
never copied into the repo) and the one rule for when they are missing: the test fails in CI
(CI always has them, so a skip there would hide a failure) and skips elsewhere, with a reason
starting with ``MISSING`` that tests/conftest.py counts into one line of the run's summary.

Three ways in, all ending in ``vectors()``:

* ``vectors("buildkit-shell")`` in a test, fixture or helper (``oci.schema_check`` uses it);
* ``@needs("patternmatcher")`` on a test that reads module-level data loaded at import;
* ``@parametrize("cosign", "case", CASES)`` for cases read at collection time: without the
  vectors it yields one placeholder case carrying ``needs(...)``, never an empty parameter set
  (pytest skips those silently, even in CI).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from helpers.system import IN_CI

ENV = "XARCH_CONFORMANCE_DIR"
MISSING = "conformance vectors not found at"
MARK = "vectors"


def root() -> Path:
    """Where the vectors should be (not checked)."""
    env = os.environ.get(ENV)
    path = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
    return path.resolve()


def location(subdir: str = "") -> Path:
    """``root() / subdir``, not checked: for loaders that run at import, before any test."""
    return root() / subdir


def available(subdir: str = "") -> bool:
    return location(subdir).exists()


def reason(subdir: str = "") -> str:
    # name the root when it is missing as a whole, so a fresh clone gets one reason, not five
    missing = root() if not root().is_dir() else location(subdir)
    return f"{MISSING} {missing} (set {ENV})"


def vectors(subdir: str = "") -> Path:
    """``root() / subdir`` (a directory or file); if it is missing, fail in CI, else skip."""
    p = location(subdir)
    if not p.exists():
        if IN_CI:
            pytest.fail(f"{reason(subdir)}; CI must have them", pytrace=False)
        # reported at the test, not at this line, as pytest does for a skip raised in a fixture
        raise pytest.skip.Exception(reason(subdir), _use_item_location=True)
    return p


def needs(subdir: str = "") -> pytest.MarkDecorator:
    """Mark a test that needs ``subdir``; tests/conftest.py applies ``vectors()`` at setup."""
    return getattr(pytest.mark, MARK)(subdir)


def parametrize(
    subdir: str,
    argnames: str | Sequence[str],
    argvalues: Iterable[Any],
    *,
    ids: Iterable[str] | Callable[[Any], str] | None = None,
) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize`` over cases read from ``subdir`` at collection time."""
    if available(subdir):
        return pytest.mark.parametrize(argnames, list(argvalues), ids=ids)
    n = len(argnames.split(",") if isinstance(argnames, str) else argnames)
    placeholder = pytest.param(*([None] * n), id="no-vectors", marks=needs(subdir))
    return pytest.mark.parametrize(argnames, [placeholder])
