from __future__ import annotations

import base64
import json

import pytest

from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor, FrozenMap
from xarch.oci.digest import Digest
from xarch.oci.manifest import canonical_json
from xarch.oci.platform import Platform

D = Digest.from_bytes(b"layer")


def test_to_json_field_order_matches_go_struct() -> None:
    desc = Descriptor(
        media_type=mt.OCI_MANIFEST,
        digest=D,
        size=5,
        urls=("https://example.com/x",),
        annotations={"b": "2", "a": "1"},
        platform=Platform("linux", "arm", "v7"),
        artifact_type="application/vnd.example+json",
        data=b"layer",
    )
    keys = list(desc.to_json())
    assert keys == [
        "mediaType",
        "digest",
        "size",
        "urls",
        "annotations",
        "data",
        "platform",
        "artifactType",
    ]
    # Go's encoding/json sorts map keys
    assert list(desc.to_json()["annotations"]) == ["a", "b"]
    assert desc.to_json()["data"] == base64.b64encode(b"layer").decode()


def test_minimal_to_json_omits_empty_fields() -> None:
    desc = Descriptor(mt.OCI_LAYER_GZIP, D, 5)
    assert canonical_json(desc.to_json()) == (
        b'{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"'
        + D.encode()
        + b'","size":5}'
    )


def test_round_trip() -> None:
    desc = Descriptor.of(
        mt.OCI_EMPTY,
        b"{}",
        annotations={"k": "v"},
        platform=Platform("linux", "amd64"),
        artifact_type="application/x.y",
        embed=True,
        urls=("https://a/b",),
    )
    back = Descriptor.from_json(json.loads(json.dumps(desc.to_json())))
    assert back == desc
    assert hash(back) == hash(desc)
    assert desc.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert desc.size == 2


def test_coercion_and_immutability() -> None:
    desc = Descriptor(mt.OCI_LAYER, str(D), 5, urls=["u:x"], annotations={"a": "b"})  # type: ignore[arg-type]
    assert isinstance(desc.digest, Digest)
    assert desc.urls == ("u:x",)
    assert isinstance(desc.annotations, FrozenMap)
    with pytest.raises(TypeError):
        desc.annotations["a"] = "c"  # type: ignore[index]
    assert desc.replace(size=6).size == 6
    assert desc.annotations == {"a": "b"}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"size": -1}, "non-negative integer"),
        ({"size": True}, "non-negative integer"),
        ({"size": 1.0}, "non-negative integer"),
        ({"media_type": ""}, "mediaType must be a non-empty string"),
        ({"digest": "sha256:abc"}, "expected 64 hex characters"),
        ({"annotations": {"a": 1}}, "must be a string"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], fragment: str) -> None:
    base: dict[str, object] = {"media_type": mt.OCI_LAYER, "digest": D, "size": 5}
    base.update(kwargs)
    with pytest.raises(InputError) as ei:
        Descriptor(**base)  # type: ignore[arg-type]
    assert fragment in str(ei.value)


GOOD = {"mediaType": mt.OCI_LAYER, "digest": str(D), "size": 5}


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"mediaType": None}, "'mediaType' must be a non-empty string"),
        ({"digest": 5}, "'digest' must be a string"),
        ({"digest": "sha256:XYZ"}, "invalid digest"),
        ({"size": "5"}, "'size' must be a non-negative integer"),
        ({"size": -5}, "'size' must be a non-negative integer"),
        ({"urls": "https://x"}, "'urls' must be an array of strings"),
        ({"annotations": {"a": None}}, "must be a string"),
        ({"annotations": []}, "expected a JSON object"),
        ({"artifactType": 3}, "'artifactType' must be a string"),
        ({"data": "!!!"}, "'data' is not valid base64"),
        ({"data": base64.b64encode(b"other").decode()}, "does not match its digest"),
        ({"data": 1}, "'data' must be a base64 string"),
        ({"platform": {"os": "linux"}}, "'architecture'"),
    ],
)
def test_from_json_errors(patch: dict[str, object], fragment: str) -> None:
    d = dict(GOOD)
    d.update(patch)
    with pytest.raises(InputError) as ei:
        Descriptor.from_json(d)
    assert fragment in str(ei.value)


def test_from_json_requires_object() -> None:
    with pytest.raises(InputError, match="expected a JSON object"):
        Descriptor.from_json([])  # type: ignore[arg-type]


def test_from_json_accepts_embedded_data_that_matches() -> None:
    d = dict(GOOD, data=base64.b64encode(b"layer").decode())
    assert Descriptor.from_json(d).data == b"layer"


def test_frozen_map() -> None:
    m = FrozenMap({"a": "1"})
    assert m == {"a": "1"} and m == FrozenMap({"a": "1"})
    assert hash(m) == hash(FrozenMap({"a": "1"}))
    assert len(m) == 1 and list(m) == ["a"]
    assert m != ["a"]
    assert "FrozenMap" in repr(m)
