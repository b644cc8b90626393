"""Loads opencontainers/image-spec schema test vectors from the shared conformance directory.

Collected at import time (for parametrize ids); empty when the file is missing, so the tests
parametrize with ``helpers.vectors.parametrize(CASES, ...)``, which skips (fails in CI) then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.vectors import location

CASES = "oci-schema/testcases/schema_cases.json"


def cases_file() -> Path:
    return location(CASES)


@dataclass(frozen=True)
class Case:
    id: str
    media_type: str
    raw: bytes
    fail: bool
    comment: str


def _load() -> dict[str, Any] | None:
    f = cases_file()
    if not f.is_file():
        return None
    data: dict[str, Any] = json.loads(f.read_text())
    return data


DATA = _load()


def suite_cases() -> list[Case]:
    """The {comment,input,fail} cases of config/descriptor/index/layout/manifest _test.go."""
    if DATA is None:
        return []
    out = []
    for suite, body in DATA["suites"].items():
        for i, c in enumerate(body.get("cases", [])):
            out.append(
                Case(
                    f"{suite.removesuffix('_test.go')}-{i}",
                    body["mediaType_validator"],
                    c["input"].encode(),
                    c["fail"],
                    c["comment"],
                )
            )
    return out


_BC_TYPES = {
    "imageIndex": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "config": "application/vnd.docker.container.image.v1+json",
}


def backwards_compat_cases() -> list[tuple[str, str, bytes, str, dict[str, str]]]:
    """(id, docker media type, docker bytes, expected sha256, compatMap)."""
    if DATA is None:
        return []
    bc = DATA["suites"]["backwards_compatibility_test.go"]
    out = []
    for name, t in bc["tests"].items():
        for i, c in enumerate(t["cases"]):
            assert c["fail_after_convert"] is False
            out.append(
                (
                    f"{name}-{i}",
                    _BC_TYPES[t["validator"]],
                    c["input_docker_v2_2"].encode(),
                    c["sha256_digest_of_input"],
                    bc["compatMap"],
                )
            )
    return out


def convert(raw: bytes, compat: dict[str, str]) -> bytes:
    text = raw.decode()
    for docker, oci in compat.items():
        text = text.replace(docker, oci)
    return text.encode()


def spec_examples() -> list[Case]:
    if DATA is None:
        return []
    return [
        Case(f"{e['file']}-{i}-{e['title']}", e["mediatype"], e["body"].encode(), False, e["title"])
        for i, e in enumerate(DATA["spec_markdown_examples"]["examples"])
    ]
