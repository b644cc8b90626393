"""Optional corpus run: XARCH_DOCKERFILE_CORPUS=<dir> parses every *Dockerfile* below it.

A sibling ``<name>.dump`` (or ``result`` in the same directory) holds the expected dump,
e.g. produced by BuildKit; without one the file only has to parse or fail cleanly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import dump, parse

CORPUS_ENV = "XARCH_DOCKERFILE_CORPUS"


def _corpus_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "dockerfile" in p.name.lower() and not p.name.endswith(".dump")
    )


def _expected_dump(path: Path) -> bytes | None:
    for candidate in (path.with_name(path.name + ".dump"), path.with_name("result")):
        if candidate.is_file():
            return candidate.read_bytes().replace(b"\r\n", b"\n")
    return None


@pytest.mark.slow
def test_corpus() -> None:
    root = os.environ.get(CORPUS_ENV)
    if not root:
        pytest.skip(f"set {CORPUS_ENV} to a directory of Dockerfiles to run the corpus")
    files = _corpus_files(Path(root))
    if not files:
        pytest.skip(f"no *Dockerfile* files under {root}")
    failures: list[str] = []
    parsed = rejected = compared = 0
    for path in files:
        data = path.read_bytes()
        try:
            result = parse(data, filename=str(path))
        except DockerfileError as e:
            rejected += 1
            expected = _expected_dump(path)
            if expected is not None:
                failures.append(f"{path}: rejected ({e}) but a dump is expected")
            continue
        except Exception as e:  # anything but DockerfileError is a parser bug
            failures.append(f"{path}: {type(e).__name__}: {e}")
            continue
        parsed += 1
        expected = _expected_dump(path)
        if expected is not None:
            compared += 1
            actual = dump(result).encode("utf-8")
            if actual != expected:
                failures.append(f"{path}: dump differs from {len(expected)}-byte expectation")
    summary = f"{len(files)} files: {parsed} parsed, {rejected} rejected, {compared} compared"
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures[:50])
