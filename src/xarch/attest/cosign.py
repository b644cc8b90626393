"""cosign signatures: signing, the tag-based signature manifest, and fail-closed verification.

Storage follows cosign's SIGNATURE_SPEC: the signatures of manifest ``sha256:<hex>`` live in an
OCI image manifest tagged ``sha256-<hex>.sig`` in the same repository, one layer per signature
(the payload blob, media type ``application/vnd.dev.cosign.simplesigning.v1+json``, base64
signature in the ``dev.cosignproject.cosign/signature`` annotation). The manifest and config are
laid out exactly as go-containerregistry writes them for cosign, so our bytes equal cosign's.

Nothing here does I/O of its own: callers hand in a ``SignatureStore`` bound to one repository
and already-resolved digests.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from xarch.attest.keys import PrivateKey, PublicKey, go_curve_name
from xarch.attest.payload import (
    CosignPayload,
    annotation_matches,
    build_payload,
    go_json,
    parse_payload,
)
from xarch.errors import InputError, NotFoundError, UsageError, VerificationError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest, canonical_json
from xarch.oci.reference import Reference

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
RFC3161_TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"

SIGNATURE_SUFFIX = "sig"
ATTESTATION_SUFFIX = "att"
SBOM_SUFFIX = "sbom"

# Go's zero time.Time as encoding/json writes it: cosign leaves timestamps unset by default
# (--record-creation-timestamp=false), which keeps re-signing reproducible.
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_LAYERS = 1000  # cosign refuses signature manifests with more layers

_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)


# --- tags -----------------------------------------------------------------------------------


def signature_tag(digest: Digest | str, suffix: str = SIGNATURE_SUFFIX) -> str:
    """cosign's tag for ``digest``: ``<alg>-<hex>.<suffix>``."""
    d = Digest.parse(digest)
    tag = f"{d.algorithm}-{d.hex}.{suffix}"
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"cannot derive a signature tag for {d} with suffix {suffix!r}: {tag!r} is not a "
            "valid tag (at most 128 characters of [A-Za-z0-9_.-])"
        )
    return tag


def attestation_tag(digest: Digest | str) -> str:
    return signature_tag(digest, ATTESTATION_SUFFIX)


def sbom_tag(digest: Digest | str) -> str:
    return signature_tag(digest, SBOM_SUFFIX)


def signature_reference(
    ref: Reference, digest: Digest | str, suffix: str = SIGNATURE_SUFFIX
) -> Reference:
    """Where the signatures of ``digest`` live: ``ref``'s repository at the signature tag."""
    return ref.with_tag(signature_tag(digest, suffix))


# --- raw signatures -------------------------------------------------------------------------


def _b64encode(b: bytes) -> str:
    return binascii.b2a_base64(b, newline=False).decode("ascii")


def _b64decode(s: str) -> bytes:
    """Go base64.StdEncoding: padded, strict alphabet."""
    return binascii.a2b_base64(s.encode("ascii"), strict_mode=True)


def _ecdsa_hash(curve: str) -> hashes.HashAlgorithm | None:
    # sigstore's default algorithm for each key (PublicKeyDetails): the hash follows the curve.
    return {"P-256": hashes.SHA256(), "P-384": hashes.SHA384(), "P-521": hashes.SHA512()}.get(curve)


def _unsupported(key: object) -> UsageError:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return UsageError(
            "Ed25519 keys are not supported for image signatures yet "
            "(cosign signs with Ed25519ph, which is not available here)",
            hint="use an ECDSA P-256 key: 'xarch key generate'",
        )
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return UsageError(
            f"ECDSA curve {go_curve_name(key) or key.curve.name} is not supported for signatures",
            hint="use P-256, P-384 or P-521",
        )
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return UsageError(
            f"RSA key size {key.key_size} is not supported for signatures",
            hint="use 2048, 3072 or 4096 bits",
        )
    return UsageError(f"unsupported key type {type(key).__name__}")


