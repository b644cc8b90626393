from __future__ import annotations

import json

import pytest

from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest, canonical_json, parse_any
from xarch.oci.platform import Platform

CFG = Descriptor.of(mt.OCI_CONFIG, b'{"architecture":"amd64","os":"linux"}')
L1 = Descriptor.of(mt.OCI_LAYER_GZIP, b"layer-1")
L2 = Descriptor.of(mt.OCI_LAYER_ZSTD, b"layer-2", annotations={"z": "1", "a": "2"})


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"b":1,"a":[1,"é"]}'.encode()
    with pytest.raises(InputError):
        canonical_json({"x": float("nan")})
    with pytest.raises(InputError):
        canonical_json({"x": object()})


def test_build_manifest_exact_bytes_and_field_order() -> None:
    subject = Descriptor.of(mt.OCI_MANIFEST, b"{}")
    m = Manifest.build(
        CFG,
        [L1, L2],
        subject=subject,
        artifact_type="application/vnd.example+json",
        annotations={"org.b": "2", "org.a": "1"},
    )
    doc = json.loads(m.raw)
    assert list(doc) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    assert list(doc["annotations"]) == ["org.a", "org.b"]  # Go sorts map keys
    assert m.raw == canonical_json(doc)
    assert not m.raw.endswith(b"\n")
    assert m.digest == Digest.from_bytes(m.raw)
    assert m.descriptor == Descriptor(mt.OCI_MANIFEST, m.digest, len(m.raw))
    assert m.layers == (L1, L2) and m.subject == subject
    assert Manifest.parse(m.raw) == m
    parsed = Manifest.parse(m.raw)
    assert parsed.config == CFG and parsed.layers == (L1, L2)
    assert parsed.artifact_type == "application/vnd.example+json"
    assert parsed.annotations == {"org.a": "1", "org.b": "2"}


def test_build_minimal_manifest_bytes() -> None:
    m = Manifest.build(CFG, [L1])
    expected = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"{mt.OCI_CONFIG}","digest":"{CFG.digest}","size":{CFG.size}}},'
        f'"layers":[{{"mediaType":"{mt.OCI_LAYER_GZIP}","digest":"{L1.digest}","size":7}}]}}'
    )
    assert m.raw == expected.encode()


def test_build_docker_manifest() -> None:
    cfg = Descriptor.of(mt.DOCKER_CONFIG, b"{}")
    m = Manifest.build(cfg, [], media_type=mt.DOCKER_MANIFEST)
    assert json.loads(m.raw)["mediaType"] == mt.DOCKER_MANIFEST
    assert Manifest.parse(m.raw).media_type == mt.DOCKER_MANIFEST
    with pytest.raises(InputError, match="cannot carry 'subject'"):
        Manifest.build(cfg, [], media_type=mt.DOCKER_MANIFEST, subject=L1)
    with pytest.raises(InputError, match="cannot build a manifest"):
        Manifest.build(cfg, [], media_type=mt.OCI_INDEX)


def test_parse_keeps_raw_bytes_exactly() -> None:
    raw = (
        b'{\n  "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.manifest.v1+json",'
        b'\n  "config": ' + json.dumps(CFG.to_json()).encode() + b',\n  "layers": []\n}\n'
    )
    m = Manifest.parse(raw)
    assert m.raw == raw
    assert m.digest == Digest.from_bytes(raw)
    assert m.descriptor.size == len(raw)
    assert m.layers == ()


def test_parse_infers_media_type() -> None:
    body = {"schemaVersion": 2, "config": CFG.to_json(), "layers": [L1.to_json()]}
    raw = json.dumps(body).encode()
    assert Manifest.parse(raw).media_type == mt.OCI_MANIFEST
    assert Manifest.parse(raw, mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    # content-type noise is ignored, parameters stripped
    assert Manifest.parse(raw, "application/octet-stream").media_type == mt.OCI_MANIFEST
    assert (
        Manifest.parse(raw, mt.DOCKER_MANIFEST + "; charset=utf-8").media_type == mt.DOCKER_MANIFEST
    )
    docker_cfg = dict(body, config=Descriptor.of(mt.DOCKER_CONFIG, b"{}").to_json())
    assert Manifest.parse(json.dumps(docker_cfg).encode()).media_type == mt.DOCKER_MANIFEST


def test_parse_field_wins_and_contradiction_is_an_error() -> None:
    raw = Manifest.build(CFG, [L1]).raw
    assert Manifest.parse(raw, "application/json").media_type == mt.OCI_MANIFEST
    with pytest.raises(InputError, match="contradicts the declared media type"):
        Manifest.parse(raw, mt.DOCKER_MANIFEST)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b"[]", "expected a JSON object, got array"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"schemaVersion":2,"config":{},"layers":NaN}', "malformed JSON"),
        (b'{"schemaVersion":1,"name":"x","fsLayers":[]}', "schema1"),
        (
            b'{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}',
            "schema1",
        ),
        (b'{"schemaVersion":3,"config":{},"layers":[]}', "'schemaVersion' must be 2"),
        (b'{"config":{},"layers":[]}', "'schemaVersion' must be 2"),
        (b'{"schemaVersion":2,"layers":[]}', "missing required field 'config'"),
        (b'{"schemaVersion":2,"manifests":[]}', "is an image index"),
        (
            b'{"schemaVersion":2,"mediaType":"text/plain","config":{},"layers":[]}',
            "mediaType 'text/plain' is not one of",
        ),
        (
            b'{"schemaVersion":2,"mediaType":5,"config":{},"layers":[]}',
            "'mediaType' must be a string",
        ),
    ],
)
def test_parse_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Manifest.parse(raw)
    assert fragment in str(ei.value)
    assert "image manifest" in str(ei.value)


