"""cosign signatures: tags, raw signatures, the signature manifest, sign and fail-closed verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attest._support import FIXTURES_JSON, MemoryStore, fixture_cases, fixture_section, read_fixture
from helpers import vectors
from xarch.attest import keys as K
from xarch.attest.cosign import (
    MAX_LAYERS,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    ZERO_TIME,
    attestation_tag,
    build_signature_manifest,
    sbom_tag,
    sign_image,
    sign_payload,
    signature_layer,
    signature_reference,
    signature_tag,
    verify_image,
    verify_signature,
)
from xarch.attest.payload import COSIGN_SIGNATURE_TYPE, build_payload, docker_reference, go_json
from xarch.errors import InputError, UsageError, VerificationError
from xarch.oci import Descriptor, Digest, Manifest, Reference, mediatype

TAGS = [r for r in fixture_cases("tag_naming") if r["ref"] != "(any)"]
DISTROLESS = Digest("sha256:be5d77c62dbe7fedfb0a4e5ec2f91078080800ab1f18358e5f31fcc8faa023c4")
A = Digest.from_bytes(b"manifest A")
B = Digest.from_bytes(b"manifest B")
REPO = "registry.example/team/app"


@pytest.fixture(scope="module")
def key1() -> K.PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def key2() -> K.PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    yield MemoryStore()


# --- tags -----------------------------------------------------------------------------------


@vectors.parametrize(
    FIXTURES_JSON, "row", TAGS, ids=lambda r: f"{r['fn']}-{r.get('suffix', '')}"
)
def test_tag_naming_golden(row: dict[str, str]) -> None:
    fn = row["fn"]
    ref = Reference.parse(row["ref"])
    if fn == "SignatureTag":
        got = signature_reference(ref, DISTROLESS, row.get("suffix", "sig"))
    elif fn == "AttestationTag":
        got = ref.with_tag(attestation_tag(DISTROLESS))
    else:
        assert fn == "SBOMTag"
        got = ref.with_tag(sbom_tag(DISTROLESS))
    assert str(got) == row["want"]


def test_signature_tag_plain() -> None:
    assert signature_tag(DISTROLESS) == f"sha256-{DISTROLESS.hex}.sig"
    assert signature_tag(str(DISTROLESS), "att").endswith(".att")


def test_signature_tag_too_long_is_refused() -> None:
    # sha512 + ".sig" exceeds the 128-character tag limit: no silent truncation.
    with pytest.raises(UsageError, match="not a valid tag"):
        signature_tag(Digest.from_bytes(b"x", "sha512"))
    with pytest.raises(UsageError):
        signature_tag(A, "bad/suffix")


# --- raw signatures -------------------------------------------------------------------------


def _triple() -> dict[str, str]:
    # read in the test, not at import: fixture_section skips (or fails in CI) without vectors
    triple: dict[str, str] = fixture_section("ecdsa_triple")
    return triple


def _triple_keys() -> tuple[Any, K.PublicKey]:
    triple = _triple()
    priv = serialization.load_pem_private_key(read_fixture(triple["private_key"]), None)
    pub = K.load_public_key(read_fixture(triple["public_key"]))
    return priv, pub


@pytest.mark.parametrize("field", ["signature_b64_asn1_der", "signature_b64_ieee_p1363"])
def test_ecdsa_triple_verifies(field: str) -> None:
    _, pub = _triple_keys()
    triple = _triple()
    msg = triple["message_utf8"].encode()
    verify_signature(pub, msg, triple[field])
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(pub, msg + b"!", triple[field])


def test_sign_payload_is_ecdsa_p256_sha256_der() -> None:
    priv, pub = _triple_keys()
    sig = sign_payload(priv, b"payload")
    der = base64.b64decode(sig, validate=True)
    assert der[0] == 0x30  # ASN.1 SEQUENCE, not raw r||s
    priv.public_key().verify(der, b"payload", ec.ECDSA(hashes.SHA256()))  # independent check
    verify_signature(pub, b"payload", sig)


@pytest.mark.parametrize("bad", ["!!notbase64", "YWJj", "", "MEQCIA=="])
def test_verify_signature_rejects_garbage(bad: str) -> None:
    _, pub = _triple_keys()
    with pytest.raises(VerificationError):
        verify_signature(pub, b"sign me", bad)


@pytest.mark.parametrize("name", ["validecp384.key", "validecp521.key", "validrsa.key"])
def test_other_key_kinds_sign_and_verify(name: str) -> None:
    pair = K.import_key_pair(read_fixture(f"import-key-pair/{name}"), b"", params=K.LEGACY)
    key = K.load_private_key(pair.private_pem, b"")
    sig = sign_payload(key, b"data")
    verify_signature(K.load_public_key(pair.public_pem), b"data", sig)


def test_ed25519_is_refused_clearly() -> None:
    pair = K.import_key_pair(read_fixture("import-key-pair/ed25519.key"), b"", params=K.LEGACY)
    key = K.load_private_key(pair.private_pem, b"")
    with pytest.raises(UsageError, match="Ed25519ph"):
        sign_payload(key, b"data")


# --- manifest layout ------------------------------------------------------------------------

# A signature manifest cosign v1.13.1 pushed (public debug log): our builder reproduces it.
REAL_SIG = "MEYCIQCPH7NJAIfrB6BZN91dV0o7l/i11muXrvrAh100jDMMhAIhAPsLH0oXb2OPITXRpWBMUd3vHtz5Ks5pql2Hr6t/IJXw"
REAL_LAYER = "sha256:b671489ededd1a180bd87235bba00fd83354f9c7d13b71d9f8b66a8e52965ebc"
REAL_CREATED = "2023-02-17T09:25:33.91047962-08:00"
REAL_CONFIG_DIGEST = "sha256:85ad8e17d3d7c00664855c638832bd99f32d42542c2d587851410a45a7f60b95"
REAL_MANIFEST = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'
    '{"mediaType":"application/vnd.oci.image.config.v1+json","size":247,"digest":"'
    + REAL_CONFIG_DIGEST
    + '"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":252,'
    '"digest":"'
    + REAL_LAYER
    + '","annotations":{"dev.cosignproject.cosign/signature":"'
    + REAL_SIG
    + '"}}]}'
)


def test_manifest_matches_what_cosign_pushed() -> None:
    layer = Descriptor(
        SIMPLE_SIGNING_MEDIA_TYPE,
        Digest(REAL_LAYER),
        252,
        annotations={SIGNATURE_ANNOTATION: REAL_SIG},
    )
    sm = build_signature_manifest([layer], created=REAL_CREATED)
    assert Digest.from_bytes(sm.config) == REAL_CONFIG_DIGEST
    assert sm.manifest.raw == REAL_MANIFEST.encode()
    assert sm.manifest.media_type == mediatype.OCI_MANIFEST


def test_default_config_is_cosigns_zero_time_config() -> None:
    payload = build_payload(A, REPO)
    layer = signature_layer(payload, "c2ln")
    sm = build_signature_manifest([layer])
    assert (
        sm.config
        == (
            '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],'
            '"os":"","rootfs":{"type":"layers","diff_ids":["'
            + str(layer.digest)
            + '"]},"config":{}}'
        ).encode()
    )
    assert sm.manifest.config.media_type == mediatype.OCI_CONFIG


def test_layer_limit() -> None:
    layers = [signature_layer(str(i).encode(), "c2ln") for i in range(MAX_LAYERS)]
    base = build_signature_manifest(layers).manifest
    with pytest.raises(UsageError, match="limit"):
        build_signature_manifest([signature_layer(b"one more", "c2ln")], base=base)


# --- sign -----------------------------------------------------------------------------------


def _sig_manifest(store: MemoryStore, digest: Digest = A) -> Manifest:
    raw, mt = store.manifests[signature_tag(digest)]
    return Manifest.parse(raw, mt)


def test_sign_writes_cosign_layout(store: MemoryStore, key1: K.PrivateKey) -> None:
    desc = sign_image(store, A, REPO, key1)
    raw, mt = store.manifests[signature_tag(A)]
    assert mt == mediatype.OCI_MANIFEST
    assert desc == Descriptor(mt, Digest.from_bytes(raw), len(raw))
    m = Manifest.parse(raw, mt)
    (layer,) = m.layers
    assert layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE
    assert set(layer.annotations) == {SIGNATURE_ANNOTATION}
    payload = store.blobs[layer.digest]
    assert payload == build_payload(A, REPO)  # "optional":null, as cosign without -a
    assert json.loads(payload)["critical"]["type"] == COSIGN_SIGNATURE_TYPE
    verify_signature(key1.public_key(), payload, layer.annotations[SIGNATURE_ANNOTATION])
    assert Digest.from_bytes(store.blobs[m.config.digest]) == m.config.digest
    assert json.loads(store.blobs[m.config.digest])["created"] == ZERO_TIME
    assert raw.startswith(
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":'
    )


def test_sign_with_annotations(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {"env": "prod", "build": "42"})
    (layer,) = _sig_manifest(store).layers
    assert store.blobs[layer.digest].endswith(b'"optional":{"build":"42","env":"prod"}}')


def test_sign_empty_annotations_means_null(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {})
    (layer,) = _sig_manifest(store).layers
    assert store.blobs[layer.digest].endswith(b'"optional":null}')


def test_sign_appends_and_keeps_previous_signatures(
    store: MemoryStore, key1: K.PrivateKey, key2: K.PrivateKey
) -> None:
    sign_image(store, A, REPO, key1)
    first = _sig_manifest(store)
    sign_image(store, A, REPO, key2, created="2024-01-02T03:04:05Z")
    second = _sig_manifest(store)
    assert second.layers[0] == first.layers[0]
    assert len(second.layers) == 2
    cfg = json.loads(store.blobs[second.config.digest])
    assert cfg["rootfs"]["diff_ids"] == [str(x.digest) for x in second.layers]
    assert cfg["history"] == [{"created": ZERO_TIME}] * 2
    assert cfg["created"] == "2024-01-02T03:04:05Z"
    assert len(verify_image(store, A, key1.public_key())) == 1
    assert len(verify_image(store, A, key2.public_key())) == 1


def test_sign_again_same_key_is_deduplicated(store: MemoryStore, key1: K.PrivateKey) -> None:
    d1 = sign_image(store, A, REPO, key1, {"k": "v"})
    raw1 = store.manifests[signature_tag(A)][0]
    d2 = sign_image(store, A, REPO, key1, {"k": "v"})
    assert d1 == d2 and store.manifests[signature_tag(A)][0] == raw1 and store.puts == 1
    sign_image(store, A, REPO, key1, {"k": "other"})  # a different payload is a new signature
    assert len(_sig_manifest(store).layers) == 2


def test_sign_does_not_trust_a_tampered_base_config(
    store: MemoryStore, key1: K.PrivateKey, key2: K.PrivateKey
) -> None:
    sign_image(store, A, REPO, key1)
    cfg_digest = _sig_manifest(store).config.digest
    store.blobs[cfg_digest] = b'{"evil":true}'
    sign_image(store, A, REPO, key2)
    m = _sig_manifest(store)
    cfg = json.loads(store.blobs[m.config.digest])
    assert "evil" not in cfg and cfg["rootfs"]["diff_ids"] == [str(x.digest) for x in m.layers]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
    ],
)
def test_sign_refuses_to_clobber_a_foreign_tag(
    store: MemoryStore, key1: K.PrivateKey, raw: bytes
) -> None:
    store.manifests[signature_tag(A)] = (raw, mediatype.OCI_MANIFEST)
    with pytest.raises(InputError, match="not an image manifest"):
        sign_image(store, A, REPO, key1)
    assert store.manifests[signature_tag(A)][0] == raw


# --- verify: success ------------------------------------------------------------------------


def test_verify_round_trip(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {"env": "prod"})
    (v,) = verify_image(
        store,
        A,
        key1.public_key(),
        docker_reference=f"{REPO}:1.0",
        required_annotations={"env": "prod"},
    )
    assert v.subject == A and v.payload.digest == A
    assert v.payload.docker_reference == REPO and v.payload.annotations == {"env": "prod"}
    assert v.payload_bytes == store.blobs[v.layer.digest]
    assert verify_image(store, A, key1.public_key(), required_annotations={})


def test_verify_with_generated_key_files(store: MemoryStore) -> None:
    pair = K.generate_key_pair(b"pw", params=K.LEGACY)
    sign_image(store, A, REPO, K.load_private_key(pair.private_pem, b"pw"))
    assert verify_image(store, A, K.load_public_key(pair.public_pem))


def test_one_good_signature_among_others_is_enough(
    store: MemoryStore, key1: K.PrivateKey, key2: K.PrivateKey
) -> None:
    sign_image(store, A, REPO, key2)
    sign_image(store, A, REPO, key1)
    (v,) = verify_image(store, A, key1.public_key())
    assert v.layer == _sig_manifest(store).layers[1]


# --- verify: fails closed -------------------------------------------------------------------


def _fails(store: MemoryStore, key: K.PrivateKey, match: str, digest: Digest = A, **kw: Any) -> str:
    with pytest.raises(VerificationError, match=match) as ei:
        verify_image(store, digest, key.public_key(), **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_missing_signature(store: MemoryStore, key1: K.PrivateKey) -> None:
    _fails(store, key1, "no signatures found for " + str(A))


def test_changed_manifest_has_no_signature(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    _fails(store, key1, "no signatures found for " + str(B), digest=B)


def test_signature_copied_to_another_digest(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    store.manifests[signature_tag(B)] = store.manifests[signature_tag(A)]
    msg = _fails(store, key1, "signature is for", digest=B)
    assert msg == f"signature is for {A} not {B}"


def test_wrong_key(store: MemoryStore, key1: K.PrivateKey, key2: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    _fails(store, key2, "verifies with the given public key")


def test_tampered_payload_blob(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    (layer,) = _sig_manifest(store).layers
    store.blobs[layer.digest] = store.blobs[layer.digest].replace(b"team/app", b"team/bad")
    _fails(store, key1, "does not match its digest")


def test_missing_payload_blob(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    (layer,) = _sig_manifest(store).layers
    del store.blobs[layer.digest]
    _fails(store, key1, "missing or does not match")


def _rewrite_layer(
    store: MemoryStore, digest: Digest, new_payload: bytes | None = None, sig: str | None = None
) -> None:
    """An attacker's consistent rewrite: new payload stored and referenced with a correct digest."""
    m = _sig_manifest(store, digest)
    (layer,) = m.layers
    payload = new_payload if new_payload is not None else store.blobs[layer.digest]
    new_layer = signature_layer(
        payload, sig if sig is not None else layer.annotations[SIGNATURE_ANNOTATION]
    )
    store.put_blob(new_layer, payload)
    sm = build_signature_manifest([new_layer])
    store.put_blob(sm.config_descriptor, sm.config)
    store.put_manifest(signature_tag(digest), sm.manifest.raw, sm.manifest.media_type)


