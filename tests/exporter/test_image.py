"""Exporter: configs, manifests and index written into the store validate and agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oci.schema_check import assert_valid_oci
from xarch.content.store import ContentStore
from xarch.errors import UsageError
from xarch.exporter.image import PlatformImage, export
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    s = ContentStore(tmp_path / "store")
    s.init()
    return s


def _image(store: ContentStore, p: str, media_type: str = mt.OCI_LAYER_GZIP) -> PlatformImage:
    blob = f"layer for {p}".encode()
    d = Descriptor(media_type, Digest.from_bytes(blob), len(blob))
    store.ingest_bytes(blob, d.digest)
    return PlatformImage(
        platform=Platform.parse(p), layers=(d,), diff_ids=(Digest.from_bytes(b"tar " + blob),),
        config={"created": "2024-01-01T00:00:00Z", "config": {"Env": ["PATH=/bin"]},
                "history": [{"created_by": "x"}, {"created_by": "ENV", "empty_layer": True}]},
    )


def test_multi_platform_index(store: ContentStore) -> None:
    res = export(store, [_image(store, "linux/amd64"), _image(store, "linux/arm/v7")],
                 index_annotations={"org.opencontainers.image.version": "1"})
    raw = store.read_bytes(res.root.digest)
    assert_valid_oci(mt.OCI_INDEX, raw)
    idx = Index.parse(raw)
    assert [str(m.platform) for m in idx.manifests] == ["linux/amd64", "linux/arm/v7"]
    for m in idx.manifests:
        man_raw = store.read_bytes(m.digest)
        assert_valid_oci(mt.OCI_MANIFEST, man_raw)
        cfg_raw = store.read_bytes(Manifest.parse(man_raw).config.digest)
        assert_valid_oci(mt.OCI_CONFIG, cfg_raw)
        cfg = json.loads(cfg_raw)
        assert cfg["architecture"] == m.platform.architecture  # type: ignore[union-attr]
        assert cfg["rootfs"]["type"] == "layers" and len(cfg["rootfs"]["diff_ids"]) == 1


def test_single_platform_is_a_plain_manifest(store: ContentStore) -> None:
    res = export(store, [_image(store, "linux/arm64")])
    assert res.root.media_type == mt.OCI_MANIFEST and res.root.platform is None
    cfg = json.loads(store.read_bytes(res.configs[0].digest))
    assert cfg.get("variant") is None and cfg["architecture"] == "arm64"


def test_docker_media_types(store: ContentStore) -> None:
    res = export(store, [_image(store, "linux/amd64"), _image(store, "linux/arm64")], oci_media_types=False)
    assert res.root.media_type == mt.DOCKER_MANIFEST_LIST
    man = Manifest.parse(store.read_bytes(res.manifests[0].digest))
    assert man.media_type == mt.DOCKER_MANIFEST and man.layers[0].media_type == mt.DOCKER_LAYER_GZIP
    assert man.config.media_type == mt.DOCKER_CONFIG


def test_zstd_needs_oci(store: ContentStore) -> None:
    with pytest.raises(UsageError, match="zstd"):
        export(store, [_image(store, "linux/amd64", mt.OCI_LAYER_ZSTD)], oci_media_types=False)


def test_history_must_match_layers(store: ContentStore) -> None:
    img = _image(store, "linux/amd64")
    bad = PlatformImage(img.platform, img.layers, img.diff_ids,
                        {**img.config, "history": [{"created_by": "a"}, {"created_by": "b"}]})
    with pytest.raises(ValueError, match="history"):
        export(store, [bad])
