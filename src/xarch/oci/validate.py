"""Validation of OCI documents against the image-spec rules, in plain Python.

Implements the JSON schemas of opencontainers/image-spec (``schema/*.json``, draft-04) plus the
checks the Go reference validator makes before the schema (``schema/validator.go``):

* the document must unmarshal into the Go struct: JSON types must match, integers must be JSON
  integers within int64 (Go rejects ``1.0``), string maps must hold strings, ``data`` must be
  standard base64;
* digests are checked like go-digest: ``sha256``/``sha384``/``sha512`` need exactly 64/96/128
  lowercase hex characters, other well-formed algorithms are accepted (unsupported ≠ invalid);
* every ``config.Env`` entry must look like ``NAME=value``;
* ``urls`` entries must be absolute URIs (the schema's ``format: uri``).

Deliberately stricter than Go (the spec says MUST, Go only warns or ignores): digests are
checked in every nested descriptor and in ``rootfs.diff_ids``, sizes in index entries must not
be negative, embedded ``data`` must match the descriptor's digest and size, timestamps must be
RFC 3339, and an OCI manifest/index whose ``mediaType`` field names another type is rejected.

Every failure is an ``InputError`` naming the document, the JSON path and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from xarch.errors import InputError
from xarch.oci import mediatype as mt

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
# defs-descriptor.json digest pattern == go-digest DigestRegexp.
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_RE = re.compile(r"[a-f0-9]+")
# go-digest's registered algorithms and their hex lengths.
_GO_DIGEST_ALGS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
_ENV_RE = re.compile(r"[^=]+=.*", re.DOTALL)
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class _Ctx:
    """Carries the document name so every error reads 'invalid <what>: <path>: <problem>'."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, msg: str) -> InputError:
        where = f"{path}: " if path else ""
        return InputError(f"invalid {self.what}: {where}{msg}")


