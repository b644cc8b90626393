"""Turn solved layer chains and image configs into OCI manifests and an index.

The exporter writes config blobs, manifests and the index into the content store (layers
are already there: the solver put them). One platform gives a single image manifest, as
buildx does; several give an index with one entry per platform and nothing else (no
``unknown/unknown`` entries). Docker media types are available for old consumers; zstd
layers require OCI media types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xarch.content.store import ContentStore
from xarch.errors import UsageError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig, ordered
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform

_TO_DOCKER = {
    mt.OCI_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.OCI_LAYER: mt.DOCKER_LAYER,
    mt.DOCKER_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.DOCKER_LAYER: mt.DOCKER_LAYER,
    mt.DOCKER_FOREIGN_LAYER_GZIP: mt.DOCKER_FOREIGN_LAYER_GZIP,
}
_TO_OCI = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER: mt.OCI_LAYER,
    mt.DOCKER_LAYER_ZSTD: mt.OCI_LAYER_ZSTD,
}


@dataclass(frozen=True)
class PlatformImage:
    platform: Platform
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[Digest, ...]
    # The image config document without "rootfs" (the exporter fills it from diff_ids).
    config: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    root: Descriptor  # the index (several platforms) or the single manifest
    manifests: tuple[Descriptor, ...]  # one per platform, with platform set
    configs: tuple[Descriptor, ...]


def _layer_type(media_type: str, oci: bool) -> str:
    if oci:
        return _TO_OCI.get(media_type, media_type)
    if mt.is_zstd(media_type):
        raise UsageError(
            "zstd layers need OCI media types", hint="drop compression=zstd or set oci-mediatypes=true"
        )
    return _TO_DOCKER.get(media_type, media_type)


def image_config_bytes(img: PlatformImage) -> ImageConfig:
    if len(img.layers) != len(img.diff_ids):
        raise ValueError("layers and diff_ids differ in length")
    doc = dict(img.config)
    doc["architecture"] = img.platform.architecture
    doc["os"] = img.platform.os
    if img.platform.variant:
        doc["variant"] = img.platform.variant
    else:
        doc.pop("variant", None)
    doc["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in img.diff_ids]}
    _check_history(doc, len(img.layers))
    return ImageConfig.build(ordered(doc))


def _check_history(doc: Mapping[str, Any], n_layers: int) -> None:
    history = doc.get("history") or []
    with_layer = sum(1 for h in history if not h.get("empty_layer"))
    if history and with_layer != n_layers:
        # A bug in whoever assembled the config; consumers (docker history) would mis-align.
        raise ValueError(f"history has {with_layer} layer entries for {n_layers} layers")


def export(
    store: ContentStore,
    images: Sequence[PlatformImage],
    *,
    oci_media_types: bool = True,
    index_annotations: Mapping[str, str] | None = None,
    force_index: bool = False,
) -> ExportResult:
    if not images:
        raise UsageError("nothing to export: no platform was built")
    manifest_type = mt.OCI_MANIFEST if oci_media_types else mt.DOCKER_MANIFEST
    config_type = mt.OCI_CONFIG if oci_media_types else mt.DOCKER_CONFIG
    manifests: list[Descriptor] = []
    configs: list[Descriptor] = []
    for img in images:
        cfg = image_config_bytes(img)
        cfg_desc = cfg.descriptor(config_type)
        store.ingest_bytes(cfg.raw, cfg_desc.digest)
        layers = [d.replace(media_type=_layer_type(d.media_type, oci_media_types)) for d in img.layers]
        man = Manifest.build(
            cfg_desc,
            layers,
            media_type=manifest_type,
            annotations=dict(img.annotations) if (img.annotations and oci_media_types) else None,
        )
        store.ingest_bytes(man.raw, man.digest)
        manifests.append(man.descriptor.replace(platform=img.platform))
        configs.append(cfg_desc)
    if len(manifests) == 1 and not force_index:
        root = manifests[0].replace(platform=None)
    else:
        index_type = mt.OCI_INDEX if oci_media_types else mt.DOCKER_MANIFEST_LIST
        ann = dict(index_annotations or {}) if oci_media_types else None
        idx = Index.build(manifests, media_type=index_type, annotations=ann or None)
        store.ingest_bytes(idx.raw, idx.digest)
        root = idx.descriptor
    return ExportResult(root=root, manifests=tuple(manifests), configs=tuple(configs))
