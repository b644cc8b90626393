"""cosign simple-signing payloads, byte-identical to sigstore's Go ``json.Marshal``.

The payload is what gets signed, so its bytes matter: a verifier recomputes nothing, it only
checks the signature over these exact bytes and then reads the claimed manifest digest back.
Layout (sigstore ``payload.SimpleContainerImage``): ``critical`` (identity, image, type) then
``optional`` (a Go map: keys sorted, ``null`` when absent), compact, no trailing newline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xarch.errors import InputError, UsageError
from xarch.oci.digest import Digest
from xarch.oci.reference import DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY, Reference

COSIGN_SIGNATURE_TYPE = "cosign container image signature"


class PayloadError(InputError):
    """A signature payload that is not a well-formed cosign simple-signing document."""


# --- Go encoding/json -----------------------------------------------------------------------

_HEX = "0123456789abcdef"
# Go escapes these for HTML safety (escapeHTML is on for json.Marshal), plus the JS separators.
_SPECIAL = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",  # Go >= 1.22 (cosign releases are built with it)
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _SPECIAL.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append("\\u00" + _HEX[ord(ch) >> 4] + _HEX[ord(ch) & 0xF])
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")  # Go replaces invalid UTF-8 (a lone surrogate here)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_float(f: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json chooses it."""
    if math.isnan(f) or math.isinf(f):
        raise InputError(f"json: unsupported value: {f!r} (NaN and infinities are not JSON)")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = repr(f)  # shortest digits, exponent form with >= 2 exponent digits: Go's 'e' too
        if "e" not in s:  # pragma: no cover - repr always uses exponent form in this range
            s = f"{f:e}"
        # Go json: "e-07" -> "e-7" (positive exponents keep their two digits)
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
        return s
    return format(Decimal(repr(f)).normalize(), "f")


def go_json(value: Any) -> bytes:
    """Go ``json.Marshal`` of a decoded-JSON-like value (map[string]interface{} semantics)."""
    parts: list[str] = []
    _enc(value, parts, 0)
    return "".join(parts).encode("utf-8")


def _enc(v: Any, out: list[str], depth: int) -> None:
    if depth > 1000:
        raise InputError("json: value nested too deeply")
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_go_float(v))
    elif isinstance(v, str):
        out.append(_go_string(v))
    elif isinstance(v, Mapping):
        for k in v:
            if not isinstance(k, str):
                raise InputError(f"json: unsupported map key {k!r} (keys must be strings)")
        out.append("{")
        for i, k in enumerate(sorted(v)):  # Go sorts map keys (UTF-8 byte order = code points)
            if i:
                out.append(",")
            out.append(_go_string(k))
            out.append(":")
            _enc(v[k], out, depth + 1)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _enc(x, out, depth + 1)
        out.append("]")
    else:
        raise InputError(f"json: unsupported type {type(v).__name__}")


def _go_quote(s: str) -> str:
    """Close to Go's %q for error texts (the payload's own strings, quoted)."""
    return json.dumps(s, ensure_ascii=False)


# --- payload --------------------------------------------------------------------------------


def docker_reference(ref: Reference) -> str:
    """The ``docker-reference`` cosign writes for ``ref``: go-containerregistry's
    ``Repository.Name()``, which spells Docker Hub as ``index.docker.io``."""
    registry = LEGACY_DEFAULT_REGISTRY if ref.registry == DEFAULT_REGISTRY else ref.registry
    return f"{registry}/{ref.repository}"


@dataclass(frozen=True)
class CosignPayload:
    docker_reference: str
    digest: Digest
    annotations: Mapping[str, Any] | None = None

    def to_json(self) -> bytes:
        """sigstore ``payload.Cosign.MarshalJSON`` bytes."""
        doc = (
            '{"critical":{"identity":{"docker-reference":'
            + _go_string(self.docker_reference)
            + '},"image":{"docker-manifest-digest":'
            + _go_string(str(self.digest))
            + '},"type":'
            + _go_string(COSIGN_SIGNATURE_TYPE)
            + '},"optional":'
        )
        return doc.encode("utf-8") + go_json(self.annotations) + b"}"


def build_payload(
    digest: Digest | str,
    docker_reference: str,
    annotations: Mapping[str, Any] | None = None,
) -> bytes:
    """Simple-signing payload for the manifest ``digest`` claimed as ``docker_reference``
    (a repository, or with ``:tag`` when signing a claimed identity)."""
    d = Digest.parse(digest)
    try:
        # Verifiers parse "<reference>@<digest>"; never sign a payload nobody could read back.
        Reference.parse(f"{docker_reference}@{d}")
    except InputError as e:
        raise UsageError(
            f"invalid docker reference {docker_reference!r} for a signature payload: {e.message}"
        ) from None
    return CosignPayload(docker_reference, d, annotations).to_json()


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Obj:
    return _Obj(pairs)


