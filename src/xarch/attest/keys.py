"""cosign-compatible key pairs: generation, encryption, loading, import and password sources.

A cosign private key file is a PEM block of type ``ENCRYPTED SIGSTORE PRIVATE KEY`` (or the
legacy ``ENCRYPTED COSIGN PRIVATE KEY``) whose body is the JSON envelope of
go-securesystemslib ``encrypted``: scrypt derives a 32-byte key from the password, NaCl
secretbox (XSalsa20-Poly1305) seals a PKCS #8 DER private key. The public key is a PKIX
``PUBLIC KEY`` PEM. Error texts keep cosign's wording where scripts might match on it.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from xarch.errors import AuthError, InputError, UsageError

SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
PUBLIC_KEY_PEM_TYPE = "PUBLIC KEY"
ENCRYPTED_PEM_TYPES: frozenset[str] = frozenset({SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE})

PASSWORD_ENV = "COSIGN_PASSWORD"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class ScryptParams:
    n: int
    r: int
    p: int


# go-securesystemslib encrypted: the only parameter sets Decrypt accepts (anything else could be
# a DoS via a huge N); new keys use STANDARD, exactly like cosign.
LEGACY = ScryptParams(32768, 8, 1)
STANDARD = ScryptParams(65536, 8, 1)
OWASP = ScryptParams(131072, 8, 1)
ACCEPTED_SCRYPT_PARAMS: frozenset[ScryptParams] = frozenset({LEGACY, STANDARD, OWASP})

SALT_SIZE = 32
NONCE_SIZE = SecretBox.NONCE_SIZE  # 24
KEY_SIZE = SecretBox.KEY_SIZE  # 32

# Curve names as Go's crypto/elliptic spells them (error texts), keyed by cryptography's names.
_GO_CURVES: dict[str, str] = {
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_GOOD_CURVES = frozenset({"P-256", "P-384", "P-521"})  # sigstore goodkey policy
_GOOD_RSA_BITS = frozenset({2048, 3072, 4096})


class KeyFileError(InputError):
    """A key file that is malformed, of an unsupported kind, or refused by the key policy."""


class KeyPasswordError(AuthError):
    """The password does not open the encrypted private key (or the ciphertext was altered)."""


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


# --- PEM ------------------------------------------------------------------------------------

_PEM_BEGIN = re.compile(rb"(?:^|\n)-----BEGIN ([^\r\n]*?)-----[ \t]*\r?\n")


@dataclass(frozen=True)
class PemBlock:
    type: str
    headers: Mapping[str, str]
    body: bytes


def pem_encode(pem_type: str, der: bytes) -> bytes:
    """Go ``pem.EncodeToMemory``: 64-column base64 lines, trailing newline."""
    b64 = binascii.b2a_base64(der, newline=False)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    t = pem_type.encode("ascii")
    return (
        b"-----BEGIN "
        + t
        + b"-----\n"
        + b"".join(x + b"\n" for x in lines)
        + b"-----END "
        + t
        + b"-----\n"
    )


def pem_decode(data: bytes) -> PemBlock | None:
    """First well-formed PEM block in ``data`` (Go ``pem.Decode``: junk before it is skipped, a
    block whose body is not valid base64 is skipped too); None if there is none."""
    pos = 0
    while True:
        m = _PEM_BEGIN.search(data, pos)
        if m is None:
            return None
        pos = m.end()
        block = _pem_block(data, m)
        if block is not None:
            return block


def _pem_block(data: bytes, m: re.Match[bytes]) -> PemBlock | None:
    try:
        pem_type = m.group(1).decode("ascii")
    except UnicodeDecodeError:
        return None
    end_marker = b"-----END " + m.group(1) + b"-----"
    end = data.find(end_marker, m.end())
    if end < 0:
        return None
    lines = data[m.end() : end].split(b"\n")
    headers: dict[str, str] = {}
    i = 0
    # RFC 1421 headers ("Key: value") may precede the body, separated by a blank line.
    while i < len(lines) and b":" in lines[i]:
        k, _, v = lines[i].partition(b":")
        headers[k.strip().decode("latin-1")] = v.strip().decode("latin-1")
        i += 1
    if headers and i < len(lines) and lines[i].strip() == b"":
        i += 1
    b64 = b"".join(x.strip() for x in lines[i:])
    try:
        body = binascii.a2b_base64(b64, strict_mode=True) if b64 else b""
    except binascii.Error:
        return None
    return PemBlock(pem_type, headers, body)


def _b64_std(s: object, what: str) -> bytes:
    """Go's encoding/json []byte: standard base64 with padding, strictly."""
    if not isinstance(s, str):
        raise KeyFileError(f"malformed encrypted private key: {what} must be a base64 string")
    try:
        return binascii.a2b_base64(s.encode("ascii"), strict_mode=True) if s else b""
    except (binascii.Error, UnicodeEncodeError):
        raise KeyFileError(f"malformed encrypted private key: {what} is not valid base64") from None


