"""xarch.oci.validate against the image-spec conformance vectors, plus its stricter rules."""

from __future__ import annotations

import base64
import json

import pytest

from helpers import vectors
from oci._cases import CASES, Case, backwards_compat_cases, convert, spec_examples, suite_cases
from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.digest import Digest
from xarch.oci.validate import (
    check_digest,
    validate_config,
    validate_descriptor,
    validate_document,
    validate_index,
    validate_layout_header,
    validate_manifest,
)

SUITE = suite_cases()
EXAMPLES = spec_examples()
BC = backwards_compat_cases()


@vectors.needs(CASES)
def test_case_counts() -> None:
    by_suite: dict[str, int] = {}
    for c in SUITE:
        by_suite[c.id.split("-")[0]] = by_suite.get(c.id.split("-")[0], 0) + 1
    assert by_suite == {
        "config": 10,
        "descriptor": 31,
        "imageindex": 12,
        "imagelayout": 2,
        "manifest": 12,
    }
    assert len(BC) == 4
    assert len(EXAMPLES) == 13


@vectors.parametrize(CASES, "case", SUITE, ids=[c.id for c in SUITE])
def test_schema_suite_case(case: Case) -> None:
    if case.fail:
        with pytest.raises(InputError) as ei:
            validate_document(case.media_type, case.raw)
        assert str(ei.value).startswith("invalid ")
    else:
        validate_document(case.media_type, case.raw)


@vectors.parametrize(CASES, ("cid", "mtype", "raw", "sha", "compat"), BC, ids=[b[0] for b in BC])
def test_backwards_compat(
    cid: str, mtype: str, raw: bytes, sha: str, compat: dict[str, str]
) -> None:
    assert Digest.from_bytes(raw) == sha
    oci = convert(raw, compat)
    validate_document(compat[mtype], oci)
    # and the unconverted Docker document passes our Docker rules
    validate_document(mtype, raw)


@vectors.parametrize(CASES, "case", EXAMPLES, ids=[c.id for c in EXAMPLES])
def test_spec_examples(case: Case) -> None:
    validate_document(case.media_type, case.raw)


# --- unit tests of the rules and messages ---------------------------------------------------

HEX = "a" * 64
DESC = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + HEX, "size": 1}


def manifest(**patch: object) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": DESC,
        "layers": [dict(DESC, mediaType=mt.OCI_LAYER_GZIP)],
    }
    body.update(patch)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def index(**patch: object) -> bytes:
    body: dict[str, object] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    body.update(patch)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def test_valid_minimal_documents() -> None:
    validate_manifest(manifest())
    validate_manifest(manifest(mediaType=...))  # mediaType is optional in OCI
    validate_index(index())
    validate_layout_header(b'{"imageLayoutVersion":"1.0.0"}')
    validate_config(
        b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    )
    validate_descriptor(DESC)
    validate_descriptor(json.dumps(DESC).encode())


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (manifest(schemaVersion=1), "schemaVersion: must be 2"),
        (manifest(schemaVersion=2.0), "schemaVersion: expected an integer, got number"),
        (manifest(schemaVersion=...), "missing required field 'schemaVersion'"),
        (manifest(config=...), "missing required field 'config'"),
        (manifest(layers=[]), "layers: must contain at least one descriptor"),
        (manifest(layers=None), "layers: expected an array, got null"),
        (
            manifest(mediaType=mt.OCI_INDEX),
            "mediaType: is 'application/vnd.oci.image.index.v1+json'",
        ),
        (manifest(artifactType="nope"), "artifactType: 'nope' is not a valid media type"),
        (manifest(annotations={"a": 1}), "annotations.a: expected a string value, got integer"),
        (manifest(subject={"mediaType": "a/b"}), "subject: missing required field 'size'"),
        (manifest(config=dict(DESC, size=1.0)), "config.size: expected an integer, got number"),
        (
            manifest(config=dict(DESC, size=2**63)),
            "config.size: 9223372036854775808 is out of range",
        ),
        (manifest(config=dict(DESC, size=True)), "config.size: expected an integer, got boolean"),
        (manifest(config=dict(DESC, digest="sha256:" + "A" * 64)), "config.digest"),
        (manifest(config=dict(DESC, digest="sha512:" + HEX)), "sha512 needs 128 hex characters"),
        (
            manifest(config=dict(DESC, urls=["ftp:/a b"])),
            "config.urls[0]: 'ftp:/a b' contains characters",
        ),
        (manifest(config=dict(DESC, urls="https://x")), "config.urls: expected an array"),
        (
            manifest(config=dict(DESC, platform={"os": "linux"})),
            "config.platform: missing required field 'architecture'",
        ),
        (
            manifest(config=dict(DESC, data=base64.b64encode(b"x").decode())),
            "embedded data does not match digest",
        ),
        (
            manifest(config=dict(DESC, data=base64.b64encode(b"xy").decode())),
            "embedded data is 2 bytes but size says 1",
        ),
        (b"\xff", "not valid UTF-8"),
        (b"[1]", "expected a JSON object, got array"),
        (b'{"schemaVersion": Infinity}', "malformed JSON"),
    ],
)
def test_manifest_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        validate_manifest(raw)
    assert fragment in str(ei.value)
    assert str(ei.value).startswith("invalid image manifest")


