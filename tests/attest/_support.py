"""Shared test helpers: the cosign conformance vectors and an in-memory signature store."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from xarch.errors import IntegrityError, NotFoundError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest


def cosign_dir() -> Path:
    """Conformance vectors for cosign (resolved at collection time for parametrisation)."""
    env = os.environ.get("XARCH_CONFORMANCE_DIR")
    root = (
        Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
    )
    return (root / "cosign").resolve()


def fixtures_dir() -> Path:
    d = cosign_dir() / "fixtures"
    if not d.is_dir():
        pytest.skip(f"cosign conformance vectors not found at {d} (set XARCH_CONFORMANCE_DIR)")
    return d


@cache
def _fixtures_json() -> dict[str, Any]:
    p = cosign_dir() / "fixtures" / "fixtures.json"
    if not p.is_file():
        return {}
    doc: dict[str, Any] = json.loads(p.read_text())
    return doc


def fixture_section(prefix: str) -> Any:
    """The fixtures.json entry whose key starts with ``prefix`` (keys carry long comments)."""
    for k, v in _fixtures_json().items():
        if k.startswith(prefix):
            return v
    return []


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
