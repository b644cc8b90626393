"""SLSA provenance v1 statements for xarch builds (pure: no I/O, no clock, no environment).

One in-toto Statement v1 per platform image, ``predicateType`` ``https://slsa.dev/provenance/v1``.

Build type ``https://xarch.dev/build/v1``
-----------------------------------------
``buildDefinition``
  ``externalParameters`` (what the user asked for; everything a rebuild needs besides the
  context contents):

  - ``dockerfile``: the Dockerfile path as given (relative to the context, or as passed);
  - ``platform``: the target platform, containerd format ``os/arch[/variant]``;
  - ``target``: the target stage name, or absent for the last stage;
  - ``args``: the ``--build-arg`` values, keys sorted. Secrets never reach this function (they
    are not build args); as a second line of defence any arg whose *name* contains TOKEN,
    SECRET, PASSWORD, PASSWD, CREDENTIAL, PRIVATE or KEY (case-insensitive) keeps its name with
    the value ``<redacted>``, and a password in a URL value (``https://user:pw@host``) is
    replaced by ``<redacted>`` too.

  ``internalParameters``: ``{"xarch": {"version": …}}``, and in ``max`` mode ``steps``: the
  build steps in execution order, each ``{"name", "digest", "cached"}`` (the vertex name as
  shown in progress output, its content digest, whether it came from the cache).

  ``resolvedDependencies``: one ResourceDescriptor per base image, ``uri`` a docker package URL
  as BuildKit writes it (``pkg:docker/debian@bookworm?platform=linux%2Farm64``; official images
  lose ``docker.io/library/``, other registries stay in the namespace; a digest pinned in the
  reference becomes a ``digest`` qualifier) with the resolved ``digest``; then the Dockerfile as
  ``{"name": <path>, "digest": {...}, "annotations": {"xarch.dev/role": "dockerfile"}}``.

``runDetails``
  ``builder.id`` ``https://xarch.dev/builder@v<version>`` and ``builder.version``
  ``{"xarch": <version>}``; ``metadata`` ``invocationId``, ``startedOn``, ``finishedOn``
  (RFC 3339 UTC, whole seconds).

The output is deterministic: UTF-8, compact separators, keys sorted (in-toto consumers read
JSON, they do not hash a canonical form; sorting just makes equal inputs equal bytes).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from xarch.errors import InputError, UsageError
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform
from xarch.oci.reference import DEFAULT_REGISTRY, OFFICIAL_PREFIX, Reference

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://xarch.dev/build/v1"
BUILDER_ID = "https://xarch.dev/builder"
REDACTED = "<redacted>"

Mode = Literal["min", "max"]

# Substrings of build-arg names whose values are never recorded.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|KEY", re.IGNORECASE)
# scheme://user:password@ — the password part of URL userinfo.
_URL_PASSWORD = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)")


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def redact_args(build_args: Mapping[str, str]) -> dict[str, str]:
    """Build args as recorded in provenance: sorted, secret-looking values replaced."""
    out: dict[str, str] = {}
    for k in sorted(build_args):
        v = build_args[k]
        if not isinstance(k, str) or not isinstance(v, str):
            raise InputError(f"build arg {k!r}: name and value must be strings")
        out[k] = REDACTED if is_secret_name(k) else _URL_PASSWORD.sub(rf"\g<pre>{REDACTED}", v)
    return out


def docker_purl(ref: str, platform: Platform | None = None) -> str:
    """Package URL of an image reference, as BuildKit's ``purl.RefToPURL`` writes it."""
    r = Reference.parse(ref)
    name = r.repository
    if r.registry == DEFAULT_REGISTRY:
        if name.startswith(OFFICIAL_PREFIX) and "/" not in name[len(OFFICIAL_PREFIX) :]:
            name = name[len(OFFICIAL_PREFIX) :]
    else:
        name = f"{r.registry}/{name}"
    tag = r.tag if r.tag is not None else (None if r.digest is not None else "latest")
    ns, _, last = name.rpartition("/")
    path = "/".join(_q(seg) for seg in ns.split("/")) + "/" if ns else ""
    out = f"pkg:docker/{path}{_q(last)}"
    if tag is not None:
        out += "@" + _q(tag)
    qualifiers: list[tuple[str, str]] = []
    if r.digest is not None:
        qualifiers.append(("digest", str(r.digest)))
    if platform is not None:
        qualifiers.append(("platform", platform.normalize().format()))
    if qualifiers:
        out += "?" + "&".join(f"{k}={_q(v)}" for k, v in sorted(qualifiers))
    return out


def _q(s: str) -> str:
    # packageurl-go escapes like Go's url.PathEscape for segments and QueryEscape for
    # qualifier values; ':' stays (digests) and '/' is escaped (platform values).
    return urllib.parse.quote(s, safe=":")