def _m(**patch: object) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "config": CFG.to_json(),
        "layers": [L1.to_json()],
    }
    body.update(patch)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (_m(layers=None), "'layers' must be an array, got null"),
        (_m(layers={}), "'layers' must be an array, got object"),
        (_m(config="x"), "config: expected a descriptor object, got string"),
        (_m(layers=[{"mediaType": "a/b", "digest": "sha256:00", "size": 1}]), "layers[0]"),
        (_m(subject=[]), "'subject' must be a descriptor object"),
        (_m(annotations={"a": 1}), "annotations"),
        (_m(artifactType=1), "'artifactType' must be a string"),
    ],
)
def test_parse_structure_errors_name_the_field(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Manifest.parse(raw)
    assert fragment in str(ei.value)


def test_manifest_without_layers_key() -> None:
    body = {"schemaVersion": 2, "config": CFG.to_json()}
    with pytest.raises(InputError, match="missing required field 'layers'"):
        Manifest.parse(json.dumps(body).encode())


def test_index_build_and_parse() -> None:
    m1 = Manifest.build(CFG, [L1])
    d1 = m1.descriptor.replace(platform=Platform("linux", "amd64"))
    d2 = m1.descriptor.replace(platform=Platform("linux", "arm", "v7"), annotations={"x": "y"})
    idx = Index.build([d1, d2], annotations={"b": "1", "a": "2"})
    doc = json.loads(idx.raw)
    assert list(doc) == ["schemaVersion", "mediaType", "manifests", "annotations"]
    assert list(doc["manifests"][1]) == ["mediaType", "digest", "size", "annotations", "platform"]
    assert list(doc["manifests"][1]["platform"]) == ["architecture", "os", "variant"]
    back = Index.parse(idx.raw)
    assert back == idx and back.manifests == (d1, d2)
    assert back.annotations == {"a": "2", "b": "1"}
    assert idx.descriptor.media_type == mt.OCI_INDEX
    assert idx.digest == Digest.from_bytes(idx.raw)


def test_index_with_subject_and_artifact_type_field_order() -> None:
    subj = Descriptor.of(mt.OCI_MANIFEST, b"{}")
    idx = Index.build([], subject=subj, artifact_type="application/x.y")
    assert list(json.loads(idx.raw)) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "manifests",
        "subject",
    ]
    assert Index.parse(idx.raw).subject == subj
    assert Index.parse(idx.raw).artifact_type == "application/x.y"


def test_docker_manifest_list() -> None:
    idx = Index.build([], media_type=mt.DOCKER_MANIFEST_LIST)
    assert Index.parse(idx.raw).media_type == mt.DOCKER_MANIFEST_LIST
    raw = b'{"schemaVersion":2,"manifests":[]}'
    assert Index.parse(raw).media_type == mt.OCI_INDEX
    assert Index.parse(raw, mt.DOCKER_MANIFEST_LIST).media_type == mt.DOCKER_MANIFEST_LIST
    with pytest.raises(InputError, match="cannot carry"):
        Index.build([], media_type=mt.DOCKER_MANIFEST_LIST, artifact_type="a/b")
    with pytest.raises(InputError, match="cannot build an index"):
        Index.build([], media_type=mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"schemaVersion":2}', "missing required field 'manifests'"),
        (b'{"schemaVersion":2,"manifests":{}}', "'manifests' must be an array, got object"),
        (b'{"schemaVersion":2,"config":{},"layers":[]}', "is an image manifest"),
        (b'{"schemaVersion":2,"manifests":[1]}', "manifests[0]: expected a descriptor object"),
        (
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}',
            "is not one of",
        ),
    ],
)
def test_index_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Index.parse(raw)
    assert fragment in str(ei.value)


def test_parse_any_dispatch() -> None:
    m = Manifest.build(CFG, [L1])
    i = Index.build([m.descriptor])
    assert parse_any(m.raw) == m
    assert parse_any(i.raw) == i
    bare_index = b'{"schemaVersion":2,"manifests":[]}'
    assert isinstance(parse_any(bare_index), Index)
    bare_manifest = _m()
    assert isinstance(parse_any(bare_manifest), Manifest)
    assert isinstance(parse_any(bare_index, mt.DOCKER_MANIFEST_LIST), Index)
    assert parse_any(bare_manifest, mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    with pytest.raises(InputError, match="unsupported manifest media type"):
        parse_any(b'{"mediaType":"application/vnd.oci.image.config.v1+json"}')
    with pytest.raises(InputError, match="neither 'manifests'"):
        parse_any(b'{"schemaVersion":2}')
    with pytest.raises(InputError, match="schema1"):
        parse_any(b'{"schemaVersion":1,"fsLayers":[]}')


def test_equality_and_hash_are_by_bytes() -> None:
    a = Manifest.build(CFG, [L1])
    b = Manifest.parse(a.raw)
    assert a == b and hash(a) == hash(b)
    assert a != Manifest.parse(a.raw + b" ")
    assert a != "x"
    i = Index.build([])
    assert i == Index.parse(i.raw) and hash(i) == hash(Index.parse(i.raw))
    assert i != a