def sign_payload(private_key: PrivateKey, payload: bytes) -> str:
    """Sign ``payload`` as cosign does; return the standard-base64 signature.

    ECDSA signs the curve's default hash (P-256: SHA-256) with an ASN.1 DER signature; RSA
    uses PKCS #1 v1.5 with SHA-256."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        h = _ecdsa_hash(go_curve_name(private_key) or "")
        if h is None:
            raise _unsupported(private_key)
        return _b64encode(private_key.sign(payload, ec.ECDSA(h)))
    if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size in (2048, 3072, 4096):
        return _b64encode(private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256()))
    raise _unsupported(private_key)


def verify_signature(public_key: PublicKey, payload: bytes, b64sig: str) -> None:
    """Raise VerificationError unless ``b64sig`` is a valid signature of ``payload``.

    ECDSA accepts ASN.1 DER and, like sigstore's verifier, raw IEEE P1363 ``r || s``."""
    try:
        sig = _b64decode(b64sig)
    except (binascii.Error, UnicodeEncodeError):
        raise VerificationError("signature is not valid base64") from None
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            h = _ecdsa_hash(go_curve_name(public_key) or "")
            if h is None:
                raise _unsupported(public_key)
            try:
                public_key.verify(sig, payload, ec.ECDSA(h))
            except InvalidSignature:
                n = (public_key.curve.key_size + 7) // 8
                if len(sig) != 2 * n:
                    raise
                r, s = int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big")
                public_key.verify(encode_dss_signature(r, s), payload, ec.ECDSA(h))
            return
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size in (2048, 3072, 4096):
            public_key.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
            return
    except InvalidSignature:
        raise VerificationError("signature does not verify with the given public key") from None
    raise _unsupported(public_key)


# --- the signature manifest -----------------------------------------------------------------


def _ggcr_descriptor(d: Descriptor) -> dict[str, Any]:
    # go-containerregistry v1.Descriptor field order (mediaType, size, digest, ...), which is
    # what cosign writes; xarch's own Descriptor.to_json follows image-spec's order instead.
    out: dict[str, Any] = {"mediaType": d.media_type, "size": d.size, "digest": str(d.digest)}
    if d.data is not None:
        out["data"] = _b64encode(d.data)
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.platform is not None:
        out["platform"] = d.platform.to_json()
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    return out


def signature_layer(
    payload: bytes, b64sig: str, annotations: Mapping[str, str] | None = None
) -> Descriptor:
    """The manifest layer for one signature (extra annotations: certificate, bundle, ...)."""
    ann = dict(annotations or {})
    ann[SIGNATURE_ANNOTATION] = b64sig
    return Descriptor.of(SIMPLE_SIGNING_MEDIA_TYPE, payload, annotations=ann)


def _fresh_config(layers: Sequence[Descriptor], created: str) -> dict[str, Any]:
    # go-containerregistry ConfigFile of empty.Image after mutate.Append: every signature
    # layer is its own (uncompressed) diff and gets an empty history entry.
    return {
        "architecture": "",
        "created": created,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
        "config": {},
    }


def _appended_config(
    base_config: bytes | None, base_layers: int, new: Sequence[Descriptor], created: str | None
) -> dict[str, Any] | None:
    """The base config with ``new`` appended (what mutate.Append does), or None if the base
    config is not one we can extend faithfully."""
    if base_config is None:
        return None
    try:
        doc = json.loads(base_config)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    rootfs = doc.get("rootfs")
    history = doc.get("history", [])
    if (
        not isinstance(rootfs, dict)
        or not isinstance(rootfs.get("diff_ids"), list)
        or len(rootfs["diff_ids"]) != base_layers
        or not isinstance(history, list)
    ):
        return None
    rootfs["diff_ids"] = [*rootfs["diff_ids"], *(str(x.digest) for x in new)]
    doc["history"] = [*history, *({"created": ZERO_TIME} for _ in new)]
    if created is not None:
        doc["created"] = created
    return doc


@dataclass(frozen=True)
class SignatureManifest:
    manifest: Manifest
    config: bytes  # the config blob the manifest references

    @property
    def config_descriptor(self) -> Descriptor:
        return self.manifest.config