def _digest_set(d: Digest | str) -> dict[str, str]:
    dg = Digest.parse(str(d))
    return {dg.algorithm: dg.hex}


def _timestamp(t: datetime, what: str) -> str:
    if not isinstance(t, datetime):
        raise UsageError(f"provenance {what} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise UsageError(f"provenance {what} must be timezone-aware (got a naive datetime)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _steps(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, s in enumerate(steps):
        name, digest, cached = s.get("name"), s.get("digest"), s.get("cached", False)
        if not isinstance(name, str) or not isinstance(cached, bool):
            raise InputError(f"provenance step {i}: 'name' must be a string, 'cached' a boolean")
        step: dict[str, Any] = {"name": name, "cached": cached}
        if digest is not None:
            step["digest"] = str(Digest.parse(str(digest)))
        out.append(step)
    return out


def provenance_predicate(
    *,
    platform: Platform,
    dockerfile_digest: Digest,
    dockerfile_path: str,
    base_images: Sequence[tuple[str, Digest]],
    build_args: Mapping[str, str],
    started: datetime,
    finished: datetime,
    xarch_version: str,
    mode: Mode = "min",
    steps: Sequence[Mapping[str, Any]] | None = None,
    invocation_id: str,
    target: str | None = None,
) -> dict[str, Any]:
    """The SLSA v1 predicate object (see the module docstring for every field)."""
    if mode not in ("min", "max"):
        raise UsageError(f"invalid provenance mode {mode!r}: expected 'min' or 'max'")
    plat = platform.normalize()
    external: dict[str, Any] = {
        "dockerfile": dockerfile_path,
        "platform": plat.format(),
        "args": redact_args(build_args),
    }
    if target:
        external["target"] = target
    internal: dict[str, Any] = {"xarch": {"version": xarch_version}}
    if mode == "max":
        internal["steps"] = _steps(steps or ())
    deps: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for ref, digest in base_images:
        uri = docker_purl(ref, plat)
        key = (uri, str(digest))
        if key not in seen:  # a base used by several stages is one dependency
            seen.add(key)
            deps.append({"uri": uri, "digest": _digest_set(digest)})
    deps.append(
        {
            "name": dockerfile_path,
            "digest": _digest_set(dockerfile_digest),
            "annotations": {"xarch.dev/role": "dockerfile"},
        }
    )
    start_s, finish_s = _timestamp(started, "start time"), _timestamp(finished, "finish time")
    if finished < started:
        raise UsageError(f"provenance finish time {finish_s} is before the start time {start_s}")
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": f"{BUILDER_ID}@v{xarch_version}",
                "version": {"xarch": xarch_version},
            },
            "metadata": {
                "invocationId": invocation_id,
                "startedOn": start_s,
                "finishedOn": finish_s,
            },
        },
    }


def statement(
    subject_name: str, subject_digest: Digest, predicate_type: str, predicate: Any
) -> bytes:
    """An in-toto Statement v1 about one subject, serialised deterministically."""
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": _digest_set(subject_digest)}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def provenance_statement(
    *,
    subject_name: str,
    subject_digest: Digest,
    platform: Platform,
    dockerfile_digest: Digest,
    dockerfile_path: str,
    base_images: Sequence[tuple[str, Digest]],
    build_args: Mapping[str, str],
    started: datetime,
    finished: datetime,
    xarch_version: str,
    mode: Mode = "min",
    steps: Sequence[Mapping[str, Any]] | None = None,
    invocation_id: str,
    target: str | None = None,
) -> bytes:
    """The provenance of one platform image (``subject_digest`` = its manifest digest)."""
    predicate = provenance_predicate(
        platform=platform,
        dockerfile_digest=dockerfile_digest,
        dockerfile_path=dockerfile_path,
        base_images=base_images,
        build_args=build_args,
        started=started,
        finished=finished,
        xarch_version=xarch_version,
        mode=mode,
        steps=steps,
        invocation_id=invocation_id,
        target=target,
    )
    return statement(subject_name, subject_digest, SLSA_PROVENANCE_V1, predicate)


def predicate_type_of(payload: bytes) -> str | None:
    """``predicateType`` of an in-toto statement, or None when ``payload`` is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not str(doc.get("_type", "")).startswith(
        "https://in-toto.io/Statement/"
    ):
        return None
    pt = doc.get("predicateType")
    return pt if isinstance(pt, str) and pt else None


__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "REDACTED",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "docker_purl",
    "is_secret_name",
    "predicate_type_of",
    "provenance_predicate",
    "provenance_statement",
    "redact_args",
    "statement",
]
