"""Independent oracle for OCI documents: the real image-spec JSON schemas + the Go pre-checks.

Other suites import this to check everything xarch writes::

    from oci.schema_check import assert_valid_oci
    assert_valid_oci(mediatype.OCI_MANIFEST, manifest.raw)

(``tests/`` is on ``sys.path`` during a pytest run because ``tests/conftest.py`` lives there.)

It deliberately does NOT use ``xarch.oci.validate``: the schemas come from the conformance
directory (opencontainers/image-spec ``schema/*.json``), evaluated by ``jsonschema`` (draft-04)
with the alias URLs of image-spec ``schema/schema.go``; the small Go-side checks that
``jsonschema`` cannot express are re-implemented here from the spec text (README of
``oci-schema``). Docker schema2 documents are checked the way image-spec's
backwards-compatibility test does: Docker media types are replaced by their OCI equivalents
and the result must validate.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from helpers.vectors import location, vectors

_BASE = "https://opencontainers.org/schema/"
# schema file -> every URL it is reachable under (image-spec schema/schema.go specURLs).
_ALIASES: dict[str, tuple[str, ...]] = {
    "config-schema.json": ("image/config",),
    "content-descriptor.json": ("descriptor", "image/content-descriptor.json"),
    "defs-descriptor.json": (
        "image/descriptor/mediaType",
        "defs-descriptor.json",
        "image/defs-descriptor.json",
    ),
    "defs.json": ("defs.json", "image/defs.json", "image/descriptor/defs.json"),
    "image-index-schema.json": ("image/index",),
    "image-layout-schema.json": ("image/layout",),
    "image-manifest-schema.json": ("image/manifest",),
}

OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

_SCHEMA_FOR: dict[str, str] = {
    OCI_DESCRIPTOR: "content-descriptor.json",
    OCI_LAYOUT_HEADER: "image-layout-schema.json",
    OCI_MANIFEST: "image-manifest-schema.json",
    OCI_INDEX: "image-index-schema.json",
    OCI_CONFIG: "config-schema.json",
}

# image-spec schema/backwards_compatibility_test.go compatMap.
DOCKER_TO_OCI: dict[str, str] = {
    "application/vnd.docker.distribution.manifest.list.v2+json": OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json": OCI_MANIFEST,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.container.image.v1+json": OCI_CONFIG,
}

_GO_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ENV_RE = re.compile(r"[^=]+=.*", re.DOTALL)


class OCISchemaError(AssertionError):
    """A document failed the schema or a Go pre-check."""


SCHEMAS = "oci-schema"


def schema_dir() -> Path:
    return location(SCHEMAS)


@cache
def _registry_and_schemas() -> tuple[Registry, dict[str, dict[str, Any]]]:
    d = vectors(SCHEMAS)  # without the schemas the calling test skips (fails in CI)
    schemas: dict[str, dict[str, Any]] = {}
    resources: list[tuple[str, Resource[Any]]] = []
    for fname, aliases in _ALIASES.items():
        contents = json.loads((d / fname).read_text())
        schemas[fname] = contents
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        resources.extend((_BASE + alias, resource) for alias in aliases)
    return Registry().with_resources(resources), schemas


@cache
def _validator(schema_file: str) -> jsonschema.Draft4Validator:
    registry, schemas = _registry_and_schemas()
    return jsonschema.Draft4Validator(schemas[schema_file], registry=registry)


# --- Go-side pre-checks (image-spec schema/validator.go + json.Unmarshal into the Go structs) ---


def _check_go_digest(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise OCISchemaError(f"{where}: digest must be a string, got {value!r}")
    alg, sep, enc = value.partition(":")
    if not sep or not alg or not enc or not _DIGEST_RE.fullmatch(value):
        raise OCISchemaError(f"{where}: malformed digest {value!r}")
    want = _GO_DIGEST_HEX.get(alg)
    if want is not None and not (len(enc) == want and re.fullmatch(r"[a-f0-9]+", enc)):
        raise OCISchemaError(f"{where}: {alg} digest needs {want} lowercase hex chars: {value!r}")


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []  # other types: the schema reports them


def _check_descriptor(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        return  # the schema reports the type error
    if "digest" in d:
        _check_go_digest(d["digest"], f"{where}.digest")
    size = d.get("size")
    if isinstance(size, float):
        raise OCISchemaError(f"{where}.size: Go int64 cannot hold a JSON number {size!r}")
    if "data" in d:
        data = d["data"]
        if not isinstance(data, str):
            raise OCISchemaError(f"{where}.data must be a base64 string")
        try:
            base64.b64decode(data.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError) as e:
            raise OCISchemaError(f"{where}.data: invalid standard base64: {e}") from None
    for i, url in enumerate(_as_list(d.get("urls"))):
        # schema "format": "uri" (absolute URI); jsonschema does not assert formats by default
        if not isinstance(url, str) or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*\Z", url):
            raise OCISchemaError(f"{where}.urls[{i}]: not an absolute URI: {url!r}")
    if "platform" in d and not isinstance(d["platform"], dict):
        raise OCISchemaError(f"{where}.platform must be an object")


def _is_rfc3339(s: str) -> bool:
    try:
        datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", s))


def _go_prechecks(media_type: str, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise OCISchemaError(f"{media_type}: top level must be a JSON object (Go struct)")
    if media_type == OCI_DESCRIPTOR:
        _check_descriptor(doc, "descriptor")
    elif media_type == OCI_MANIFEST:
        _check_descriptor(doc.get("config"), "config")
        for i, layer in enumerate(_as_list(doc.get("layers"))):
            _check_descriptor(layer, f"layers[{i}]")
        _check_descriptor(doc.get("subject"), "subject")
    elif media_type == OCI_INDEX:
        for i, m in enumerate(_as_list(doc.get("manifests"))):
            _check_descriptor(m, f"manifests[{i}]")
        _check_descriptor(doc.get("subject"), "subject")
    elif media_type == OCI_CONFIG:
        cfg = doc.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("Env"), list):
            for i, e in enumerate(cfg["Env"]):
                if isinstance(e, str) and not _ENV_RE.fullmatch(e):
                    raise OCISchemaError(f"config.Env[{i}]: {e!r} is not NAME=value")
        # Go decodes "created" into *time.Time, which only accepts RFC 3339
        stamps = [("created", doc.get("created"))] + [
            (f"history[{i}].created", h.get("created"))
            for i, h in enumerate(_as_list(doc.get("history")))
            if isinstance(h, dict)
        ]
        for where, stamp in stamps:
            if isinstance(stamp, str) and not _is_rfc3339(stamp):
                raise OCISchemaError(f"{where}: {stamp!r} is not an RFC 3339 time")
        rootfs = doc.get("rootfs")
        if isinstance(rootfs, dict) and isinstance(rootfs.get("diff_ids"), list):
            for i, dg in enumerate(rootfs["diff_ids"]):
                _check_go_digest(dg, f"rootfs.diff_ids[{i}]")


def check_oci(media_type: str, raw: bytes) -> None:
    """Raise OCISchemaError unless ``raw`` is a valid document of ``media_type``."""
    if not isinstance(raw, bytes):
        raise OCISchemaError(f"expected bytes, got {type(raw).__name__}")
    text = raw.decode("utf-8")  # UnicodeDecodeError is a failure too
    base = media_type.split(";", 1)[0].strip()
    if base in DOCKER_TO_OCI:
        for docker, oci in DOCKER_TO_OCI.items():
            text = text.replace(docker, oci)
        base = DOCKER_TO_OCI[base]
    if base not in _SCHEMA_FOR:
        raise OCISchemaError(f"no OCI schema for media type {media_type!r}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise OCISchemaError(f"{media_type}: invalid JSON: {e}") from None
    _go_prechecks(base, doc)
    errors = sorted(_validator(_SCHEMA_FOR[base]).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        lines = [f"/{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]]
        raise OCISchemaError(f"{media_type} fails {_SCHEMA_FOR[base]}:\n  " + "\n  ".join(lines))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def assert_valid_oci(media_type: str, raw: bytes) -> None:
    """pytest-friendly: AssertionError (with the reasons) unless ``raw`` is valid."""
    check_oci(media_type, raw)
