"""Simple-signing payloads: sigstore's marshal goldens byte for byte, strict parsing."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest._support import FIXTURES_JSON, fixture_cases
from helpers import vectors
from xarch.attest.payload import (
    COSIGN_SIGNATURE_TYPE,
    CosignPayload,
    PayloadError,
    annotation_matches,
    build_payload,
    docker_reference,
    go_json,
    parse_annotation_flags,
    parse_payload,
)
from xarch.errors import InputError, UsageError
from xarch.oci import Digest, Reference

MARSHAL = fixture_cases("simple_signing_payload_marshal")
UNMARSHAL_ERRORS = fixture_cases("simple_signing_payload_unmarshal_errors")
D = Digest("sha256:" + "d34db33f" * 8)


@vectors.parametrize(FIXTURES_JSON, "case", MARSHAL, ids=lambda c: c["image"].split("@")[0])
def test_marshal_golden(case: dict[str, Any]) -> None:
    ref = Reference.parse(case["image"])
    assert ref.digest is not None
    identity = case.get("claimed_identity") or ref.context()
    out = build_payload(ref.digest, identity, case["annotations"])
    assert out == case["expected"].encode()
    parsed = parse_payload(out)
    assert parsed == CosignPayload(identity, ref.digest, case["annotations"])
    assert parsed.to_json() == out  # parse -> marshal is the identity on cosign's own bytes


@vectors.parametrize(FIXTURES_JSON, "case", UNMARSHAL_ERRORS, ids=lambda c: c["error"][:40])
def test_unmarshal_error_golden(case: dict[str, str]) -> None:
    with pytest.raises(PayloadError) as ei:
        parse_payload(case["payload"].encode())
    assert str(ei.value) == case["error"]


def test_docker_reference_is_go_containerregistry_repository_name() -> None:
    assert docker_reference(Reference.parse("ubuntu")) == "index.docker.io/library/ubuntu"
    assert docker_reference(Reference.parse("user/app:1")) == "index.docker.io/user/app"
    assert (
        docker_reference(Reference.parse("gcr.io/distroless/static:nonroot"))
        == "gcr.io/distroless/static"
    )
    assert (
        docker_reference(Reference.parse("localhost:5000/x@sha256:" + "0" * 64))
        == "localhost:5000/x"
    )


def _payload(critical: Any, optional: Any = None, **extra: Any) -> bytes:
    return json.dumps({"critical": critical, "optional": optional, **extra}).encode()


GOOD = {
    "identity": {"docker-reference": "example.com/a"},
    "image": {"docker-manifest-digest": str(D)},
    "type": COSIGN_SIGNATURE_TYPE,
}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "malformed JSON"),
        (b"\xff", "not UTF-8"),
        (b"[]", "expected a JSON object"),
        (b'{"critical": NaN}', "NaN is not JSON"),
        (_payload("x"), "'critical' must be a JSON object"),
        (_payload({**GOOD, "type": 1}), "'critical.type' must be a string"),
        (_payload({**GOOD, "identity": []}), "'critical.identity' must be a JSON object"),
        (_payload({k: v for k, v in GOOD.items() if k != "type"}), 'unknown type: ""'),
        (_payload(None), 'unknown type: ""'),
        (
            _payload({**GOOD, "image": {"docker-manifest-digest": "sha256:abc"}}),
            "could not parse image digest string",
        ),
        (
            _payload({**GOOD, "identity": {"docker-reference": "Bad Ref"}}),
            "could not parse image digest string",
        ),
        (_payload({**GOOD, "identity": {}}), "could not parse image digest string"),
        (_payload(GOOD, ["a"]), "'optional' must be a JSON object or null"),
        (
            b'{"critical":{"identity":{"docker-reference":"example.com/a"},"image":{"docker-manifest-digest":"'
            + str(D).encode()
            + b'"},"type":"cosign container image signature","Type":"x"}}',
            "duplicate key 'type'",
        ),
    ],
)
def test_parse_is_strict(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace("(", r"\(")) as ei:
        parse_payload(raw)
    assert isinstance(ei.value, InputError)


def test_parse_matches_keys_case_insensitively_like_go() -> None:
    # SIGNATURE_SPEC's own example spells "Docker-manifest-digest"; Go's decoder accepts it.
    raw = _payload(
        {
            "Identity": {"docker-reference": "testing/manifest"},
            "image": {"Docker-manifest-digest": str(D)},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        {"creator": "atomic"},
        extra_top_level="ignored",
    )
    p = parse_payload(raw)
    assert p == CosignPayload("testing/manifest", D, {"creator": "atomic"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (100.0, "100"),
        (-0.0, "-0"),
        (8.314, "8.314"),
        (2.5e-300, "2.5e-300"),
        (-1.25e22, "-1.25e+22"),
        (0.0, "0"),
        (12345678901234567890, "12345678901234567890"),
        (True, "true"),
        (None, "null"),
        ("<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
        (
            '\u2028\u2029\x00\x1f\b\f\n\r\t"\\',
            '"\\u2028\\u2029\\u0000\\u001f\\b\\f\\n\\r\\t\\"\\\\"',
        ),
        ("é☃😀", '"é☃😀"'),
        ({"b": 1, "a": [1, "x", None], "B": {}}, '{"B":{},"a":[1,"x",null],"b":1}'),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected.encode()


@pytest.mark.parametrize("bad", [math.nan, math.inf, {1: "x"}, object()])
def test_go_json_rejects_what_go_cannot_encode(bad: Any) -> None:
    with pytest.raises(InputError):
        go_json(bad)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _same(parsed: Any, value: Any) -> bool:
    """Equal as Go would decode it: Go writes 4.6e16 as 46000000000000000 (a float64 again)."""
    if isinstance(value, float):
        return isinstance(parsed, int | float) and float(parsed) == value
    if isinstance(value, list):
        return (
            isinstance(parsed, list)
            and len(parsed) == len(value)
            and all(map(_same, parsed, value))
        )
    if isinstance(value, dict):
        return (
            isinstance(parsed, dict)
            and parsed.keys() == value.keys()
            and all(_same(parsed[k], value[k]) for k in value)
        )
    return type(parsed) is type(value) and parsed == value


@given(json_values)
def test_go_json_round_trips_through_a_json_parser(value: Any) -> None:
    out = go_json(value)
    assert _same(json.loads(out), value)
    # Go never emits insignificant whitespace or raw '<', '>', '&'.
    assert not any(c in out for c in (b"<", b">", b"&"))


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5) | st.none())
def test_payload_round_trip(annotations: dict[str, Any] | None) -> None:
    raw = build_payload(D, "registry.example/app", annotations)
    parsed = parse_payload(raw)
    assert (parsed.docker_reference, parsed.digest) == ("registry.example/app", D)
    assert _same(parsed.annotations, annotations)
    assert parsed.to_json() == raw
    assert not raw.endswith(b"\n")


@given(st.binary(max_size=300))
def test_parse_payload_only_raises_payload_errors(raw: bytes) -> None:
    try:
        parse_payload(raw)
    except PayloadError:
        pass


def test_annotation_flags() -> None:
    assert parse_annotation_flags([]) is None
    assert parse_annotation_flags(["a=b", "c=", "a=z"]) == {"a": "z", "c": ""}
    for bad in (["a=b=c"], ["novalue"]):
        with pytest.raises(UsageError, match="unable to parse annotation"):
            parse_annotation_flags(bad)


def test_annotation_matching_uses_go_value_equality() -> None:
    opt = {"n": 1458239713, "f": 1.0, "b": True, "s": "x", "z": None}
    assert annotation_matches(opt, "n", 1458239713)
    assert not annotation_matches(opt, "n", "1458239713")  # a CLI string never equals a number
    assert annotation_matches(opt, "f", 1)  # Go decodes both as float64
    assert not annotation_matches(opt, "b", 1)
    assert annotation_matches(opt, "s", "x")
    assert annotation_matches(opt, "z", None)
    assert not annotation_matches(opt, "missing", None)
    assert not annotation_matches(None, "s", "x")


@pytest.mark.parametrize("bad", ["", "Bad Ref", "example.com/a@sha256:" + "0" * 64, "a b"])
def test_build_refuses_unreadable_references(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid docker reference"):
        build_payload(D, bad)
