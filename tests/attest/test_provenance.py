"""SLSA provenance v1 statements: shape, redaction, determinism, BuildKit-style purls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.attest.provenance import (
    BUILD_TYPE,
    REDACTED,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    docker_purl,
    is_secret_name,
    predicate_type_of,
    provenance_statement,
    redact_args,
)
from xarch.errors import UsageError
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform

SUBJECT = Digest.from_bytes(b"manifest")
DOCKERFILE = Digest.from_bytes(b"FROM debian\n")
BASE = Digest.from_bytes(b"debian index")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T1 = T0 + timedelta(seconds=42)
STEPS = [
    {"name": "[linux/arm64 build 1/2] FROM debian", "digest": str(BASE), "cached": True},
    {"name": "[linux/arm64 build 2/2] RUN make", "digest": str(SUBJECT), "cached": False},
]


def _make(**kw: Any) -> bytes:
    args: dict[str, Any] = {
        "subject_name": "pkg:docker/example.com/app@1?platform=linux%2Farm64",
        "subject_digest": SUBJECT,
        "platform": Platform.parse("linux/arm64"),
        "dockerfile_digest": DOCKERFILE,
        "dockerfile_path": "Dockerfile",
        "base_images": [("debian:bookworm", BASE)],
        "build_args": {"VERSION": "1.2", "API_TOKEN": "ghp_supersecret"},
        "started": T0,
        "finished": T1,
        "xarch_version": "0.1.0",
        "mode": "min",
        "steps": STEPS,
        "invocation_id": "inv-123",
    }
    args.update(kw)
    return provenance_statement(**args)


def test_statement_shape() -> None:
    raw = _make(target="release")
    doc = json.loads(raw)
    assert doc["_type"] == STATEMENT_TYPE
    assert doc["predicateType"] == SLSA_PROVENANCE_V1
    assert doc["subject"] == [
        {
            "name": "pkg:docker/example.com/app@1?platform=linux%2Farm64",
            "digest": {"sha256": SUBJECT.hex},
        }
    ]
    bd = doc["predicate"]["buildDefinition"]
    assert bd["buildType"] == BUILD_TYPE
    assert bd["externalParameters"] == {
        "dockerfile": "Dockerfile",
        "platform": "linux/arm64",
        "target": "release",
        "args": {"API_TOKEN": REDACTED, "VERSION": "1.2"},
    }
    assert bd["internalParameters"] == {"xarch": {"version": "0.1.0"}}
    assert bd["resolvedDependencies"] == [
        {
            "uri": "pkg:docker/debian@bookworm?platform=linux%2Farm64",
            "digest": {"sha256": BASE.hex},
        },
        {
            "name": "Dockerfile",
            "digest": {"sha256": DOCKERFILE.hex},
            "annotations": {"xarch.dev/role": "dockerfile"},
        },
    ]
    rd = doc["predicate"]["runDetails"]
    assert rd["builder"] == {
        "id": "https://xarch.dev/builder@v0.1.0",
        "version": {"xarch": "0.1.0"},
    }
    assert rd["metadata"] == {
        "invocationId": "inv-123",
        "startedOn": "2026-01-02T03:04:05Z",
        "finishedOn": "2026-01-02T03:04:47Z",
    }
    assert predicate_type_of(raw) == SLSA_PROVENANCE_V1


def test_secret_values_never_in_the_bytes() -> None:
    raw = _make(
        build_args={
            "API_TOKEN": "ghp_supersecret",
            "db_password": "hunter2",
            "AWS_SECRET_ACCESS_KEY": "AKIAxyz",
            "SSH_PRIVATE": "-----BEGIN",
            "PIP_INDEX_URL": "https://bob:pa55word@pypi.example.com/simple",
            "PLAIN": "visible",
        }
    )
    for secret in (b"ghp_supersecret", b"hunter2", b"AKIAxyz", b"-----BEGIN", b"pa55word"):
        assert secret not in raw
    args = json.loads(raw)["predicate"]["buildDefinition"]["externalParameters"]["args"]
    assert args["API_TOKEN"] == args["db_password"] == args["AWS_SECRET_ACCESS_KEY"] == REDACTED
    assert args["PIP_INDEX_URL"] == f"https://bob:{REDACTED}@pypi.example.com/simple"
    assert args["PLAIN"] == "visible"
    assert list(args) == sorted(args)


def test_redaction_applies_in_max_mode_too() -> None:
    raw = _make(mode="max", build_args={"GITHUB_TOKEN": "abc123def"})
    assert b"abc123def" not in raw


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_TOKEN", True),
        ("token", True),
        ("MY_KEY", True),
        ("Password", True),
        ("CLIENT_SECRET", True),
        ("VERSION", False),
        ("BASE_IMAGE", False),
        ("HTTP_PROXY", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_min_mode_has_no_steps_max_mode_has_them() -> None:
    mn = json.loads(_make(mode="min"))["predicate"]["buildDefinition"]["internalParameters"]
    mx = json.loads(_make(mode="max"))["predicate"]["buildDefinition"]["internalParameters"]
    assert "steps" not in mn
    assert mx["steps"] == [
        {"name": STEPS[0]["name"], "digest": str(BASE), "cached": True},
        {"name": STEPS[1]["name"], "digest": str(SUBJECT), "cached": False},
    ]


def test_deterministic_compact_sorted() -> None:
    a, b = _make(), _make(build_args={"API_TOKEN": "other", "VERSION": "1.2"})
    assert a == b  # the secret's value does not even change the bytes
    assert b" " not in a.replace(b"[linux/arm64 build", b"").replace(b"RUN make", b"")
    doc = json.loads(a)
    assert a == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_timestamps_converted_to_utc() -> None:
    tz = timezone(timedelta(hours=2))
    doc = json.loads(_make(started=T0.astimezone(tz), finished=T1.astimezone(tz)))
    assert doc["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "full"},
        {"started": datetime(2026, 1, 1)},  # naive
        {"started": T1, "finished": T0},  # finished before started
    ],
)
def test_bad_inputs(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        _make(**kw)


def test_duplicate_base_images_listed_once() -> None:
    doc = json.loads(_make(base_images=[("debian:bookworm", BASE), ("debian:bookworm", BASE)]))
    deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d.get("uri") for d in deps].count(
        "pkg:docker/debian@bookworm?platform=linux%2Farm64"
    ) == 1


ARM64 = Platform.parse("linux/arm64")
ARMV7 = Platform.parse("linux/arm/v7")
DG = Digest.from_bytes(b"test")


@pytest.mark.parametrize(
    ("ref", "platform", "expected"),
    [
        # BuildKit util/purl RefToPURL cases
        ("alpine", None, "pkg:docker/alpine@latest"),
        ("library/alpine:3.15", None, "pkg:docker/alpine@3.15"),
        ("docker.io/library/alpine:latest", None, "pkg:docker/alpine@latest"),
        (f"docker.io/library/alpine:latest@{DG}", None, f"pkg:docker/alpine@latest?digest={DG}"),
        (f"docker.io/library/alpine@{DG}", None, f"pkg:docker/alpine?digest={DG}"),
        ("user/test:v2", None, "pkg:docker/user/test@v2"),
        ("ghcr.io/foo/bar:v2", None, "pkg:docker/ghcr.io/foo/bar@v2"),
        ("ghcr.io/foo/bar", None, "pkg:docker/ghcr.io/foo/bar@latest"),
        ("busybox", ARM64, "pkg:docker/busybox@latest?platform=linux%2Farm64"),
        (f"busybox@{DG}", ARMV7, f"pkg:docker/busybox?digest={DG}&platform=linux%2Farm%2Fv7"),
        ("localhost:5000/app:1", None, "pkg:docker/localhost:5000/app@1"),
    ],
)
def test_docker_purl(ref: str, platform: Platform | None, expected: str) -> None:
    assert docker_purl(ref, platform) == expected


def test_predicate_type_of_rejects_non_statements() -> None:
    assert predicate_type_of(b"not json") is None
    assert predicate_type_of(b'{"predicateType":"x"}') is None
    assert predicate_type_of(b"[]") is None


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.text(max_size=40),
        max_size=8,
    )
)
def test_redact_args_property(args: dict[str, str]) -> None:
    out = redact_args(args)
    assert set(out) == set(args)
    for k, v in out.items():
        if is_secret_name(k):
            assert v == REDACTED
        elif "://" not in args[k]:
            assert v == args[k]
