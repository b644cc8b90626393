"""Shared test helpers: the cosign conformance vectors and an in-memory signature store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from helpers.vectors import available, location, vectors
from xarch.errors import IntegrityError, NotFoundError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest

FIXTURES = "cosign/fixtures"
FIXTURES_JSON = f"{FIXTURES}/fixtures.json"


def fixtures_dir() -> Path:
    return vectors(FIXTURES)


@cache
def _fixtures_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _section(doc: dict[str, Any], prefix: str) -> Any:
    # fixtures.json keys carry long comments after the name
    (value,) = [v for k, v in doc.items() if k.startswith(prefix)]
    return value


def fixture_section(prefix: str) -> Any:
    """The fixtures.json entry whose key starts with ``prefix``, read in a test: without the
    vectors the test skips (fails in CI); an unknown prefix is an error, never an empty value."""
    return _section(_fixtures_json(vectors(FIXTURES_JSON)), prefix)


def fixture_cases(prefix: str) -> list[Any]:
    """The same for parametrising at collection time: empty without the vectors, for
    ``helpers.vectors.parametrize(FIXTURES_JSON, ...)`` to turn into a skip (or a CI failure)."""
    if not available(FIXTURES_JSON):
        return []
    cases: list[Any] = _section(_fixtures_json(location(FIXTURES_JSON)), prefix)
    return cases


def read_fixture(name: str) -> bytes:
    return (fixtures_dir() / name).read_bytes()


@dataclass
class MemoryStore:
    """A SignatureStore in memory; content-addressed like a registry (put_blob checks)."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    puts: int = 0

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None:
        return self.manifests.get(tag)

    def get_blob(self, desc: Descriptor) -> bytes:
        try:
            return self.blobs[desc.digest]
        except KeyError:
            raise NotFoundError(f"blob {desc.digest} not found") from None

    def put_blob(self, desc: Descriptor, data: bytes) -> None:
        if len(data) != desc.size or not desc.digest.verify(data):
            raise IntegrityError(f"blob does not match {desc.digest}")
        self.blobs[desc.digest] = data

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> None:
        self.puts += 1
        self.manifests[tag] = (raw, media_type)
