"""cosign key files: the conformance vectors, generation, import, passwords, writing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.secret import SecretBox

from attest._support import FIXTURES_JSON, fixture_cases, read_fixture
from helpers import vectors
from xarch.attest import keys as K
from xarch.errors import AuthError, InputError, UsageError

ENCRYPTED = [e for e in fixture_cases("encrypted_keys") if e.get("password") == "hello"]
IMPORTS = fixture_cases("TestImportPrivateKey")


def _independent_decrypt(pem: bytes, password: bytes) -> bytes:
    """The algorithm spelled out with the primitives only, to check ours against."""
    lines = pem.decode().strip().splitlines()
    body = json.loads(base64.b64decode("".join(lines[1:-1])))
    p = body["kdf"]["params"]
    key = hashlib.scrypt(
        password,
        salt=base64.b64decode(body["kdf"]["salt"]),
        n=p["N"],
        r=p["r"],
        p=p["p"],
        dklen=32,
        maxmem=2**28,
    )
    return SecretBox(key).decrypt(
        base64.b64decode(body["ciphertext"]), base64.b64decode(body["cipher"]["nonce"])
    )


# --- the encrypted key vectors --------------------------------------------------------------


@vectors.parametrize(FIXTURES_JSON, "entry", ENCRYPTED, ids=lambda e: e["file"])
def test_vector_decrypts_with_right_password(entry: dict[str, Any]) -> None:
    der = K.decrypt_private_key(read_fixture(entry["file"]), b"hello")
    assert len(der) == entry["plaintext_len"]
    assert hashlib.sha256(der).hexdigest() == entry["plaintext_der_sha256"]


@vectors.parametrize(FIXTURES_JSON, "entry", ENCRYPTED, ids=lambda e: e["file"])
def test_vector_rejects_wrong_password(entry: dict[str, Any]) -> None:
    with pytest.raises(K.KeyPasswordError, match="wrong password or corrupted key") as ei:
        K.decrypt_private_key(read_fixture(entry["file"]), b"hellO")
    assert isinstance(ei.value, AuthError)
    assert "\n" not in str(ei.value)


@vectors.parametrize(FIXTURES_JSON, "entry", ENCRYPTED, ids=lambda e: e["file"])
def test_vector_load_private_key_matches_cosign(entry: dict[str, Any]) -> None:
    pem = read_fixture(entry["file"])
    if entry["cosign_LoadPrivateKey"] == "ok":
        key = K.load_private_key(pem, b"hello")
        assert K.public_key_pem(key).decode() == entry["public_key_pem"]
    else:
        # cosign refuses a SEC 1 plaintext even though it decrypts: LoadPrivateKey wants PKCS #8.
        with pytest.raises(K.KeyFileError, match="use ParseECPrivateKey instead"):
            K.load_private_key(pem, b"hello")


@vectors.parametrize(FIXTURES_JSON, "entry", ENCRYPTED, ids=lambda e: e["file"])
def test_vector_reencrypts_byte_identically(entry: dict[str, Any]) -> None:
    """Same salt and nonce give the same file: envelope JSON and PEM layout are Go's."""
    pem = read_fixture(entry["file"])
    block = K.pem_decode(pem)
    assert block is not None
    env = K.parse_envelope(block.body)
    der = K.decrypt_private_key(pem, b"hello")
    again = K.encrypt_private_key(
        der, b"hello", pem_type=block.type, params=env.params, salt=env.salt, nonce=env.nonce
    )
    assert again == pem


def test_ci_key_envelope_parses_but_password_is_unknown() -> None:
    pem = read_fixture("cosign-test.key")
    block = K.pem_decode(pem)
    assert block is not None and block.type == K.COSIGN_PEM_TYPE
    env = K.parse_envelope(block.body)
    assert env.params == K.LEGACY
    assert (len(env.salt), len(env.nonce)) == (32, 24)
    for pw in (b"hello", b""):
        with pytest.raises(K.KeyPasswordError):
            K.load_private_key(pem, pw)
    pub = K.load_public_key(read_fixture("cosign-test.pub"))
    assert isinstance(pub, ec.EllipticCurvePublicKey) and K.go_curve_name(pub) == "P-256"


# --- LoadPrivateKey error table -------------------------------------------------------------


