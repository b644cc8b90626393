"""Image manifests and indexes (OCI and Docker schema2), keeping their exact raw bytes.

A manifest's identity is the digest of its bytes, so parsed objects never re-serialise: ``raw``
is what was read, and ``build`` produces new bytes once, in the field order of the Go structs in
image-spec ``specs-go/v1`` (what BuildKit/containerd emit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor, FrozenMap, freeze_annotations
from xarch.oci.digest import Digest


def canonical_json(obj: Any) -> bytes:
    """xarch's one serialisation: compact, UTF-8, keys in the order given, no trailing newline."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as e:
        raise InputError(f"cannot serialise document to JSON: {e}") from None


def _jtype(v: object) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(v), type(v).__name__
    )


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Decode ``raw`` as a UTF-8 JSON object or raise InputError naming ``what`` and the problem."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InputError(f"invalid {what}: expected bytes, got {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"invalid {what}: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise InputError(
            f"invalid {what}: malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise InputError(f"invalid {what}: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise InputError(f"invalid {what}: expected a JSON object, got {_jtype(doc)}")
    return doc


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; Go rejects them, so must we.
    raise json.JSONDecodeError(f"invalid constant {name}", name, 0)


def _schema_version(doc: Mapping[str, Any], what: str) -> None:
    sv = doc.get("schemaVersion")
    if sv == 1 and not isinstance(sv, bool):
        raise InputError(
            f"unsupported {what}: Docker schema1 manifests are deprecated and not supported "
            "(re-push the image with a current client)"
        )
    if isinstance(sv, bool) or sv != 2 or not isinstance(sv, int):
        raise InputError(f"invalid {what}: 'schemaVersion' must be 2, got {sv!r}")


def _opt_descriptor(doc: Mapping[str, Any], key: str, what: str) -> Descriptor | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise InputError(f"invalid {what}: '{key}' must be a descriptor object, got {_jtype(v)}")
    return _descriptor(v, f"{what} {key}")


def _descriptor(v: Any, where: str) -> Descriptor:
    if not isinstance(v, dict):
        raise InputError(f"invalid {where}: expected a descriptor object, got {_jtype(v)}")
    try:
        return Descriptor.from_json(v)
    except InputError as e:
        raise InputError(f"invalid {where}: {e.message}") from None


def _opt_str(doc: Mapping[str, Any], key: str, what: str) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InputError(f"invalid {what}: '{key}' must be a string, got {_jtype(v)}")
    return v or None


def _effective_type(
    field: Any, given: str | None, allowed: frozenset[str], inferred: str, what: str
) -> str:
    """Pick the media type: the document's own field wins, then the caller's, then inference."""
    if field is not None:
        if not isinstance(field, str):
            raise InputError(f"invalid {what}: 'mediaType' must be a string, got {_jtype(field)}")
        if field not in allowed:
            raise InputError(
                f"invalid {what}: mediaType {field!r} is not one of {', '.join(sorted(allowed))}"
            )
        if given is not None:
            g = mt.base(given)
            if g in allowed and g != field:
                raise InputError(
                    f"invalid {what}: mediaType field {field!r} contradicts the "
                    f"declared media type {g!r}"
                )
        return field
    if given is not None and mt.base(given) in allowed:
        return mt.base(given)
    return inferred


@dataclass(frozen=True, eq=False)
class Manifest:
    """An OCI image manifest or a Docker v2 schema2 manifest."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = FrozenMap()

    def __post_init__(self) -> None:
        # direct construction may pass lists/dicts; keep the object deeply immutable
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "annotations", freeze_annotations(self.annotations))

    @cached_property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self.media_type == other.media_type and self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.media_type, self.raw))

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Manifest:
        what = "image manifest"
        doc = load_json_object(raw, what)
        if "manifests" in doc and "layers" not in doc:
            raise InputError(
                f"invalid {what}: document is an image index (has 'manifests'), not a manifest"
            )
        inferred = mt.OCI_MANIFEST
        cfg = doc.get("config")
        if isinstance(cfg, dict) and cfg.get("mediaType") == mt.DOCKER_CONFIG:
            inferred = mt.DOCKER_MANIFEST
        _schema_version(doc, what)
        media = _effective_type(doc.get("mediaType"), media_type, mt.MANIFEST_TYPES, inferred, what)
        if "config" not in doc:
            raise InputError(f"invalid {what}: missing required field 'config'")
        config = _descriptor(doc["config"], f"{what} config")
        layers_raw = doc.get("layers")
        if not isinstance(layers_raw, list):
            if layers_raw is None and "layers" not in doc:
                raise InputError(f"invalid {what}: missing required field 'layers'")
            raise InputError(f"invalid {what}: 'layers' must be an array, got {_jtype(layers_raw)}")
        layers = tuple(_descriptor(d, f"{what} layers[{i}]") for i, d in enumerate(layers_raw))
        return cls(
            raw=bytes(raw),
            media_type=media,
            config=config,
            layers=layers,
            subject=_opt_descriptor(doc, "subject", what),
            artifact_type=_opt_str(doc, "artifactType", what),
            annotations=freeze_annotations(doc.get("annotations"), f"{what} annotations"),
        )

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: Sequence[Descriptor],
        *,
        media_type: str = mt.OCI_MANIFEST,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Manifest:
        if media_type not in mt.MANIFEST_TYPES:
            raise InputError(f"cannot build a manifest with media type {media_type!r}")
        if media_type == mt.DOCKER_MANIFEST and (subject is not None or artifact_type):
            raise InputError(
                "Docker schema2 manifests cannot carry 'subject' or 'artifactType' "
                "(use the OCI manifest media type)"
            )
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["config"] = config.to_json()
        doc["layers"] = [layer.to_json() for layer in layers]
        if subject is not None:
            doc["subject"] = subject.to_json()
        ann = freeze_annotations(annotations)
        if ann:
            doc["annotations"] = dict(sorted(ann.items()))  # Go sorts map keys
        return cls(
            raw=canonical_json(doc),
            media_type=media_type,
            config=config,
            layers=tuple(layers),
            subject=subject,
            artifact_type=artifact_type or None,
            annotations=ann,
        )


@dataclass(frozen=True, eq=False)
class Index:
    """An OCI image index or a Docker manifest list."""

    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = FrozenMap()

    def __post_init__(self) -> None:
        # direct construction may pass lists/dicts; keep the object deeply immutable
        object.__setattr__(self, "manifests", tuple(self.manifests))
        object.__setattr__(self, "annotations", freeze_annotations(self.annotations))

    @cached_property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Index):
            return NotImplemented
        return self.media_type == other.media_type and self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.media_type, self.raw))

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Index:
        what = "image index"
        doc = load_json_object(raw, what)
        if "manifests" not in doc and ("layers" in doc or "config" in doc):
            raise InputError(
                f"invalid {what}: document is an image manifest (has 'config'/'layers'), not an index"
            )
        _schema_version(doc, what)
        media = _effective_type(
            doc.get("mediaType"), media_type, mt.INDEX_TYPES, mt.OCI_INDEX, what
        )
        ms = doc.get("manifests")
        if not isinstance(ms, list):
            if "manifests" not in doc:
                raise InputError(f"invalid {what}: missing required field 'manifests'")
            raise InputError(f"invalid {what}: 'manifests' must be an array, got {_jtype(ms)}")
        manifests = tuple(_descriptor(d, f"{what} manifests[{i}]") for i, d in enumerate(ms))
        return cls(
            raw=bytes(raw),
            media_type=media,
            manifests=manifests,
            subject=_opt_descriptor(doc, "subject", what),
            artifact_type=_opt_str(doc, "artifactType", what),
            annotations=freeze_annotations(doc.get("annotations"), f"{what} annotations"),
        )

    @classmethod
    def build(
        cls,
        manifests: Sequence[Descriptor],
        *,
        media_type: str = mt.OCI_INDEX,
        annotations: Mapping[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
    ) -> Index:
        if media_type not in mt.INDEX_TYPES:
            raise InputError(f"cannot build an index with media type {media_type!r}")
        if media_type == mt.DOCKER_MANIFEST_LIST and (subject is not None or artifact_type):
            raise InputError(
                "Docker manifest lists cannot carry 'subject' or 'artifactType' "
                "(use the OCI index media type)"
            )
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["manifests"] = [m.to_json() for m in manifests]
        if subject is not None:
            doc["subject"] = subject.to_json()
        ann = freeze_annotations(annotations)
        if ann:
            doc["annotations"] = dict(sorted(ann.items()))  # Go sorts map keys
        return cls(
            raw=canonical_json(doc),
            media_type=media_type,
            manifests=tuple(manifests),
            subject=subject,
            artifact_type=artifact_type or None,
            annotations=ann,
        )


def parse_any(raw: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or an index, deciding by the mediaType field, then the given type, then
    the document's structure ('manifests' → index, 'config'/'layers' → manifest)."""
    doc = load_json_object(raw, "manifest")
    field = doc.get("mediaType")
    if isinstance(field, str) and field:
        if field in mt.INDEX_TYPES:
            return Index.parse(raw, media_type)
        if field in mt.MANIFEST_TYPES:
            return Manifest.parse(raw, media_type)
        raise InputError(
            f"unsupported manifest media type {field!r} "
            "(expected an OCI/Docker image manifest or index)"
        )
    if media_type is not None:
        base = mt.base(media_type)
        if base in mt.INDEX_TYPES:
            return Index.parse(raw, media_type)
        if base in mt.MANIFEST_TYPES:
            return Manifest.parse(raw, media_type)
    if "manifests" in doc:
        return Index.parse(raw, media_type)
    if "config" in doc or "layers" in doc or doc.get("schemaVersion") == 1:
        return Manifest.parse(raw, media_type)
    raise InputError(
        "invalid manifest: neither 'manifests' (index) nor 'config'/'layers' (manifest) present"
    )