def test_docker_manifest_rules() -> None:
    docker = manifest(mediaType=mt.DOCKER_MANIFEST, layers=[])
    validate_manifest(docker, mt.DOCKER_MANIFEST)  # zero layers are fine for Docker
    with pytest.raises(InputError, match="Docker schema2 requires it"):
        validate_manifest(manifest(mediaType=...), mt.DOCKER_MANIFEST)
    with pytest.raises(InputError, match="validated as"):
        validate_manifest(docker, mt.OCI_MANIFEST)
    with pytest.raises(InputError, match="not an image manifest media type"):
        validate_manifest(docker, mt.OCI_INDEX)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (index(manifests=...), "missing required field 'manifests'"),
        (index(manifests=[dict(DESC, size=-1)]), "manifests[0].size: -1 is out of range"),
        (
            index(
                manifests=[
                    dict(
                        DESC, platform={"architecture": "amd64", "os": "linux", "os.features": [1]}
                    )
                ]
            ),
            "manifests[0].platform.os.features[0]",
        ),
        (
            index(
                manifests=[
                    dict(DESC, platform={"architecture": "amd64", "os": "linux", "variant": 7})
                ]
            ),
            "platform.variant: expected a string",
        ),
        (index(subject="x"), "subject: expected an object, got string"),
        (index(mediaType=mt.DOCKER_MANIFEST_LIST), "validated as"),
        (index(annotations=[]), "annotations: expected an object"),
    ],
)
def test_index_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        validate_index(raw)
    assert fragment in str(ei.value)


def test_docker_manifest_list_rules() -> None:
    validate_index(index(mediaType=mt.DOCKER_MANIFEST_LIST), mt.DOCKER_MANIFEST_LIST)
    with pytest.raises(InputError, match="Docker manifest lists require it"):
        validate_index(index(mediaType=...), mt.DOCKER_MANIFEST_LIST)
    with pytest.raises(InputError, match="not an image index media type"):
        validate_index(index(), mt.OCI_MANIFEST)


CFG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}


