"""Image configuration (OCI image config / Docker container image v1 JSON)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import _jtype, canonical_json, load_json_object
from xarch.oci.platform import Platform

_WHAT = "image config"

# Top-level key order of image-spec specs-go/v1 Image (Platform is inlined in Go), used by
# ``ordered`` so configs xarch writes look like the ones Go tools write.
CONFIG_KEY_ORDER: tuple[str, ...] = (
    "created",
    "author",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "config",
    "rootfs",
    "history",
)


# specs-go/v1 ImageConfig, then the Docker-only fields BuildKit's DockerOCIImageConfig appends.
RUNTIME_CONFIG_KEY_ORDER: tuple[str, ...] = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)
ROOTFS_KEY_ORDER: tuple[str, ...] = ("type", "diff_ids")
HISTORY_KEY_ORDER: tuple[str, ...] = ("created", "created_by", "author", "comment", "empty_layer")
_MAP_KEYS = ("ExposedPorts", "Volumes", "Labels")  # Go maps: marshalled with sorted keys


def _order(d: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {k: d[k] for k in keys if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def ordered(data: Mapping[str, Any]) -> dict[str, Any]:
    """Deep copy of ``data`` laid out like Go's encoding/json of the spec structs: known keys in
    struct order (unknown keys after, as given) and Go-map fields with sorted keys."""
    out = _order(copy.deepcopy(dict(data)), CONFIG_KEY_ORDER)
    cfg = out.get("config")
    if isinstance(cfg, dict):
        cfg = _order(cfg, RUNTIME_CONFIG_KEY_ORDER)
        for k in _MAP_KEYS:
            if isinstance(cfg.get(k), dict):
                cfg[k] = dict(sorted(cfg[k].items()))
        out["config"] = cfg
    if isinstance(out.get("rootfs"), dict):
        out["rootfs"] = _order(out["rootfs"], ROOTFS_KEY_ORDER)
    if isinstance(out.get("history"), list):
        out["history"] = [
            _order(h, HISTORY_KEY_ORDER) if isinstance(h, dict) else h for h in out["history"]
        ]
    return out


def _check(doc: Mapping[str, Any]) -> tuple[Digest, ...]:
    for key in ("architecture", "os"):
        v = doc.get(key)
        if key not in doc:
            raise InputError(f"invalid {_WHAT}: missing required field '{key}'")
        if not isinstance(v, str):
            raise InputError(f"invalid {_WHAT}: '{key}' must be a string, got {_jtype(v)}")
    for key in ("variant", "os.version", "created", "author"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            raise InputError(f"invalid {_WHAT}: '{key}' must be a string, got {_jtype(doc[key])}")
    feats = doc.get("os.features")
    if feats is not None and (
        not isinstance(feats, list) or not all(isinstance(f, str) for f in feats)
    ):
        raise InputError(f"invalid {_WHAT}: 'os.features' must be an array of strings")
    cfg = doc.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise InputError(f"invalid {_WHAT}: 'config' must be an object, got {_jtype(cfg)}")
    rootfs = doc.get("rootfs")
    if rootfs is None:
        raise InputError(f"invalid {_WHAT}: missing required field 'rootfs'")
    if not isinstance(rootfs, dict):
        raise InputError(f"invalid {_WHAT}: 'rootfs' must be an object, got {_jtype(rootfs)}")
    if rootfs.get("type") != "layers":
        raise InputError(
            f'invalid {_WHAT}: rootfs.type must be "layers", got {rootfs.get("type")!r}'
        )
    ids = rootfs.get("diff_ids")
    if ids is None:
        # moby omits diff_ids (omitempty) for layerless images; Go decodes absent/null as empty.
        ids = []
    if not isinstance(ids, list):
        raise InputError(f"invalid {_WHAT}: rootfs.diff_ids must be an array, got {_jtype(ids)}")
    out = []
    for i, d in enumerate(ids):
        if not isinstance(d, str):
            raise InputError(f"invalid {_WHAT}: rootfs.diff_ids[{i}] must be a string")
        try:
            out.append(Digest.parse(d))
        except InputError as e:
            raise InputError(f"invalid {_WHAT}: rootfs.diff_ids[{i}]: {e.message}") from None
    hist = doc.get("history")
    if hist is not None and (
        not isinstance(hist, list) or not all(isinstance(h, dict) for h in hist)
    ):
        raise InputError(f"invalid {_WHAT}: 'history' must be an array of objects")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class ImageConfig:
    raw: bytes
    data: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        doc = load_json_object(raw, _WHAT)
        _check(doc)
        return cls(bytes(raw), MappingProxyType(doc))

    @classmethod
    def build(cls, data: Mapping[str, Any]) -> ImageConfig:
        """Serialise ``data`` (key order as given; see ``ordered``) after checking it."""
        doc = copy.deepcopy(dict(data))
        _check(doc)
        raw = canonical_json(doc)
        return cls(raw, MappingProxyType(load_json_object(raw, _WHAT)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageConfig):
            return NotImplemented
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @cached_property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.raw)

    def descriptor(self, media_type: str = mt.OCI_CONFIG) -> Descriptor:
        return Descriptor(media_type, self.digest, len(self.raw))

    @property
    def platform(self) -> Platform:
        """Platform as recorded in the config (not normalized)."""
        d = self.data
        return Platform(
            os=d["os"],
            architecture=d["architecture"],
            variant=d.get("variant") or "",
            os_version=d.get("os.version") or "",
            os_features=tuple(d.get("os.features") or ()),
        )

    @cached_property
    def diff_ids(self) -> tuple[Digest, ...]:
        return _check(self.data)

    @property
    def history(self) -> list[dict[str, Any]]:
        """A copy (mutating it does not change this config)."""
        return copy.deepcopy(list(self.data.get("history") or []))

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the runtime "config" object ({} when absent or null)."""
        return copy.deepcopy(dict(self.data.get("config") or {}))

    def to_dict(self) -> dict[str, Any]:
        """A mutable deep copy of the whole document, for deriving a new config."""
        return copy.deepcopy(dict(self.data))
