"""SBOMs for container images: catalogers over the layers' tar streams (whiteouts applied,
nothing unpacked), SPDX 2.3 JSON and CycloneDX 1.6 JSON output, one SBOM per platform."""

from __future__ import annotations

from xarch.attest.sbom.api import (
    FORMATS,
    Format,
    ManifestImageReader,
    catalog_image,
    generate_sbom,
    generate_sboms,
    render,
)
from xarch.attest.sbom.model import Catalog, ImageInfo, LayerRef, OSInfo, Package
from xarch.attest.sbom.walker import FileSystemView, ImageReader, walk_layers

__all__ = [
    "FORMATS",
    "Catalog",
    "FileSystemView",
    "Format",
    "ImageInfo",
    "ImageReader",
    "LayerRef",
    "ManifestImageReader",
    "OSInfo",
    "Package",
    "catalog_image",
    "generate_sbom",
    "generate_sboms",
    "render",
    "walk_layers",
]