def build_signature_manifest(
    layers: Sequence[Descriptor],
    *,
    base: Manifest | None = None,
    base_config: bytes | None = None,
    created: str | None = None,
) -> SignatureManifest:
    """A cosign signature manifest: ``base``'s layers (if any) followed by ``layers``.

    ``created`` (RFC 3339) records a creation time like --record-creation-timestamp; by
    default the config keeps the base's time, or Go's zero time for a new manifest."""
    base_layers = base.layers if base is not None else ()
    all_layers = (*base_layers, *layers)
    if len(all_layers) > MAX_LAYERS:
        raise UsageError(
            f"signature manifest would have {len(all_layers)} layers, more than cosign's "
            f"limit of {MAX_LAYERS}",
            hint="clean up old signatures (cosign clean) before signing again",
        )
    cfg = (
        _appended_config(base_config, len(base_layers), layers, created)
        if base is not None
        else None
    )
    if cfg is None:
        cfg = _fresh_config(all_layers, created or ZERO_TIME)
    # Go json.Marshal of the config structs: compact, HTML-escaped, as go_json writes strings;
    # key order is the struct order, which _fresh_config/_appended_config preserve.
    config_raw = _struct_json(cfg)
    manifest_type = base.media_type if base is not None else mt.OCI_MANIFEST
    config_type = base.config.media_type if base is not None else mt.OCI_CONFIG
    config_desc = Descriptor.of(config_type, config_raw)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": _ggcr_descriptor(config_desc),
        "layers": [_ggcr_descriptor(x) for x in all_layers],
    }
    if base is not None and base.annotations:
        doc["annotations"] = dict(sorted(base.annotations.items()))
    if base is not None and base.subject is not None:
        doc["subject"] = _ggcr_descriptor(base.subject)
    raw = canonical_json(doc)
    return SignatureManifest(Manifest.parse(raw, manifest_type), config_raw)


def _struct_json(v: Any) -> bytes:
    """Compact JSON keeping dict order (Go structs), with Go's string escaping."""
    if isinstance(v, dict):
        return (
            b"{" + b",".join(go_json(str(k)) + b":" + _struct_json(x) for k, x in v.items()) + b"}"
        )
    if isinstance(v, list):
        return b"[" + b",".join(_struct_json(x) for x in v) + b"]"
    return go_json(v)


# --- storage --------------------------------------------------------------------------------


class SignatureStore(Protocol):
    """One repository's manifests (by tag) and blobs. ``get_blob`` may return anything: the
    caller checks digests before trusting a byte."""

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None: ...

    def get_blob(self, desc: Descriptor) -> bytes: ...

    def put_blob(self, desc: Descriptor, data: bytes) -> None: ...

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> None: ...


def _read_signature_manifest(raw: bytes, media_type: str, tag: str) -> Manifest:
    if not raw:
        raise InputError(f"signature manifest at tag {tag} is empty")
    try:
        return Manifest.parse(raw, media_type)
    except InputError as e:
        raise InputError(
            f"signature manifest at tag {tag} is not an image manifest: {e.message}",
            hint="remove or fix that tag",
        ) from None


def _trusted_blob(store: SignatureStore, desc: Descriptor) -> bytes | None:
    """The blob if it exists and matches its descriptor exactly, else None."""
    try:
        data = store.get_blob(desc)
    except NotFoundError:
        return None
    if len(data) != desc.size or not desc.digest.verify(data):
        return None
    return data


def _is_duplicate(base: Manifest, new: Descriptor, payload: bytes, public_key: PublicKey) -> bool:
    """cosign's DupeDetector: an existing layer with the same payload, media type and extra
    annotations whose signature verifies with our key makes signing again a no-op."""
    for layer in base.layers:
        if layer.digest != new.digest or layer.media_type != new.media_type:
            continue
        if any(
            layer.annotations.get(k) != v
            for k, v in new.annotations.items()
            if k != SIGNATURE_ANNOTATION
        ):
            continue
        sig = layer.annotations.get(SIGNATURE_ANNOTATION)
        if not sig:
            continue
        try:
            verify_signature(public_key, payload, sig)
        except VerificationError:
            continue
        return True
    return False


def sign_image(
    store: SignatureStore,
    subject_digest: Digest | str,
    docker_reference: str,
    private_key: PrivateKey,
    annotations: Mapping[str, Any] | None = None,
    *,
    created: str | None = None,
) -> Descriptor:
    """Sign the manifest ``subject_digest`` and store the signature as cosign does, appending
    to any existing signature manifest. Returns the signature manifest's descriptor (unchanged
    when an equivalent signature by the same key already exists).

    Empty ``annotations`` are written as ``"optional":null``, as cosign's CLI does."""
    subject = Digest.parse(subject_digest)
    payload = build_payload(subject, docker_reference, annotations or None)
    layer = signature_layer(payload, sign_payload(private_key, payload))
    tag = signature_tag(subject)
    base: Manifest | None = None
    base_config: bytes | None = None
    existing = store.get_manifest(tag)
    if existing is not None:
        base = _read_signature_manifest(existing[0], existing[1], tag)
        if _is_duplicate(base, layer, payload, private_key.public_key()):
            return base.descriptor
        base_config = _trusted_blob(store, base.config)
    sm = build_signature_manifest([layer], base=base, base_config=base_config, created=created)
    store.put_blob(layer, payload)
    store.put_blob(sm.config_descriptor, sm.config)
    store.put_manifest(tag, sm.manifest.raw, sm.manifest.media_type)
    return sm.manifest.descriptor


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSignature:
    subject: Digest
    payload: CosignPayload
    payload_bytes: bytes
    signature: str  # standard base64, as stored
    layer: Descriptor