def config(**patch: object) -> bytes:
    body: dict[str, object] = dict(CFG)
    body.update(patch)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (config(os=...), "missing required field 'os'"),
        (config(rootfs={"type": "layers"}), "rootfs: missing required field 'diff_ids'"),
        (config(rootfs={"type": "tar", "diff_ids": []}), 'rootfs.type: must be "layers"'),
        (config(rootfs={"type": "layers", "diff_ids": ["sha256:x"]}), "rootfs.diff_ids[0]"),
        (config(created="yesterday"), "created: 'yesterday' is not an RFC 3339 date-time"),
        (config(created="2024-02-30T00:00:00Z"), "not an RFC 3339"),
        (config(created="2024-01-01T00:00:61Z"), "not an RFC 3339"),
        (config(created="2024-01-01T00:00:00+24:00"), "not an RFC 3339"),
        (config(history=[{"created": "2024"}]), "history[0].created"),
        (config(history=[{"empty_layer": "yes"}]), "history[0].empty_layer: expected a boolean"),
        (config(history=["x"]), "history[0]: expected an object"),
        (config(config={"Env": ["=x"]}), "config.Env[0]: '=x' is not of the form NAME=value"),
        (config(config={"Cmd": "sh"}), "config.Cmd: expected an array"),
        (
            config(config={"ExposedPorts": {"80/tcp": []}}),
            "config.ExposedPorts.80/tcp: expected an object value",
        ),
        (config(config={"Labels": {"a": None}}), "config.Labels.a: expected a string value"),
        (config(config={"ArgsEscaped": "true"}), "config.ArgsEscaped: expected a boolean"),
        (config(config={"StopSignal": 9}), "config.StopSignal: expected a string"),
        (config(**{"os.features": "x"}), "os.features: expected an array"),
    ],
)
def test_config_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        validate_config(raw)
    assert fragment in str(ei.value)
    assert str(ei.value).startswith("invalid image config")


def test_config_accepts_nulls_where_go_does() -> None:
    validate_config(
        config(config={"Cmd": None, "Entrypoint": None, "Volumes": None, "Labels": None})
    )
    validate_config(config(created="2024-01-01T00:00:59.123+05:30"))
    with pytest.raises(InputError, match="RFC 3339"):  # Go's time.Parse has no leap seconds
        validate_config(config(created="2024-01-01T00:00:60Z"))
    validate_config(config(), mt.DOCKER_CONFIG)
    with pytest.raises(InputError, match="not an image config media type"):
        validate_config(config(), mt.OCI_MANIFEST)


def test_layout_header_errors() -> None:
    with pytest.raises(InputError, match=r'must be "1\.0\.0"'):
        validate_layout_header(b'{"imageLayoutVersion":"1.1.0"}')
    with pytest.raises(InputError, match="missing required field 'imageLayoutVersion'"):
        validate_layout_header(b"{}")
    with pytest.raises(InputError, match="expected a string, got number"):
        validate_layout_header(b'{"imageLayoutVersion":1.0}')


def test_descriptor_input_forms() -> None:
    with pytest.raises(InputError, match="expected a JSON object"):
        validate_descriptor([])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="expected JSON bytes"):
        validate_manifest(123)  # type: ignore[arg-type]
    validate_descriptor(json.dumps(DESC))


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sha256:" + HEX, True),
        ("sha384:" + "a" * 96, True),
        ("sha512:" + "a" * 128, True),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", True),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", True),
        ("sha384:" + "a" * 64, False),
        ("sha256:" + "a" * 63, False),
        ("sha256+foo+-b:abc", False),
        ("sha256:", False),
        (":abc", False),
        ("abc", False),
        (12, False),
    ],
)
def test_check_digest_like_go_digest(value: object, ok: bool) -> None:
    if ok:
        assert check_digest(value) == value
    else:
        with pytest.raises(InputError):
            check_digest(value)


def test_validate_document_dispatch() -> None:
    validate_document(mt.OCI_MANIFEST + "; charset=utf-8", manifest())
    validate_document(mt.OCI_DESCRIPTOR, json.dumps(DESC).encode())
    validate_document(mt.OCI_LAYOUT_HEADER, b'{"imageLayoutVersion":"1.0.0"}')
    with pytest.raises(InputError, match="cannot validate media type 'text/plain'"):
        validate_document("text/plain", b"{}")