def test_tampered_payload_with_consistent_manifest(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {"env": "dev"})
    _rewrite_layer(store, A, new_payload=build_payload(A, REPO, {"env": "prod"}))
    _fails(store, key1, "verifies with the given public key")


def test_tampered_signature(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    sig = _sig_manifest(store).layers[0].annotations[SIGNATURE_ANNOTATION]
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    _rewrite_layer(store, A, sig=base64.b64encode(bytes(raw)).decode())
    _fails(store, key1, "verifies with the given public key")


def test_annotation_mismatch(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {"env": "dev"})
    msg = _fails(store, key1, "annotation", required_annotations={"env": "prod"})
    assert msg == f'signature for {A} does not carry annotation env=prod (it has env="dev")'
    _fails(store, key1, "does not carry annotation team=x$", required_annotations={"team": "x"})


def test_identity_check_normalises_docker_hub(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, docker_reference(Reference.parse("ubuntu:24.04")), key1)
    assert _sig_manifest(store).layers[0].size > 0
    assert verify_image(store, A, key1.public_key(), docker_reference="ubuntu")
    assert verify_image(store, A, key1.public_key(), docker_reference="docker.io/library/ubuntu:1")
    _fails(store, key1, "claims index.docker.io/library/ubuntu", docker_reference="debian")


def test_identity_mismatch_when_asked(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1)
    _fails(store, key1, "claims", docker_reference="registry.example/other")
    with pytest.raises(UsageError):
        verify_image(store, A, key1.public_key(), docker_reference="Not A Ref")


def test_validly_signed_but_foreign_payload(store: MemoryStore, key1: K.PrivateKey) -> None:
    payload = build_payload(A, REPO).replace(
        COSIGN_SIGNATURE_TYPE.encode(), b"atomic container signature"
    )
    layer = signature_layer(payload, sign_payload(key1, payload))
    store.put_blob(layer, payload)
    sm = build_signature_manifest([layer])
    store.put_manifest(signature_tag(A), sm.manifest.raw, sm.manifest.media_type)
    _fails(store, key1, "unknown type")


def test_layer_without_signature_annotation(store: MemoryStore, key1: K.PrivateKey) -> None:
    payload = build_payload(A, REPO)
    layer = Descriptor.of(SIMPLE_SIGNING_MEDIA_TYPE, payload)
    store.put_blob(layer, payload)
    sm = build_signature_manifest([layer])
    store.put_manifest(signature_tag(A), sm.manifest.raw, sm.manifest.media_type)
    _fails(store, key1, "has no dev.cosignproject.cosign/signature annotation")


def test_most_specific_failure_is_reported(
    store: MemoryStore, key1: K.PrivateKey, key2: K.PrivateKey
) -> None:
    sign_image(store, A, REPO, key2)  # wrong key for the verifier below
    store.manifests[signature_tag(B)] = store.manifests[signature_tag(A)]
    sign_image(store, B, REPO, key1)  # now B's tag holds: key2-for-A, key1-for-B
    # Copy B's two-layer manifest to A: key1's signature is valid but for B.
    store.manifests[signature_tag(A)] = store.manifests[signature_tag(B)]
    assert _fails(store, key1, "signature is for") == f"signature is for {B} not {A}"


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
        b"",
    ],
)
def test_malformed_signature_manifest(store: MemoryStore, key1: K.PrivateKey, raw: bytes) -> None:
    store.manifests[signature_tag(A)] = (raw, mediatype.OCI_MANIFEST)
    with pytest.raises(VerificationError):
        verify_image(store, A, key1.public_key())


def test_empty_signature_manifest(store: MemoryStore, key1: K.PrivateKey) -> None:
    empty = build_signature_manifest([]).manifest
    store.put_manifest(signature_tag(A), empty.raw, empty.media_type)
    _fails(store, key1, "has no layers")


def test_numbers_in_payload_do_not_match_strings(store: MemoryStore, key1: K.PrivateKey) -> None:
    sign_image(store, A, REPO, key1, {"n": 7})
    assert verify_image(store, A, key1.public_key(), required_annotations={"n": 7})
    _fails(store, key1, "annotation n=7 \\(it has n=7\\)", required_annotations={"n": "7"})
    assert go_json({"n": 7}) == b'{"n":7}'