def _repository(s: str) -> str | None:
    try:
        return Reference.parse(s).context()
    except InputError:
        return None


def verify_image(
    store: SignatureStore,
    subject_digest: Digest | str,
    public_key: PublicKey,
    *,
    docker_reference: str | None = None,
    required_annotations: Mapping[str, Any] | None = None,
) -> list[VerifiedSignature]:
    """Every signature of ``subject_digest`` that verifies with ``public_key`` (cosign verify
    with a key and no transparency log). Fails closed: if none does, raise one VerificationError
    naming the most specific problem found.

    ``docker_reference``, when given, must name the same repository as the payload's claimed
    identity (cosign ignores the identity; callers opt in). ``required_annotations`` must all be
    present in the payload's ``optional`` section with equal values."""
    subject = Digest.parse(subject_digest)
    tag = signature_tag(subject)
    existing = store.get_manifest(tag)
    if existing is None:
        raise VerificationError(
            f"no signatures found for {subject}: nothing at tag {tag}",
            hint="sign it first ('xarch sign --key cosign.key IMAGE')",
        )
    try:
        manifest = _read_signature_manifest(existing[0], existing[1], tag)
    except InputError as e:
        raise VerificationError(e.message) from None
    if not manifest.layers:
        raise VerificationError(f"no signatures found for {subject}: {tag} has no layers")
    want_repo = _repository(docker_reference) if docker_reference is not None else None
    if docker_reference is not None and want_repo is None:
        raise UsageError(
            f"invalid image reference {docker_reference!r} to check signatures against"
        )

    verified: list[VerifiedSignature] = []
    # (stage, message): the failure that got furthest through the checks is the one to report.
    best: tuple[int, str] | None = None
    sig_failures = 0

    def fail(stage: int, msg: str) -> None:
        nonlocal best
        if best is None or stage > best[0]:
            best = (stage, msg)

    for layer in manifest.layers:
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
            fail(
                0,
                f"layer {layer.digest} of {tag} is not a simple-signing payload ({layer.media_type})",
            )
            continue
        b64sig = layer.annotations.get(SIGNATURE_ANNOTATION)
        if not b64sig:
            fail(0, f"layer {layer.digest} of {tag} has no {SIGNATURE_ANNOTATION} annotation")
            continue
        blob = _trusted_blob(store, layer)
        if blob is None:
            fail(
                1,
                f"signature payload {layer.digest} of {tag} is missing or does not match its "
                "digest (tampered or corrupted)",
            )
            continue
        try:
            verify_signature(public_key, blob, b64sig)
        except VerificationError:
            sig_failures += 1
            fail(2, "")  # worded below, once the count is known
            continue
        try:
            payload = parse_payload(blob)
        except InputError as e:
            fail(3, f"signed payload {layer.digest} of {tag} is invalid: {e.message}")
            continue
        if payload.digest != subject:
            fail(4, f"signature is for {payload.digest} not {subject}")
            continue
        if want_repo is not None and _repository(payload.docker_reference) != want_repo:
            fail(
                5,
                f"signature for {subject} claims {payload.docker_reference}, "
                f"not {docker_reference}",
            )
            continue
        missing = [
            (k, v)
            for k, v in (required_annotations or {}).items()
            if not annotation_matches(payload.annotations, k, v)
        ]
        if missing:
            k, v = missing[0]
            have = (payload.annotations or {}).get(k)
            shown = v if isinstance(v, str) else go_json(v).decode()
            fail(
                6,
                f"signature for {subject} does not carry annotation {k}={shown}"
                + ("" if have is None else f" (it has {k}={go_json(have).decode()})"),
            )
            continue
        verified.append(VerifiedSignature(subject, payload, blob, b64sig, layer))

    if verified:
        return verified
    assert best is not None
    stage, msg = best
    if stage == 2:
        msg = (
            f"no signature of {subject} verifies with the given public key "
            f"({sig_failures} of {len(manifest.layers)} in {tag} checked; wrong key or "
            "tampered payload)"
        )
    raise VerificationError(msg)