def _jtype(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _load(raw: bytes | str, ctx: _Ctx) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ctx.fail("", f"expected JSON bytes, got {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ctx.fail("", f"not valid UTF-8 ({e.reason} at byte {e.start})") from None

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise ctx.fail("", f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:
        raise ctx.fail("", f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ctx.fail("", f"expected a JSON object, got {_jtype(doc)}")
    return doc


# --- primitive checks ---------------------------------------------------------------------


def _string(v: Any, path: str, ctx: _Ctx) -> str:
    if not isinstance(v, str):
        raise ctx.fail(path, f"expected a string, got {_jtype(v)}")
    return v


def _opt_string(d: Mapping[str, Any], key: str, path: str, ctx: _Ctx) -> None:
    if key in d:
        _string(d[key], _join(path, key), ctx)


def _integer(v: Any, path: str, ctx: _Ctx, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.fail(path, f"expected an integer, got {_jtype(v)} {v!r}")
    if not lo <= v <= hi:
        raise ctx.fail(path, f"{v} is out of range ({lo}..{hi})")
    return v


def _object(v: Any, path: str, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ctx.fail(path, f"expected an object, got {_jtype(v)}")
    return v


def _array(v: Any, path: str, ctx: _Ctx) -> list[Any]:
    if not isinstance(v, list):
        raise ctx.fail(path, f"expected an array, got {_jtype(v)}")
    return v


def _string_array(v: Any, path: str, ctx: _Ctx) -> list[str]:
    for i, item in enumerate(_array(v, path, ctx)):
        _string(item, _join(path, i), ctx)
    return v


def _string_map(v: Any, path: str, ctx: _Ctx) -> None:
    # Go map[string]string: every value must be a string (stricter than the schema's ".{1,}").
    for k, val in _object(v, path, ctx).items():
        if not isinstance(val, str):
            raise ctx.fail(_join(path, k), f"expected a string value, got {_jtype(val)}")


def _object_map(v: Any, path: str, ctx: _Ctx) -> None:
    # Go map[string]struct{}: values must be objects.
    for k, val in _object(v, path, ctx).items():
        if not isinstance(val, dict):
            raise ctx.fail(_join(path, k), f"expected an object value, got {_jtype(val)}")


def _media_type(v: Any, path: str, ctx: _Ctx) -> str:
    s = _string(v, path, ctx)
    if not MEDIA_TYPE_RE.fullmatch(s):
        raise ctx.fail(
            path,
            f"{s!r} is not a valid media type (expected 'type/subtype', each starting with a "
            "letter or digit, at most 127 characters)",
        )
    return s


def check_digest(value: Any, path: str = "digest", what: str = "digest") -> str:
    """go-digest validation: well-formed; known algorithms need exact lowercase hex."""
    ctx = _Ctx(what)
    s = _string(value, path, ctx)
    alg, sep, enc = s.partition(":")
    if not sep or not alg or not enc:
        raise ctx.fail(path, f"{s!r} is not '<algorithm>:<encoded>'")
    if not DIGEST_RE.fullmatch(s):
        raise ctx.fail(
            path,
            f"{s!r} is malformed (algorithm: lowercase letters/digits joined by single "
            "'+', '.', '_' or '-'; encoded: letters, digits, '=', '_', '-')",
        )
    want = _GO_DIGEST_ALGS.get(alg)
    if want is not None:
        if len(enc) != want:
            raise ctx.fail(path, f"{s!r}: {alg} needs {want} hex characters, got {len(enc)}")
        if not _HEX_RE.fullmatch(enc):
            raise ctx.fail(path, f"{s!r}: {alg} hex must be lowercase 0-9a-f")
    return s


def _digest(v: Any, path: str, ctx: _Ctx) -> str:
    return check_digest(v, path, ctx.what)


def _uri(v: Any, path: str, ctx: _Ctx) -> None:
    s = _string(v, path, ctx)
    scheme, sep, _ = s.partition(":")
    if not sep or not _URI_SCHEME_RE.fullmatch(scheme):
        raise ctx.fail(path, f"{s!r} is not an absolute URI (expected e.g. 'https://host/path')")
    if any(c.isspace() or ord(c) < 0x20 or c in '<>"{}|\\^`' for c in s):
        raise ctx.fail(path, f"{s!r} contains characters not allowed in a URI")
    try:
        parts = urlsplit(s)
        _ = parts.port  # raises on a non-numeric port
    except ValueError as e:
        raise ctx.fail(path, f"{s!r} is not a valid URI ({e})") from None


def _datetime(v: Any, path: str, ctx: _Ctx) -> None:
    s = _string(v, path, ctx)
    m = _RFC3339_RE.fullmatch(s)
    bad = ctx.fail(path, f"{s!r} is not an RFC 3339 date-time (e.g. 2024-01-02T03:04:05Z)")
    if not m:
        raise bad
    year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
    try:
        # no leap second 60: Go's time.Parse rejects it, so Go tools could not read the config
        datetime(year, month, day, hour, minute, sec)
    except ValueError:
        raise bad from None
    off = m.group(8)
    if off not in ("Z", "z") and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        raise bad


# --- descriptors ----------------------------------------------------------------------------


def _platform(v: Any, path: str, ctx: _Ctx) -> None:
    d = _object(v, path, ctx)
    for key in ("architecture", "os"):
        if key not in d:
            raise ctx.fail(path, f"missing required field '{key}'")
        _string(d[key], _join(path, key), ctx)
    _opt_string(d, "os.version", path, ctx)
    _opt_string(d, "variant", path, ctx)
    if "os.features" in d:
        _string_array(d["os.features"], _join(path, "os.features"), ctx)


def _descriptor(v: Any, path: str, ctx: _Ctx) -> None:
    d = _object(v, path, ctx)
    for key in ("mediaType", "size", "digest"):
        if key not in d:
            raise ctx.fail(path, f"missing required field '{key}'")
    _media_type(d["mediaType"], _join(path, "mediaType"), ctx)
    size = _integer(d["size"], _join(path, "size"), ctx, lo=0)
    dg = _digest(d["digest"], _join(path, "digest"), ctx)
    if "urls" in d:
        for i, u in enumerate(_array(d["urls"], _join(path, "urls"), ctx)):
            _uri(u, _join(_join(path, "urls"), i), ctx)
    if "annotations" in d:
        _string_map(d["annotations"], _join(path, "annotations"), ctx)
    if "artifactType" in d:
        _media_type(d["artifactType"], _join(path, "artifactType"), ctx)
    if "platform" in d:
        _platform(d["platform"], _join(path, "platform"), ctx)
    if "data" in d:
        p = _join(path, "data")
        s = _string(d["data"], p, ctx)
        try:
            # Go's base64.StdEncoding: padding required, CR/LF ignored.
            data = base64.b64decode(s.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ctx.fail(p, f"not valid standard base64 ({e})") from None
        alg, _, enc = dg.partition(":")
        if alg in _GO_DIGEST_ALGS:
            if len(data) != size:
                raise ctx.fail(p, f"embedded data is {len(data)} bytes but size says {size}")
            if hashlib.new(alg, data).hexdigest() != enc:
                raise ctx.fail(p, f"embedded data does not match digest {dg}")


def validate_descriptor(d: Mapping[str, Any] | bytes | str) -> None:
    """Validate a content descriptor (a parsed JSON object, or its JSON bytes)."""
    ctx = _Ctx("descriptor")
    doc = _load(d, ctx) if isinstance(d, bytes | bytearray | memoryview | str) else d
    if not isinstance(doc, Mapping):
        raise ctx.fail("", f"expected a JSON object, got {_jtype(doc)}")
    _descriptor(dict(doc), "", ctx)


# --- documents ------------------------------------------------------------------------------


def _schema_version(d: Mapping[str, Any], ctx: _Ctx) -> None:
    if "schemaVersion" not in d:
        raise ctx.fail("", "missing required field 'schemaVersion'")
    v = _integer(d["schemaVersion"], "schemaVersion", ctx)
    if v != 2:
        raise ctx.fail("schemaVersion", f"must be 2, got {v}")


def _doc_media_type(d: Mapping[str, Any], expected: str, ctx: _Ctx) -> None:
    if "mediaType" in d:
        got = _media_type(d["mediaType"], "mediaType", ctx)
        if got != expected:
            raise ctx.fail("mediaType", f"is {got!r} but the document is validated as {expected!r}")


def validate_manifest(raw: bytes, media_type: str = mt.OCI_MANIFEST) -> None:
    """Image manifest (OCI, or Docker schema2 checked by the same structural rules)."""
    base = mt.base(media_type)
    if base not in mt.MANIFEST_TYPES:
        raise InputError(f"validate_manifest: {media_type!r} is not an image manifest media type")
    ctx = _Ctx("Docker image manifest" if base == mt.DOCKER_MANIFEST else "image manifest")
    d = _load(raw, ctx)
    _schema_version(d, ctx)
    _doc_media_type(d, base, ctx)
    if base == mt.DOCKER_MANIFEST and "mediaType" not in d:
        raise ctx.fail("", "missing required field 'mediaType' (Docker schema2 requires it)")
    if "artifactType" in d:
        _media_type(d["artifactType"], "artifactType", ctx)
    for key in ("config", "layers"):
        if key not in d:
            raise ctx.fail("", f"missing required field '{key}'")
    _descriptor(d["config"], "config", ctx)
    layers = _array(d["layers"], "layers", ctx)
    # The OCI schema has minItems 1; Docker schema2 allows zero layers.
    if not layers and base == mt.OCI_MANIFEST:
        raise ctx.fail(
            "layers",
            "must contain at least one descriptor (use the empty descriptor "
            f"{mt.OCI_EMPTY} for artifacts without content)",
        )
    for i, layer in enumerate(layers):
        _descriptor(layer, _join("layers", i), ctx)
    if "subject" in d:
        _descriptor(d["subject"], "subject", ctx)
    if "annotations" in d:
        _string_map(d["annotations"], "annotations", ctx)


def validate_index(raw: bytes, media_type: str = mt.OCI_INDEX) -> None:
    """Image index (OCI, or Docker manifest list checked by the same structural rules)."""
    base = mt.base(media_type)
    if base not in mt.INDEX_TYPES:
        raise InputError(f"validate_index: {media_type!r} is not an image index media type")
    ctx = _Ctx("Docker manifest list" if base == mt.DOCKER_MANIFEST_LIST else "image index")
    d = _load(raw, ctx)
    _schema_version(d, ctx)
    _doc_media_type(d, base, ctx)
    if base == mt.DOCKER_MANIFEST_LIST and "mediaType" not in d:
        raise ctx.fail("", "missing required field 'mediaType' (Docker manifest lists require it)")
    if "artifactType" in d:
        _media_type(d["artifactType"], "artifactType", ctx)
    if "manifests" not in d:
        raise ctx.fail("", "missing required field 'manifests'")
    for i, m in enumerate(_array(d["manifests"], "manifests", ctx)):
        _descriptor(m, _join("manifests", i), ctx)
    if "subject" in d:
        _descriptor(d["subject"], "subject", ctx)
    if "annotations" in d:
        _string_map(d["annotations"], "annotations", ctx)


_CONFIG_STRINGS = ("User", "WorkingDir", "StopSignal")
_CONFIG_NULLABLE_ARRAYS = ("Entrypoint", "Cmd")


def _runtime_config(v: Any, ctx: _Ctx) -> None:
    c = _object(v, "config", ctx)
    for key in _CONFIG_STRINGS:
        _opt_string(c, key, "config", ctx)
    if "ExposedPorts" in c:
        _object_map(c["ExposedPorts"], "config.ExposedPorts", ctx)
    if "Env" in c:
        for i, e in enumerate(_string_array(c["Env"], "config.Env", ctx)):
            if not _ENV_RE.fullmatch(e):
                raise ctx.fail(f"config.Env[{i}]", f"{e!r} is not of the form NAME=value")
    for key in _CONFIG_NULLABLE_ARRAYS:
        if key in c and c[key] is not None:
            _string_array(c[key], f"config.{key}", ctx)
    if "Volumes" in c and c["Volumes"] is not None:
        _object_map(c["Volumes"], "config.Volumes", ctx)
    if "Labels" in c and c["Labels"] is not None:
        _string_map(c["Labels"], "config.Labels", ctx)
    if "ArgsEscaped" in c and not isinstance(c["ArgsEscaped"], bool):
        raise ctx.fail("config.ArgsEscaped", f"expected a boolean, got {_jtype(c['ArgsEscaped'])}")


def validate_config(raw: bytes, media_type: str = mt.OCI_CONFIG) -> None:
    """Image config (OCI, or Docker container image v1, which shares the checked fields)."""
    base = mt.base(media_type)
    if base not in mt.CONFIG_TYPES:
        raise InputError(f"validate_config: {media_type!r} is not an image config media type")
    ctx = _Ctx("image config")
    d = _load(raw, ctx)
    for key in ("architecture", "os", "rootfs"):
        if key not in d:
            raise ctx.fail("", f"missing required field '{key}'")
    for key in ("architecture", "os", "variant", "os.version", "author"):
        _opt_string(d, key, "", ctx)
    if "created" in d:
        _datetime(d["created"], "created", ctx)
    if "os.features" in d:
        _string_array(d["os.features"], "os.features", ctx)
    if "config" in d:
        _runtime_config(d["config"], ctx)
    rootfs = _object(d["rootfs"], "rootfs", ctx)
    for key in ("diff_ids", "type"):
        if key not in rootfs:
            raise ctx.fail("rootfs", f"missing required field '{key}'")
    if _string(rootfs["type"], "rootfs.type", ctx) != "layers":
        raise ctx.fail("rootfs.type", f'must be "layers", got {rootfs["type"]!r}')
    for i, dg in enumerate(_string_array(rootfs["diff_ids"], "rootfs.diff_ids", ctx)):
        _digest(dg, f"rootfs.diff_ids[{i}]", ctx)
    if "history" in d:
        for i, h in enumerate(_array(d["history"], "history", ctx)):
            p = f"history[{i}]"
            h = _object(h, p, ctx)
            if "created" in h:
                _datetime(h["created"], f"{p}.created", ctx)
            for key in ("author", "created_by", "comment"):
                _opt_string(h, key, p, ctx)
            if "empty_layer" in h and not isinstance(h["empty_layer"], bool):
                raise ctx.fail(
                    f"{p}.empty_layer", f"expected a boolean, got {_jtype(h['empty_layer'])}"
                )


def validate_layout_header(raw: bytes) -> None:
    """The ``oci-layout`` file of an OCI image layout."""
    ctx = _Ctx("oci-layout file")
    d = _load(raw, ctx)
    if "imageLayoutVersion" not in d:
        raise ctx.fail("", "missing required field 'imageLayoutVersion'")
    v = _string(d["imageLayoutVersion"], "imageLayoutVersion", ctx)
    if v != "1.0.0":
        raise ctx.fail("imageLayoutVersion", f'must be "1.0.0", got {v!r}')


def validate_document(media_type: str, raw: bytes) -> None:
    """Validate ``raw`` according to ``media_type``; InputError for unknown media types."""
    base = mt.base(media_type)
    if base in mt.MANIFEST_TYPES:
        validate_manifest(raw, base)
    elif base in mt.INDEX_TYPES:
        validate_index(raw, base)
    elif base in mt.CONFIG_TYPES:
        validate_config(raw, base)
    elif base == mt.OCI_DESCRIPTOR:
        validate_descriptor(raw)
    elif base == mt.OCI_LAYOUT_HEADER:
        validate_layout_header(raw)
    else:
        raise InputError(
            f"cannot validate media type {media_type!r}: no schema for it "
            "(manifests, indexes, configs, descriptors and oci-layout are supported)"
        )