def _envelope_pem(
    *,
    kdf: str = "scrypt",
    cipher: str = "nacl/secretbox",
    n: int = 32768,
    nonce: bytes = b"\0" * 24,
    pem_type: str = K.SIGSTORE_PEM_TYPE,
) -> bytes:
    body = {
        "kdf": {
            "name": kdf,
            "params": {"N": n, "r": 8, "p": 1},
            "salt": base64.b64encode(b"s" * 32).decode(),
        },
        "cipher": {"name": cipher, "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(b"x" * 40).decode(),
    }
    return K.pem_encode(pem_type, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("pem", "message", "category"),
    [
        (b"not a pem at all", "invalid pem block", K.KeyFileError),
        (os.urandom(100), "invalid pem block", K.KeyFileError),
        (
            K.pem_encode("EC PRIVATE KEY", b"\x30\x00"),
            "unsupported pem type: EC PRIVATE KEY",
            K.KeyFileError,
        ),
        (_envelope_pem(kdf="pbkdf2"), 'encrypted: unknown kdf name "pbkdf2"', K.KeyFileError),
        (_envelope_pem(cipher="aes"), 'encrypted: unknown cipher name "aes"', K.KeyFileError),
        (_envelope_pem(n=1024), "unsupported scrypt parameters", K.KeyFileError),
        (_envelope_pem(n=1 << 20), "unsupported scrypt parameters", K.KeyFileError),
        (_envelope_pem(nonce=b"\0" * 12), "encrypted: incorrect nonce size", K.KeyFileError),
        (_envelope_pem(), "wrong password or corrupted key", K.KeyPasswordError),
        (K.pem_encode(K.SIGSTORE_PEM_TYPE, b"{not json"), "not JSON", K.KeyFileError),
    ],
)
def test_load_private_key_errors(pem: bytes, message: str, category: type[Exception]) -> None:
    with pytest.raises(category, match=message.replace("(", r"\(")):
        K.load_private_key(pem, b"wrong")


def test_corrupted_ciphertext_is_refused() -> None:
    pair = K.generate_key_pair(b"pw", params=K.LEGACY)
    block = K.pem_decode(pair.private_pem)
    assert block is not None
    doc = json.loads(block.body)
    ct = bytearray(base64.b64decode(doc["ciphertext"]))
    ct[-1] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    with pytest.raises(K.KeyPasswordError):
        K.load_private_key(K.pem_encode(block.type, json.dumps(doc).encode()), b"pw")


# --- generated keys -------------------------------------------------------------------------


def test_generated_key_pair_uses_cosign_format() -> None:
    pair = K.generate_key_pair(b"s3cret")
    text = pair.private_pem.decode()
    assert text.startswith(f"-----BEGIN {K.SIGSTORE_PEM_TYPE}-----\n")
    assert text.endswith(f"-----END {K.SIGSTORE_PEM_TYPE}-----\n")
    assert all(len(line) <= 64 for line in text.splitlines()[1:-1])
    block = K.pem_decode(pair.private_pem)
    assert block is not None
    # Go json.Marshal field order, default (standard) scrypt parameters, no whitespace.
    assert block.body.startswith(
        b'{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"'
    )
    assert b'"cipher":{"name":"nacl/secretbox","nonce":"' in block.body
    assert b" " not in block.body
    env = K.parse_envelope(block.body)
    assert (env.params, len(env.salt), len(env.nonce)) == (K.STANDARD, 32, 24)
    # Decrypts with the primitives alone, to a PKCS #8 P-256 key whose public half is the .pub.
    der = _independent_decrypt(pair.private_pem, b"s3cret")
    key = K.parse_pkcs8_private_key(der)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and K.go_curve_name(key) == "P-256"
    assert K.public_key_pem(key) == pair.public_pem
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    loaded = K.load_private_key(pair.private_pem, b"s3cret")
    assert K.public_key_pem(loaded) == pair.public_pem
    assert K.public_key_pem(K.load_public_key(pair.public_pem)) == pair.public_pem
    with pytest.raises(K.KeyPasswordError):
        K.load_private_key(pair.private_pem, b"s3cret!")


def test_generated_keys_are_fresh() -> None:
    a = K.generate_key_pair(b"", params=K.LEGACY)
    b = K.generate_key_pair(b"", params=K.LEGACY)
    assert a.public_pem != b.public_pem
    assert K.load_private_key(a.private_pem, b"") is not None  # empty password is allowed


@pytest.mark.parametrize("params", [K.LEGACY, K.STANDARD, K.OWASP], ids=lambda p: f"N={p.n}")
def test_all_accepted_scrypt_parameter_sets_round_trip(params: K.ScryptParams) -> None:
    der = K._pkcs8(ec.generate_private_key(ec.SECP256R1()))
    pem = K.encrypt_private_key(der, b"pw", params=params, pem_type=K.COSIGN_PEM_TYPE)
    assert f'"params":{{"N":{params.n},"r":8,"p":1}}'.encode() in base64.b64decode(
        b"".join(pem.splitlines()[1:-1])
    )
    assert K.decrypt_private_key(pem, b"pw") == der
    assert _independent_decrypt(pem, b"pw") == der
    with pytest.raises(K.KeyPasswordError):
        K.decrypt_private_key(pem, b"pW")


def test_password_error_names_the_file() -> None:
    with pytest.raises(K.KeyPasswordError, match=r"^keys/cosign\.key: decrypt: wrong password"):
        K.load_private_key(
            read_fixture("sigstore.ENCRYPTED_SIGSTORE.key"), b"x", source="keys/cosign.key"
        )


@given(st.binary(max_size=200))
def test_pkcs8_parser_only_raises_key_errors(der: bytes) -> None:
    try:
        K.parse_pkcs8_private_key(der)
    except K.KeyFileError:
        pass


def test_encrypt_rejects_bad_parameters() -> None:
    with pytest.raises(UsageError):
        K.encrypt_private_key(b"x", b"p", params=K.ScryptParams(1024, 8, 1))
    with pytest.raises(UsageError):
        K.encrypt_private_key(b"x", b"p", pem_type="PRIVATE KEY")
    with pytest.raises(UsageError):
        K.encrypt_private_key(b"x", b"p", salt=b"short")


def test_load_public_key_errors() -> None:
    with pytest.raises(K.KeyFileError, match="PEM decoding failed"):
        K.load_public_key(b"nope")
    pair = K.generate_key_pair(b"", params=K.LEGACY)
    with pytest.raises(K.KeyFileError, match="private key"):
        K.load_public_key(pair.private_pem)
    with pytest.raises(K.KeyFileError, match="not a PKIX public key"):
        K.load_public_key(K.pem_encode("PUBLIC KEY", b"\x30\x03\x02\x01\x00"))


# --- import ---------------------------------------------------------------------------------


@vectors.parametrize(FIXTURES_JSON, "row", IMPORTS, ids=lambda r: r["file"])
def test_import_key_pair_table(row: dict[str, Any]) -> None:
    data = read_fixture(row["file"])
    password = row["ImportKeyPair_password"].encode()
    if row["expected_error"] is not None:
        with pytest.raises(K.KeyFileError) as ei:
            K.import_key_pair(data, password, params=K.LEGACY)
        assert row["expected_error"] in str(ei.value)
        assert isinstance(ei.value, InputError)
        return
    pair = K.import_key_pair(data, password, params=K.LEGACY)
    block = K.pem_decode(pair.private_pem)
    assert block is not None and block.type == K.SIGSTORE_PEM_TYPE
    loaded = K.load_private_key(pair.private_pem, b"hello")  # then_LoadPrivateKey_hello: ok
    assert K.public_key_pem(loaded) == pair.public_pem


def test_import_writes_standard_parameters_by_default() -> None:
    pair = K.import_key_pair(read_fixture("import-key-pair/validecp256.key"), b"hello")
    block = K.pem_decode(pair.private_pem)
    assert block is not None
    assert K.parse_envelope(block.body).params == K.STANDARD


def test_import_refuses_an_already_encrypted_key() -> None:
    with pytest.raises(K.KeyFileError, match="unsupported private key"):
        K.import_key_pair(read_fixture("sigstore.ENCRYPTED_SIGSTORE.key"), b"hello")


def test_import_rejects_mislabelled_der() -> None:
    # A PKCS #8 body under an "EC PRIVATE KEY" label: Go's ParseECPrivateKey refuses it.
    block = K.pem_decode(read_fixture("import-key-pair/validecpkcs8.key"))
    assert block is not None
    with pytest.raises(K.KeyFileError, match="error parsing ecdsa private key"):
        K.import_key_pair(K.pem_encode("EC PRIVATE KEY", block.body), b"x")
    with pytest.raises(K.KeyFileError, match="error parsing rsa private key"):
        K.import_key_pair(K.pem_encode("RSA PRIVATE KEY", block.body), b"x")
    with pytest.raises(K.KeyFileError, match="error parsing pkcs #8 private key"):
        K.import_key_pair(K.pem_encode("PRIVATE KEY", b"\x30\x00"), b"x")


# --- PEM ------------------------------------------------------------------------------------


def test_pem_decode_skips_leading_junk_and_headers() -> None:
    pem = K.pem_encode("PUBLIC KEY", b"abc")
    assert K.pem_decode(b"junk\n" + pem) == K.PemBlock("PUBLIC KEY", {}, b"abc")
    with_headers = pem.replace(b"-----\n", b"-----\nProc-Type: 4,ENCRYPTED\n\n", 1)
    block = K.pem_decode(with_headers)
    assert block is not None and block.headers == {"Proc-Type": "4,ENCRYPTED"}
    assert block.body == b"abc"
    # A block with an invalid body is skipped; the next good one is returned.
    bad = b"-----BEGIN X-----\n!!!!\n-----END X-----\n"
    assert K.pem_decode(bad + pem) == K.PemBlock("PUBLIC KEY", {}, b"abc")
    assert K.pem_decode(bad) is None
    assert K.pem_decode(b"-----BEGIN X-----\nYWJj\n-----END Y-----\n") is None


@given(st.binary(max_size=300), st.sampled_from(["PUBLIC KEY", K.SIGSTORE_PEM_TYPE, "X"]))
def test_pem_round_trip(data: bytes, pem_type: str) -> None:
    assert K.pem_decode(K.pem_encode(pem_type, data)) == K.PemBlock(pem_type, {}, data)


@given(st.binary(max_size=400))
def test_pem_decode_never_crashes(data: bytes) -> None:
    K.pem_decode(data)
    K.pem_decode(b"-----BEGIN A-----\n" + data + b"\n-----END A-----\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(json_values)
def test_parse_envelope_only_raises_key_errors(doc: Any) -> None:
    try:
        K.parse_envelope(json.dumps(doc).encode())
    except K.KeyFileError:
        pass


# --- passwords ------------------------------------------------------------------------------


def _no_prompt(_: str) -> str:
    raise AssertionError("must not prompt")


def test_password_env_flag_wins() -> None:
    env = {"MY_PW": "flag", K.PASSWORD_ENV: "cosign"}
    assert K.password_from("MY_PW", True, environ=env, getpass_fn=_no_prompt) == b"flag"
    with pytest.raises(UsageError, match="MISSING is not set"):
        K.password_from("MISSING", True, environ=env, getpass_fn=_no_prompt)


def test_cosign_password_even_if_empty() -> None:
    assert (
        K.password_from(None, True, environ={K.PASSWORD_ENV: "pw"}, getpass_fn=_no_prompt) == b"pw"
    )
    assert K.password_from(None, True, environ={K.PASSWORD_ENV: ""}, getpass_fn=_no_prompt) == b""


def test_prompt_only_on_a_terminal() -> None:
    answers = iter(["typed", "typed"])
    got = K.password_from(
        None,
        True,
        confirm=True,
        environ={},
        stdin_isatty=lambda: True,
        getpass_fn=lambda _: next(answers),
    )
    assert got == b"typed"
    with pytest.raises(UsageError, match="no password"):
        K.password_from(None, True, environ={}, stdin_isatty=lambda: False, getpass_fn=_no_prompt)
    with pytest.raises(UsageError, match="no password"):
        K.password_from(None, False, environ={}, stdin_isatty=lambda: True, getpass_fn=_no_prompt)
    answers = iter(["one", "two"])
    with pytest.raises(UsageError, match="passwords do not match"):
        K.password_from(
            None,
            True,
            confirm=True,
            environ={},
            stdin_isatty=lambda: True,
            getpass_fn=lambda _: next(answers),
        )


def test_password_keeps_non_utf8_environment_bytes() -> None:
    raw = os.fsdecode(b"\xffpw")
    assert K.password_from(None, False, environ={K.PASSWORD_ENV: raw}) == b"\xffpw"


# --- writing key files ----------------------------------------------------------------------


def test_write_key_pair_modes_and_no_clobber(tmp_path: Path) -> None:
    pair = K.KeyPair(b"PRIVATE", b"PUBLIC")
    priv, pub = K.write_key_pair(tmp_path, pair)
    assert (priv.name, pub.name) == ("cosign.key", "cosign.pub")
    assert priv.read_bytes() == b"PRIVATE" and pub.read_bytes() == b"PUBLIC"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    with pytest.raises(UsageError, match="already exists"):
        K.write_key_pair(tmp_path, K.KeyPair(b"OTHER", b"OTHER"))
    assert priv.read_bytes() == b"PRIVATE"
    K.write_key_pair(tmp_path, K.KeyPair(b"NEW", b"NEWPUB"), force=True)
    assert priv.read_bytes() == b"NEW" and stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.key", "cosign.pub"]


def test_write_key_pair_refuses_if_only_pub_exists(tmp_path: Path) -> None:
    (tmp_path / "import-cosign.pub").write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"):
        K.write_key_pair(tmp_path, K.KeyPair(b"k", b"p"), prefix="import-cosign")
    assert not (tmp_path / "import-cosign.key").exists()


@pytest.mark.parametrize("prefix", ["", "a/b", ".."])
def test_write_key_pair_bad_prefix(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(UsageError):
        K.write_key_pair(tmp_path, K.KeyPair(b"k", b"p"), prefix=prefix)


def test_write_key_pair_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        K.write_key_pair(tmp_path / "missing", K.KeyPair(b"k", b"p"))
