from __future__ import annotations

from xarch.oci import mediatype as mt


def test_predicates() -> None:
    assert mt.is_index(mt.OCI_INDEX) and mt.is_index(mt.DOCKER_MANIFEST_LIST)
    assert not mt.is_index(mt.OCI_MANIFEST)
    assert mt.is_manifest(mt.OCI_MANIFEST) and mt.is_manifest(mt.DOCKER_MANIFEST)
    assert not mt.is_manifest(mt.OCI_INDEX)
    # Content-Type headers may carry parameters
    assert mt.is_manifest(mt.OCI_MANIFEST + "; charset=utf-8")
    for layer in (
        mt.OCI_LAYER,
        mt.OCI_LAYER_GZIP,
        mt.OCI_LAYER_ZSTD,
        mt.DOCKER_LAYER_GZIP,
        mt.DOCKER_FOREIGN_LAYER_GZIP,
        mt.OCI_LAYER_NONDIST_GZIP,
    ):
        assert mt.is_layer(layer)
    assert not mt.is_layer(mt.OCI_CONFIG)
    assert mt.is_gzip(mt.OCI_LAYER_GZIP) and mt.is_gzip(mt.DOCKER_LAYER_GZIP)
    assert not mt.is_gzip(mt.OCI_LAYER) and not mt.is_gzip(mt.OCI_LAYER_ZSTD)
    assert mt.is_zstd(mt.OCI_LAYER_ZSTD) and not mt.is_zstd(mt.OCI_LAYER_GZIP)
    assert mt.is_config(mt.DOCKER_CONFIG) and mt.is_config(mt.OCI_CONFIG)


def test_constants_are_the_registered_strings() -> None:
    assert mt.OCI_LAYER_GZIP == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert mt.OCI_EMPTY == "application/vnd.oci.empty.v1+json"
    assert mt.DOCKER_LAYER_GZIP == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert mt.OCI_LAYOUT_HEADER == "application/vnd.oci.layout.header.v1+json"


def test_accept_header_lists_everything_schema1_last() -> None:
    parts = [p.strip() for p in mt.ACCEPT_MANIFESTS.split(",")]
    assert set(parts) >= mt.MANIFEST_TYPES | mt.INDEX_TYPES
    assert parts[-1] == mt.DOCKER_MANIFEST_SCHEMA1_SIGNED
    assert len(parts) == len(set(parts))
