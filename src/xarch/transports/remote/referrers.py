"""Referrers tag schema (distribution-spec v1.1 fallback for registries without the API).

A registry without ``GET /v2/<name>/referrers/<digest>`` gets an OCI index tagged
``<alg>-<hex>`` listing every artifact whose ``subject`` is that digest; clients that push or
delete such artifacts maintain it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest

_NOT_TAG_CHAR = re.compile(r"[^a-zA-Z0-9._-]")


def referrers_tag(digest: str) -> str:
    """``sha256:abc…`` -> ``sha256-abc…`` (algorithm ≤32 chars, encoded ≤64, others -> '-')."""
    alg, _, encoded = str(digest).partition(":")
    return _NOT_TAG_CHAR.sub("-", alg[:32]) + "-" + _NOT_TAG_CHAR.sub("-", encoded[:64])


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def subject_of(raw: bytes) -> Descriptor | None:
    """The ``subject`` descriptor of a manifest/index, if any."""
    doc = _load(raw)
    if doc is None or not isinstance(doc.get("subject"), dict):
        return None
    return Descriptor.from_json(doc["subject"])


def artifact_descriptor(raw: bytes, media_type: str) -> Descriptor:
    """How an artifact manifest is listed in a referrers index: its own descriptor plus
    ``artifactType`` (falling back to the config media type, as the spec requires) and its
    annotations."""
    doc = _load(raw) or {}
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str) or not artifact_type:
        config = doc.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    annotations = doc.get("annotations")
    return Descriptor(
        mt.base(media_type),
        Digest.from_bytes(raw),
        len(raw),
        annotations=annotations if isinstance(annotations, dict) else {},
        artifact_type=artifact_type if isinstance(artifact_type, str) and artifact_type else None,
    )
