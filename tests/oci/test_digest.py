from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import InputError
from xarch.oci.digest import Digest, Digester

HEX64 = "a" * 64


def test_parse_valid_sha256_and_sha512() -> None:
    d = Digest.parse("sha256:" + HEX64)
    assert d == "sha256:" + HEX64
    assert isinstance(d, str)
    assert d.algorithm == "sha256"
    assert d.hex == HEX64
    e = Digest.parse("sha512:" + "0" * 128)
    assert e.algorithm == "sha512"
    assert len(e.hex) == 128


def test_constructor_validates_too() -> None:
    with pytest.raises(InputError):
        Digest("nope")
    d = Digest("sha256:" + HEX64)
    assert Digest(d) is d  # no re-validation / copy needed


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("sha256:abc", "invalid digest 'sha256:abc': expected 64 hex characters"),
        ("sha512:" + "a" * 64, "expected 128 hex characters"),
        ("sha256", "missing ':'"),
        ("sha256:" + "A" * 64, "hex must be lowercase"),
        ("sha256:" + "g" * 64, "expected 64 hex characters (0-9, a-f)"),
        ("md5:" + "a" * 32, "unsupported algorithm 'md5'"),
        ("SHA256:" + HEX64, "malformed algorithm"),
        (":" + HEX64, "malformed algorithm"),
        ("", "missing ':'"),
    ],
)
def test_parse_errors_are_clear(value: str, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Digest.parse(value)
    assert fragment in str(ei.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InputError):
        Digest.parse(123)  # type: ignore[arg-type]


def test_from_bytes_and_verify() -> None:
    d = Digest.from_bytes(b"hello")
    assert d.hex == hashlib.sha256(b"hello").hexdigest()
    assert d.verify(b"hello")
    assert not d.verify(b"hellO")
    d512 = Digest.from_bytes(b"hello", "sha512")
    assert d512.hex == hashlib.sha512(b"hello").hexdigest()
    assert d512.verify(b"hello")


def test_from_bytes_unknown_algorithm() -> None:
    with pytest.raises(InputError, match="unsupported digest algorithm"):
        Digest.from_bytes(b"x", "md5")


def test_hasher_is_fresh_each_time() -> None:
    d = Digest.from_bytes(b"abc")
    h1 = d.hasher()
    h1.update(b"abc")
    h2 = d.hasher()
    assert h2.hexdigest() == hashlib.sha256(b"").hexdigest()
    assert h1.hexdigest() == d.hex


def test_digester_streams_and_counts() -> None:
    dg = Digester()
    for chunk in (b"ab", bytearray(b"c"), memoryview(b"def")):
        dg.update(chunk)
    assert dg.size == 6
    assert dg.digest() == Digest.from_bytes(b"abcdef")
    assert Digester("sha512").digest() == Digest.from_bytes(b"", "sha512")
    with pytest.raises(InputError):
        Digester("crc32")


def test_digest_is_hashable_and_equal_to_plain_string() -> None:
    d = Digest.from_bytes(b"x")
    assert {str(d): 1}[d] == 1
    assert hash(d) == hash(str(d))
    assert repr(d).startswith("Digest('sha256:")


@given(st.binary(max_size=2048), st.lists(st.integers(0, 2048), max_size=5))
def test_digester_matches_one_shot(data: bytes, cuts: list[int]) -> None:
    dg = Digester()
    prev = 0
    for c in sorted(cuts):
        dg.update(data[prev:c])
        prev = max(prev, c)
    dg.update(data[prev:])
    assert dg.digest() == Digest.from_bytes(data)
    assert dg.size == len(data)
    assert Digest.from_bytes(data).verify(data)


@given(st.text(max_size=200))
def test_random_strings_only_raise_input_error(s: str) -> None:
    try:
        d = Digest.parse(s)
    except InputError:
        return
    assert Digest.parse(str(d)) == d


@given(st.sampled_from(["sha256", "sha512"]), st.binary(max_size=64))
def test_round_trip(alg: str, data: bytes) -> None:
    d = Digest.from_bytes(data, alg)
    assert Digest.parse(str(d)) == d
    assert d.algorithm == alg
