"""Pure OCI data model: digests, media types, platforms, descriptors, manifests, configs,
references and schema validation. No I/O happens here."""

from __future__ import annotations

from xarch.oci import mediatype
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor, FrozenMap
from xarch.oci.digest import Digest, Digester
from xarch.oci.manifest import Index, Manifest, canonical_json, parse_any
from xarch.oci.platform import Platform, host_platform
from xarch.oci.reference import Reference

__all__ = [
    "Descriptor",
    "Digest",
    "Digester",
    "FrozenMap",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "Reference",
    "canonical_json",
    "host_platform",
    "mediatype",
    "parse_any",
]