# --- the encrypted envelope ------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedEnvelope:
    kdf_name: str
    params: ScryptParams
    salt: bytes
    cipher_name: str
    nonce: bytes
    ciphertext: bytes


def _int_field(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int):
        raise KeyFileError(
            f"malformed encrypted private key: kdf params {key!r} must be an integer"
        )
    return v


def _obj(v: Any, what: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise KeyFileError(f"malformed encrypted private key: {what} must be a JSON object")
    return v


def parse_envelope(body: bytes) -> EncryptedEnvelope:
    """Parse the JSON inside an encrypted key PEM block (no decryption)."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise KeyFileError("malformed encrypted private key: PEM body is not JSON") from None
    doc = _obj(doc, "the envelope")
    kdf = _obj(doc.get("kdf"), "'kdf'")
    cipher = _obj(doc.get("cipher"), "'cipher'")
    params = _obj(kdf.get("params"), "'kdf.params'")
    kdf_name = kdf.get("name", "")
    cipher_name = cipher.get("name", "")
    if not isinstance(kdf_name, str) or not isinstance(cipher_name, str):
        raise KeyFileError("malformed encrypted private key: kdf/cipher names must be strings")
    return EncryptedEnvelope(
        kdf_name=kdf_name,
        params=ScryptParams(
            _int_field(params, "N"), _int_field(params, "r"), _int_field(params, "p")
        ),
        salt=_b64_std(kdf.get("salt", ""), "'kdf.salt'"),
        cipher_name=cipher_name,
        nonce=_b64_std(cipher.get("nonce", ""), "'cipher.nonce'"),
        ciphertext=_b64_std(doc.get("ciphertext", ""), "'ciphertext'"),
    )


def _scrypt(password: bytes, salt: bytes, params: ScryptParams) -> bytes:
    # OpenSSL needs ~128*r*N bytes; the default maxmem (32 MiB) is too small for N >= 2^15.
    maxmem = 128 * params.r * (params.n + params.p + 2) + (1 << 20)
    return hashlib.scrypt(
        password, salt=salt, n=params.n, r=params.r, p=params.p, maxmem=maxmem, dklen=KEY_SIZE
    )


def encrypt_private_key(
    der: bytes,
    password: bytes,
    *,
    pem_type: str = SIGSTORE_PEM_TYPE,
    params: ScryptParams = STANDARD,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Seal PKCS #8 ``der`` under ``password`` and wrap it in a cosign PEM block.

    ``salt``/``nonce`` are random unless given (tests only: reusing a nonce breaks secretbox)."""
    if pem_type not in ENCRYPTED_PEM_TYPES:
        raise UsageError(f"cannot write an encrypted private key with PEM type {pem_type!r}")
    if params not in ACCEPTED_SCRYPT_PARAMS:
        raise UsageError(f"unsupported scrypt parameters {params} (cosign could not read the key)")
    salt = secrets.token_bytes(SALT_SIZE) if salt is None else salt
    nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
    if len(salt) != SALT_SIZE or len(nonce) != NONCE_SIZE:
        raise UsageError(f"salt must be {SALT_SIZE} bytes and nonce {NONCE_SIZE} bytes")
    key = _scrypt(password, salt, params)
    sealed = SecretBox(key).encrypt(der, nonce).ciphertext  # MAC || ciphertext, as Go's Seal

    def b64(b: bytes) -> str:
        return binascii.b2a_base64(b, newline=False).decode("ascii")

    # Go json.Marshal of go-securesystemslib's structs: this field order, no whitespace.
    envelope = (
        f'{{"kdf":{{"name":"scrypt","params":{{"N":{params.n},"r":{params.r},"p":{params.p}}},'
        f'"salt":"{b64(salt)}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{b64(nonce)}"}},'
        f'"ciphertext":"{b64(sealed)}"}}'
    )
    return pem_encode(pem_type, envelope.encode("ascii"))


def decrypt_private_key(pem: bytes, password: bytes, *, source: str = "private key") -> bytes:
    """Open a cosign encrypted private key PEM and return the plaintext DER (normally PKCS #8)."""
    block = pem_decode(pem)
    if block is None:
        raise KeyFileError(f"{source}: invalid pem block", hint="expected a cosign.key PEM file")
    if block.type not in ENCRYPTED_PEM_TYPES:
        raise KeyFileError(
            f"{source}: unsupported pem type: {block.type}",
            hint=f"expected {SIGSTORE_PEM_TYPE!r}; convert plain keys with 'xarch key import'",
        )
    env = parse_envelope(block.body)
    if env.kdf_name != "scrypt":
        raise KeyFileError(
            f"{source}: decrypt: encrypted: unknown kdf name {json.dumps(env.kdf_name)}"
        )
    if env.cipher_name != "nacl/secretbox":
        raise KeyFileError(
            f"{source}: decrypt: encrypted: unknown cipher name {json.dumps(env.cipher_name)}"
        )
    if env.params not in ACCEPTED_SCRYPT_PARAMS:
        raise KeyFileError(
            f"{source}: decrypt: unsupported scrypt parameters "
            f"(N={env.params.n}, r={env.params.r}, p={env.params.p})",
            hint="accepted: N=32768, 65536 or 131072 with r=8, p=1",
        )
    key = _scrypt(password, env.salt, env.params)
    if len(env.nonce) != NONCE_SIZE:
        raise KeyFileError(f"{source}: decrypt: encrypted: incorrect nonce size")
    try:
        return SecretBox(key).decrypt(env.ciphertext, env.nonce)
    except CryptoError:
        raise KeyPasswordError(
            f"{source}: decrypt: wrong password or corrupted key",
            hint=f"cosign says 'encrypted: decryption failed'; check --password-env / {PASSWORD_ENV}",
        ) from None


# --- DER shape checks (Go's parsers are format-strict; cryptography's loaders are not) ---------


def _der_tlv(der: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, content start, content end) of the TLV at ``pos``; None if malformed."""
    if pos + 2 > len(der):
        return None
    tag = der[pos]
    if tag & 0x1F == 0x1F:  # high tag numbers never occur in these structures
        return None
    ln = der[pos + 1]
    start = pos + 2
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0 or n > 4 or start + n > len(der):
            return None
        ln = int.from_bytes(der[start : start + n], "big")
        start += n
    end = start + ln
    if end > len(der):
        return None
    return tag, start, end


def _der_sequence_tags(der: bytes) -> list[tuple[int, bytes]] | None:
    """Children (tag, content) of the outer SEQUENCE, or None if ``der`` is not one."""
    outer = _der_tlv(der, 0)
    if outer is None or outer[0] != 0x30:
        return None
    out: list[tuple[int, bytes]] = []
    pos, end = outer[1], outer[2]
    while pos < end:
        tlv = _der_tlv(der, pos)
        if tlv is None or tlv[2] > end:
            return None
        out.append((tlv[0], der[tlv[1] : tlv[2]]))
        pos = tlv[2]
    return out


def _looks_pkcs8(der: bytes) -> bool:
    kids = _der_sequence_tags(der)
    return (
        kids is not None
        and len(kids) >= 3
        and kids[0][0] == 0x02
        and kids[1][0] == 0x30
        and kids[2][0] == 0x04
    )


def _looks_sec1(der: bytes) -> bool:
    kids = _der_sequence_tags(der)
    return kids is not None and len(kids) >= 2 and kids[0] == (0x02, b"\x01") and kids[1][0] == 0x04


def _looks_pkcs1(der: bytes) -> bool:
    kids = _der_sequence_tags(der)
    return kids is not None and len(kids) >= 9 and all(t == 0x02 for t, _ in kids[:9])


def _load_der(der: bytes) -> Any:
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def go_curve_name(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str | None:
    """Go's name for the key's curve, or None if Go's x509 would not parse the curve."""
    return _GO_CURVES.get(key.curve.name)


def parse_pkcs8_private_key(der: bytes, *, source: str = "private key") -> PrivateKey:
    """Go ``x509.ParsePKCS8PrivateKey`` for RSA, ECDSA (P-224..P-521) and Ed25519 keys."""
    if not _looks_pkcs8(der):
        if _looks_sec1(der):
            why = "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)"
        elif _looks_pkcs1(der):
            why = "x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)"
        else:
            why = "x509: malformed PKCS #8 private key"
        raise KeyFileError(f"{source}: parsing private key: {why}")
    key = _load_der(der)
    if isinstance(key, ec.EllipticCurvePrivateKey) and go_curve_name(key) is None:
        raise KeyFileError(f"{source}: parsing private key: x509: unsupported elliptic curve")
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyFileError(
            f"{source}: parsing private key: x509: unsupported or malformed PKCS #8 key"
        )
    return key


def load_private_key(pem: bytes, password: bytes, *, source: str = "private key") -> PrivateKey:
    """cosign ``LoadPrivateKey``: decrypt, then parse strictly as PKCS #8."""
    return parse_pkcs8_private_key(decrypt_private_key(pem, password, source=source), source=source)


def load_public_key(pem: bytes, *, source: str = "public key") -> PublicKey:
    """PKIX public key from the first PEM block (cryptoutils ``UnmarshalPEMToPublicKey``)."""
    block = pem_decode(pem)
    if block is None:
        raise KeyFileError(f"{source}: PEM decoding failed", hint="expected a cosign.pub PEM file")
    if "PRIVATE KEY" in block.type:
        raise KeyFileError(
            f"{source}: is a private key ({block.type}), not a public key",
            hint="pass the .pub file to verify",
        )
    try:
        key = serialization.load_der_public_key(block.body)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{source}: not a PKIX public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and go_curve_name(key) is None:
        raise KeyFileError(f"{source}: x509: unsupported elliptic curve {key.curve.name}")
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyFileError(f"{source}: unsupported public key type {type(key).__name__}")
    return key


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """cryptoutils ``MarshalPublicKeyToPEM``: PKIX DER in a ``PUBLIC KEY`` block."""
    pub: PublicKey
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        pub = key.public_key()
    else:
        pub = key
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem_encode(PUBLIC_KEY_PEM_TYPE, der)


def _pkcs8(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def marshal_key_pair(
    key: PrivateKey,
    password: bytes,
    *,
    pem_type: str = SIGSTORE_PEM_TYPE,
    params: ScryptParams = STANDARD,
) -> KeyPair:
    return KeyPair(
        encrypt_private_key(_pkcs8(key), password, pem_type=pem_type, params=params),
        public_key_pem(key),
    )


def generate_key_pair(password: bytes, *, params: ScryptParams = STANDARD) -> KeyPair:
    """cosign ``GenerateKeyPair``: a fresh ECDSA P-256 key, written as a SIGSTORE PEM."""
    return marshal_key_pair(ec.generate_private_key(ec.SECP256R1()), password, params=params)


# --- import (cosign ImportKeyPair) -----------------------------------------------------------


def _validate(key: PrivateKey, kind: str, source: str) -> None:
    """sigstore goodkey policy (the subset that decides real keys: sizes, curves, exponent)."""
    if isinstance(key, rsa.RSAPrivateKey):
        bits = key.key_size
        if bits not in _GOOD_RSA_BITS:
            raise KeyFileError(
                f"{source}: error validating {kind} key: key size not supported: {bits}"
            )
        if key.public_key().public_numbers().e != 65537:
            raise KeyFileError(f"{source}: error validating {kind} key: key exponent must be 65537")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        name = go_curve_name(key) or key.curve.name
        if name not in _GOOD_CURVES:
            raise KeyFileError(
                f"{source}: error validating {kind} key: ECDSA curve {name} not allowed"
            )


def import_key_pair(
    pem: bytes,
    password: bytes,
    *,
    source: str = "key file",
    params: ScryptParams = STANDARD,
) -> KeyPair:
    """cosign ``ImportKeyPair``: a plain PEM private key (PKCS #1 RSA, SEC 1 EC, or PKCS #8 RSA,
    EC, Ed25519), checked against the key policy and re-encrypted as a SIGSTORE key pair."""
    block = pem_decode(pem)
    if block is None:
        raise KeyFileError(f"{source}: invalid pem block", hint="expected a PEM private key")
    der = block.body
    key: Any
    if block.type == "RSA PRIVATE KEY":
        key = _load_der(der) if _looks_pkcs1(der) else None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyFileError(f"{source}: error parsing rsa private key")
        _validate(key, "rsa", source)
    elif block.type == "EC PRIVATE KEY":
        key = _load_der(der) if _looks_sec1(der) else None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or go_curve_name(key) is None:
            raise KeyFileError(f"{source}: error parsing ecdsa private key")
        _validate(key, "ecdsa", source)
    elif block.type == "PRIVATE KEY":
        key = _load_der(der) if _looks_pkcs8(der) else None
        if key is None or (
            isinstance(key, ec.EllipticCurvePrivateKey) and go_curve_name(key) is None
        ):
            raise KeyFileError(f"{source}: error parsing pkcs #8 private key")
        if isinstance(key, rsa.RSAPrivateKey):
            _validate(key, "rsa", source)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            _validate(key, "ecdsa", source)
        elif not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyFileError(f"{source}: unexpected private key ({type(key).__name__})")
    else:
        raise KeyFileError(
            f"{source}: unsupported private key (PEM type {block.type!r})",
            hint="expected RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY",
        )
    return marshal_key_pair(key, password, params=params)


# --- passwords and files ---------------------------------------------------------------------


def password_from(
    env_name: str | None,
    prompt: bool,
    *,
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
    stdin_isatty: Callable[[], bool] | None = None,
    getpass_fn: Callable[[str], str] | None = None,
) -> bytes:
    """Password for a private key: ``--password-env NAME``, else ``$COSIGN_PASSWORD`` (even if
    empty, as cosign), else an interactive prompt when allowed and stdin is a terminal.

    ``confirm`` asks twice (key generation). The injectables exist for tests."""
    env = os.environ if environ is None else environ
    if env_name is not None:
        if env_name not in env:
            raise UsageError(
                f"--password-env {env_name}: environment variable {env_name} is not set",
                hint="export it or drop --password-env",
            )
        return _to_bytes(env[env_name])
    if PASSWORD_ENV in env:
        return _to_bytes(env[PASSWORD_ENV])
    isatty = stdin_isatty or (lambda: sys.stdin is not None and sys.stdin.isatty())
    if not prompt or not isatty():
        raise UsageError(
            "no password for the private key",
            hint=f"set {PASSWORD_ENV} or pass --password-env NAME (stdin is not a terminal)",
        )
    if getpass_fn is None:
        import getpass

        getpass_fn = getpass.getpass
    first = getpass_fn("Enter password for private key: ")
    if confirm:
        again = getpass_fn("Enter password for private key again: ")
        if again != first:
            raise UsageError("passwords do not match", hint="run the command again")
    return _to_bytes(first)


def _to_bytes(s: str) -> bytes:
    # os.environ decodes with surrogateescape; give back the bytes the user actually set.
    return os.fsencode(s)


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename) with ``mode``; without
    ``force`` never replace an existing file, even one created concurrently."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: a no-clobber rename
            except FileExistsError:
                raise UsageError(
                    f"{path} already exists", hint="use --force to overwrite it"
                ) from None
            except OSError:  # filesystem without hard links
                if path.exists():
                    raise UsageError(
                        f"{path} already exists", hint="use --force to overwrite it"
                    ) from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_key_pair(
    directory: Path | str, pair: KeyPair, prefix: str = "cosign", *, force: bool = False
) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (0600) and ``<prefix>.pub`` (0644) into ``directory``."""
    d = Path(directory)
    if not prefix or "/" in prefix or prefix in {".", ".."}:
        raise UsageError(f"invalid key file prefix {prefix!r}: expected a plain file name")
    if not d.is_dir():
        raise UsageError(f"cannot write keys: {d} is not a directory")
    priv, pub = d / f"{prefix}.key", d / f"{prefix}.pub"
    if not force:
        for p in (priv, pub):
            if p.exists():
                raise UsageError(f"{p} already exists", hint="use --force to overwrite it")
    _write_new(priv, pair.private_pem, 0o600, force)
    try:
        _write_new(pub, pair.public_pem, 0o644, force)
    except BaseException:
        if not force:
            priv.unlink(missing_ok=True)  # never leave half a key pair behind
        raise
    _fsync_dir(d)
    return priv, pub
