"""Content digests (``<algorithm>:<hex>``) as used by OCI descriptors.

Only the algorithms registries actually accept are supported (sha256, sha512); a digest is
validated when constructed, so holding a ``Digest`` means holding a well-formed one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from xarch.errors import InputError

if TYPE_CHECKING:
    from hashlib import _Hash

# Hex length per supported algorithm (go-digest's "encoded" form: lowercase hex only).
_HEX_LEN: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX_RE = re.compile(r"[0-9a-f]+")
# OCI descriptor grammar for the algorithm part (used only to word errors precisely).
_ALG_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")

SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_HEX_LEN)


def _check(s: object) -> str:
    if not isinstance(s, str):
        raise InputError(
            f"invalid digest {s!r}: expected a string like 'sha256:<64 hex characters>'"
        )
    alg, sep, hexpart = s.partition(":")
    if not sep:
        raise InputError(
            f"invalid digest {s!r}: missing ':' between algorithm and hex "
            "(expected 'sha256:<64 hex characters>')"
        )
    if not alg or not _ALG_RE.fullmatch(alg):
        raise InputError(f"invalid digest {s!r}: malformed algorithm {alg!r}")
    want = _HEX_LEN.get(alg)
    if want is None:
        raise InputError(
            f"invalid digest {s!r}: unsupported algorithm {alg!r} "
            f"(supported: {', '.join(sorted(_HEX_LEN))})"
        )
    if len(hexpart) != want:
        raise InputError(
            f"invalid digest {s!r}: expected {want} hex characters, got {len(hexpart)}"
        )
    if not _HEX_RE.fullmatch(hexpart):
        if _HEX_RE.fullmatch(hexpart.lower()):
            raise InputError(f"invalid digest {s!r}: hex must be lowercase")
        raise InputError(f"invalid digest {s!r}: expected {want} hex characters (0-9, a-f)")
    return s


class Digest(str):
    """A validated ``algorithm:hex`` digest; compares and hashes as the plain string."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if isinstance(value, Digest):
            return value if type(value) is cls else super().__new__(cls, value)
        return super().__new__(cls, _check(value))

    @classmethod
    def parse(cls, s: str) -> Digest:
        return cls(s)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(f"{algorithm}:{_new_hasher(algorithm)(data).hexdigest()}")

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    @property
    def encoded(self) -> str:
        """go-digest's name for the hex part."""
        return self.hex

    def hasher(self) -> _Hash:
        return _new_hasher(self.algorithm)()

    def verify(self, data: bytes) -> bool:
        h = self.hasher()
        h.update(data)
        # constant-time compare: cheap, and avoids any timing question for content checks
        return hmac.compare_digest(h.hexdigest(), self.hex)

    def __repr__(self) -> str:
        return f"Digest({str.__repr__(self)})"


def _new_hasher(algorithm: str) -> Callable[..., _Hash]:
    if algorithm not in _HEX_LEN:
        raise InputError(
            f"unsupported digest algorithm {algorithm!r} (supported: {', '.join(sorted(_HEX_LEN))})"
        )
    ctor: Callable[..., _Hash] = getattr(hashlib, algorithm)
    return ctor


class Digester:
    """Streaming digest computation that also counts bytes (for descriptor sizes)."""

    __slots__ = ("_algorithm", "_h", "_size")

    def __init__(self, algorithm: str = "sha256") -> None:
        self._algorithm = algorithm
        self._h = _new_hasher(algorithm)()
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self._size += len(data) if not isinstance(data, memoryview) else data.nbytes

    def digest(self) -> Digest:
        return Digest(f"{self._algorithm}:{self._h.hexdigest()}")

    @property
    def size(self) -> int:
        return self._size

    @property
    def algorithm(self) -> str:
        return self._algorithm