class _Obj(dict[str, Any]):
    """A decoded JSON object that remembers its key/value pairs (for Go's key matching)."""

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self.pairs = list(pairs)
        super().__init__(self.pairs)


def _field(obj: _Obj, name: str, where: str) -> Any:
    """Go encoding/json field lookup: exact or case-insensitive key. Two spellings of the same
    field would make the payload mean different things to different parsers: refuse them."""
    hits = [v for k, v in obj.pairs if k == name or k.casefold() == name.casefold()]
    if len(hits) > 1:
        raise PayloadError(f"invalid signature payload: duplicate key {name!r} in {where}")
    return hits[0] if hits else None


def _struct(v: Any, where: str) -> _Obj:
    if v is None:
        return _Obj([])  # Go: null leaves a struct at its zero value
    if not isinstance(v, _Obj):
        raise PayloadError(f"invalid signature payload: {where} must be a JSON object")
    return v


def _string(v: Any, where: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise PayloadError(f"invalid signature payload: {where} must be a string")
    return v


def _plain(v: Any) -> Any:
    if isinstance(v, _Obj):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _parse_int(s: str) -> int | float:
    # Go decodes every JSON number as float64, so "-0" stays a negative zero.
    return -0.0 if s == "-0" else int(s)


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"invalid signature payload: {name} is not JSON")


def parse_payload(raw: bytes) -> CosignPayload:
    """sigstore ``payload.Cosign.UnmarshalJSON``, strictly: the type must be cosign's and the
    reference and digest must form a valid ``repo@digest``."""
    try:
        doc = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_pairs_hook,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except UnicodeDecodeError:
        raise PayloadError("invalid signature payload: not UTF-8") from None
    except json.JSONDecodeError as e:
        raise PayloadError(f"invalid signature payload: malformed JSON: {e.msg}") from None
    except RecursionError:
        raise PayloadError("invalid signature payload: JSON nested too deeply") from None
    if not isinstance(doc, _Obj):
        raise PayloadError("invalid signature payload: expected a JSON object")
    critical = _struct(_field(doc, "critical", "the payload"), "'critical'")
    identity = _struct(_field(critical, "identity", "'critical'"), "'critical.identity'")
    image = _struct(_field(critical, "image", "'critical'"), "'critical.image'")
    typ = _string(_field(critical, "type", "'critical'"), "'critical.type'")
    ref = _string(
        _field(identity, "docker-reference", "'critical.identity'"),
        "'critical.identity.docker-reference'",
    )
    dg = _string(
        _field(image, "docker-manifest-digest", "'critical.image'"),
        "'critical.image.docker-manifest-digest'",
    )
    optional = _field(doc, "optional", "the payload")
    if optional is not None and not isinstance(optional, _Obj):
        raise PayloadError("invalid signature payload: 'optional' must be a JSON object or null")
    if typ != COSIGN_SIGNATURE_TYPE:
        raise PayloadError(f"Cosign signature payload was of an unknown type: {_go_quote(typ)}")
    digest_str = f"{ref}@{dg}"
    try:
        Reference.parse(digest_str)
        digest = Digest.parse(dg)
    except InputError as e:
        raise PayloadError(
            f"could not parse image digest string {_go_quote(digest_str)}: {e.message}"
        ) from None
    return CosignPayload(ref, digest, None if optional is None else _plain(optional))


def parse_annotation_flags(flags: Sequence[str]) -> dict[str, str] | None:
    """cosign ``-a key=value`` flags to the annotations map (None when there are none, so the
    payload carries ``"optional":null`` as cosign's does)."""
    out: dict[str, str] = {}
    for a in flags:
        kv = a.split("=")
        if len(kv) != 2:
            raise UsageError(
                f"unable to parse annotation: {a}", hint="expected exactly one '=': key=value"
            )
        out[kv[0]] = kv[1]
    return out or None


def annotation_matches(optional: Mapping[str, Any] | None, key: str, want: Any) -> bool:
    """cosign's ``correctAnnotations`` for one key: present and equal as Go values (a string
    never equals a number; compared through their JSON encodings to keep ``True != 1``)."""
    if optional is None or key not in optional:
        return False
    try:
        return go_json(optional[key]) == go_json(want)
    except InputError:
        return False
