"""OCI content descriptors."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from xarch.errors import InputError
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform


class FrozenMap(Mapping[str, str]):
    """Immutable, hashable str→str mapping (annotations); keeps insertion order for JSON output."""

    __slots__ = ("_d", "_h")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._d: dict[str, str] = dict(items or {})
        self._h: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


_EMPTY = FrozenMap()
# image-spec defs-descriptor.json mediaType pattern (RFC 6838 restricted names).
MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
MAX_SIZE = 2**63 - 1


def freeze_annotations(a: Mapping[str, str] | None, where: str = "annotations") -> FrozenMap:
    """Validate and freeze a string→string mapping (read-only, insertion order kept)."""
    if isinstance(a, FrozenMap):
        return a
    if not isinstance(a, Mapping) and a is not None:
        raise InputError(f"invalid {where}: expected a JSON object of strings")
    if not a:
        return _EMPTY
    for k, v in a.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InputError(f"invalid {where}: value of {k!r} must be a string, got {v!r}")
    return FrozenMap(a)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default=_EMPTY)
    platform: Platform | None = None
    artifact_type: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        # Coerce so callers may pass plain str/list/dict; frozen → object.__setattr__.
        if not isinstance(self.digest, Digest):
            object.__setattr__(self, "digest", Digest(self.digest))
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= MAX_SIZE
        ):
            raise InputError(
                f"invalid descriptor size {self.size!r}: expected a non-negative integer"
            )
        if not isinstance(self.media_type, str) or not self.media_type:
            raise InputError("invalid descriptor: mediaType must be a non-empty string")
        if not isinstance(self.urls, tuple):
            object.__setattr__(self, "urls", tuple(self.urls))
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", freeze_annotations(self.annotations))

    def to_json(self) -> dict[str, Any]:
        # Field order of image-spec specs-go/v1 Descriptor, so our bytes equal Go tools' bytes.
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            # Go's encoding/json writes map keys sorted; match it for byte-identical output.
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Descriptor:
        if not isinstance(d, Mapping):
            raise InputError("invalid descriptor: expected a JSON object")
        mt = d.get("mediaType")
        if not isinstance(mt, str) or not mt:
            raise InputError("invalid descriptor: 'mediaType' must be a non-empty string")
        dg = d.get("digest")
        if not isinstance(dg, str):
            raise InputError(f"invalid descriptor ({mt}): 'digest' must be a string")
        digest = Digest.parse(dg)
        size = d.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError(
                f"invalid descriptor {dg}: 'size' must be a non-negative integer, got {size!r}"
            )
        urls = d.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InputError(f"invalid descriptor {dg}: 'urls' must be an array of strings")
        annotations = freeze_annotations(d.get("annotations"), f"descriptor {dg} annotations")
        platform = None
        if d.get("platform") is not None:
            platform = Platform.from_json(d["platform"])
        at = d.get("artifactType")
        if at is not None and not isinstance(at, str):
            raise InputError(f"invalid descriptor {dg}: 'artifactType' must be a string")
        data = None
        if d.get("data") is not None:
            raw = d["data"]
            if not isinstance(raw, str):
                raise InputError(f"invalid descriptor {dg}: 'data' must be a base64 string")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as e:
                raise InputError(
                    f"invalid descriptor {dg}: 'data' is not valid base64 ({e})"
                ) from None
            # Embedded data is content like any blob: never trust it unless it matches the digest.
            if len(data) != size or not digest.verify(data):
                raise InputError(
                    f"invalid descriptor {dg}: embedded 'data' does not match its digest/size"
                )
        return cls(mt, digest, size, tuple(urls), annotations, platform, at or None, data)

    @classmethod
    def of(
        cls,
        media_type: str,
        data: bytes,
        *,
        algorithm: str = "sha256",
        urls: tuple[str, ...] = (),
        annotations: Mapping[str, str] | None = None,
        platform: Platform | None = None,
        artifact_type: str | None = None,
        embed: bool = False,
    ) -> Descriptor:
        """Descriptor for in-memory bytes; ``embed=True`` also stores them in ``data``."""
        return cls(
            media_type,
            Digest.from_bytes(data, algorithm),
            len(data),
            tuple(urls),
            freeze_annotations(annotations),
            platform,
            artifact_type,
            bytes(data) if embed else None,
        )

    def replace(self, **changes: Any) -> Descriptor:
        """Copy with fields changed (dataclasses.replace, re-validated)."""
        from dataclasses import replace

        return replace(self, **changes)
