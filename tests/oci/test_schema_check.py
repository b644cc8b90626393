"""The shared oracle ``oci.schema_check`` (real JSON schemas + Go pre-checks): it must agree with
the conformance vectors, and everything xarch.oci builds must pass it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import vectors
from oci._cases import CASES, Case, backwards_compat_cases, spec_examples, suite_cases
from oci.schema_check import SCHEMAS, OCISchemaError, assert_valid_oci, check_oci, schema_dir
from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig, ordered
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.oci.validate import validate_document

SUITE = suite_cases()
EXAMPLES = spec_examples()
BC = backwards_compat_cases()

pytestmark = vectors.needs(SCHEMAS)  # every test here consults the oracle


def _oracle_rejects(media_type: str, raw: bytes) -> bool:
    try:
        check_oci(media_type, raw)
    except (OCISchemaError, UnicodeDecodeError):
        return True
    return False


def test_schemas_present(conformance_dir: Path) -> None:
    assert schema_dir() == (conformance_dir / "oci-schema").resolve()


@vectors.parametrize(CASES, "case", SUITE, ids=[c.id for c in SUITE])
def test_oracle_agrees_with_suite(case: Case) -> None:
    assert _oracle_rejects(case.media_type, case.raw) is case.fail, case.comment


@vectors.parametrize(CASES, "case", EXAMPLES, ids=[c.id for c in EXAMPLES])
def test_oracle_accepts_spec_examples(case: Case) -> None:
    assert_valid_oci(case.media_type, case.raw)


@vectors.parametrize(CASES, ("cid", "mtype", "raw", "sha", "compat"), BC, ids=[b[0] for b in BC])
def test_oracle_accepts_docker_documents(
    cid: str, mtype: str, raw: bytes, sha: str, compat: dict[str, str]
) -> None:
    assert_valid_oci(mtype, raw)  # converted internally like backwards_compatibility_test.go


def test_oracle_refs_resolve_and_messages() -> None:
    # a nested $ref (index -> defs-descriptor.json -> mediaType pattern) must be enforced
    bad = (
        b'{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:'
        + b"a" * 64
        + b'","size":1}]}'
    )
    with pytest.raises(AssertionError, match=r"image-index-schema\.json"):
        assert_valid_oci(mt.OCI_INDEX, bad)
    with pytest.raises(AssertionError, match="no OCI schema"):
        assert_valid_oci("text/plain", b"{}")
    with pytest.raises(AssertionError, match="expected bytes"):
        assert_valid_oci(mt.OCI_INDEX, "{}")  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="invalid JSON"):
        assert_valid_oci(mt.OCI_INDEX, b"{")
    with pytest.raises(AssertionError, match="Go int64"):
        assert_valid_oci(
            mt.OCI_INDEX,
            b'{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:'
            + b"a" * 64
            + b'","size":1.0}]}',
        )


# --- (c) everything xarch builds passes the oracle and our own validator ------------------

_annotations = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3)
_media = st.sampled_from(
    [
        mt.OCI_LAYER,
        mt.OCI_LAYER_GZIP,
        mt.OCI_LAYER_ZSTD,
        mt.OCI_EMPTY,
        "application/vnd.example.data.v1+json",
    ]
)
_platform = st.builds(
    Platform,
    os=st.sampled_from(["linux", "windows"]),
    architecture=st.sampled_from(["amd64", "arm64", "arm", "s390x"]),
    variant=st.sampled_from(["", "v7", "v8"]),
    os_version=st.sampled_from(["", "10.0.17763.1"]),
    os_features=st.sampled_from([(), ("win32k",)]),
)


@st.composite
def descriptors(draw: st.DrawFn, with_platform: bool = False) -> Descriptor:
    data = draw(st.binary(max_size=32))
    return Descriptor.of(
        draw(_media),
        data,
        algorithm=draw(st.sampled_from(["sha256", "sha512"])),
        urls=tuple(
            draw(
                st.lists(st.sampled_from(["https://example.com/a", "http://h:1/p?q=1"]), max_size=2)
            )
        ),
        annotations=draw(_annotations),
        platform=draw(_platform) if with_platform and draw(st.booleans()) else None,
        artifact_type=draw(st.one_of(st.none(), st.just("application/vnd.example+type"))),
        embed=draw(st.booleans()),
    )


def _check_both(media_type: str, raw: bytes) -> None:
    assert_valid_oci(media_type, raw)
    validate_document(media_type, raw)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    descriptors(),
    st.lists(descriptors(), min_size=1, max_size=4),
    st.one_of(st.none(), descriptors()),
    st.one_of(st.none(), st.just("application/vnd.example+type")),
    _annotations,
)
def test_built_manifests_are_valid(
    config: Descriptor,
    layers: list[Descriptor],
    subject: Descriptor | None,
    artifact_type: str | None,
    annotations: dict[str, str],
) -> None:
    m = Manifest.build(
        config, layers, subject=subject, artifact_type=artifact_type, annotations=annotations
    )
    _check_both(mt.OCI_MANIFEST, m.raw)
    assert Manifest.parse(m.raw) == m


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(descriptors(with_platform=True), max_size=4),
    st.one_of(st.none(), descriptors()),
    _annotations,
)
def test_built_indexes_are_valid(
    manifests: list[Descriptor], subject: Descriptor | None, annotations: dict[str, str]
) -> None:
    i = Index.build(manifests, subject=subject, annotations=annotations)
    _check_both(mt.OCI_INDEX, i.raw)
    assert Index.parse(i.raw).manifests == tuple(manifests)


def test_built_docker_documents_are_valid() -> None:
    cfg = ImageConfig.build(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    layer = Descriptor.of(mt.DOCKER_LAYER_GZIP, b"x")
    m = Manifest.build(cfg.descriptor(mt.DOCKER_CONFIG), [layer], media_type=mt.DOCKER_MANIFEST)
    _check_both(mt.DOCKER_MANIFEST, m.raw)
    i = Index.build(
        [m.descriptor.replace(platform=Platform("linux", "amd64"))],
        media_type=mt.DOCKER_MANIFEST_LIST,
    )
    _check_both(mt.DOCKER_MANIFEST_LIST, i.raw)
    _check_both(mt.DOCKER_CONFIG, cfg.raw)


_env = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=8)
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    max_size=3,
)


@settings(max_examples=60)
@given(
    st.sampled_from(["amd64", "arm64", "arm"]),
    st.sampled_from(["", "v7", "v8"]),
    _env,
    st.lists(st.binary(max_size=8), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=3),
    st.booleans(),
)
def test_built_configs_are_valid(
    arch: str,
    variant: str,
    env: list[str],
    layers: list[bytes],
    labels: dict[str, str],
    with_history: bool,
) -> None:
    from xarch.oci.digest import Digest

    data: dict[str, Any] = {
        "created": "2024-01-02T03:04:05Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": env, "Cmd": ["sh"], "Labels": labels, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [str(Digest.from_bytes(b)) for b in layers]},
    }
    if variant:
        data["variant"] = variant
    if with_history:
        data["history"] = [
            {"created": "2024-01-02T03:04:05.5+01:00", "created_by": "RUN x", "empty_layer": True}
        ]
    c = ImageConfig.build(ordered(data))
    _check_both(mt.OCI_CONFIG, c.raw)
    assert ImageConfig.parse(c.raw) == c


def test_layout_header_and_empty_descriptor() -> None:
    _check_both(mt.OCI_LAYOUT_HEADER, b'{"imageLayoutVersion":"1.0.0"}')
    empty = Descriptor.of(mt.OCI_EMPTY, b"{}", embed=True)
    _check_both(mt.OCI_DESCRIPTOR, json.dumps(empty.to_json()).encode())


# --- differential: xarch.oci.validate is never more lenient than the oracle ---------------

_VALUES = [None, 0, -1, 1.5, True, "", "x", "a/b", [], {}, ["x"], {"k": 1}, "sha256:" + "A" * 64]
_BASE_DOCS: dict[str, dict[str, Any]] = {
    mt.OCI_MANIFEST: json.loads(
        Manifest.build(
            Descriptor.of(mt.OCI_CONFIG, b"{}"),
            [Descriptor.of(mt.OCI_LAYER_GZIP, b"l", annotations={"a": "b"}, urls=("https://x/y",))],
            subject=Descriptor.of(mt.OCI_MANIFEST, b"s"),
            annotations={"k": "v"},
        ).raw
    ),
    mt.OCI_INDEX: json.loads(
        Index.build(
            [
                Descriptor.of(
                    mt.OCI_MANIFEST, b"m", platform=Platform("linux", "arm", "v7"), embed=True
                )
            ],
            annotations={"k": "v"},
        ).raw
    ),
    mt.OCI_CONFIG: {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["sh"], "Labels": {"a": "b"}, "Volumes": {"/v": {}}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
        "history": [{"created_by": "x", "empty_layer": True}],
    },
}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    media_type = draw(st.sampled_from(sorted(_BASE_DOCS)))
    doc = copy.deepcopy(_BASE_DOCS[media_type])
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_paths(doc)))
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(_VALUES)))
        if not _paths(doc):
            break
    return media_type, json.dumps(doc).encode()


@settings(max_examples=300)
@given(mutated())
def test_never_more_lenient_than_oracle(sample: tuple[str, bytes]) -> None:
    media_type, raw = sample
    if _oracle_rejects(media_type, raw):
        with pytest.raises(InputError):
            validate_document(media_type, raw)
