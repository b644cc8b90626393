"""The SBOM data model: what catalogers find, independent of any output format."""

from __future__ import annotations

from dataclasses import dataclass, field

from xarch.oci.digest import Digest
from xarch.oci.platform import Platform

# Package types; also the purl type each maps to.
DEB = "deb"
APK = "apk"
RPM = "rpm"
PYPI = "pypi"
NPM = "npm"
GOLANG = "golang"


@dataclass(frozen=True, order=True)
class LayerRef:
    """One layer of the image: its position, blob digest and uncompressed diffID."""

    index: int
    digest: Digest
    diff_id: Digest


@dataclass(frozen=True)
class OSInfo:
    """The distribution, from ``/etc/os-release`` (or ``/usr/lib/os-release``)."""

    id: str
    version_id: str = ""
    pretty_name: str = ""
    version_codename: str = ""
    id_like: tuple[str, ...] = ()
    name: str = ""
    path: str = ""
    layer: LayerRef | None = None

    @property
    def distro(self) -> str:
        """The purl ``distro`` qualifier value, e.g. ``debian-12`` (syft's convention)."""
        v = self.version_id or self.version_codename
        return f"{self.id}-{v}" if v else self.id


@dataclass(frozen=True)
class Package:
    """A software package found in the image."""

    name: str
    version: str
    type: str  # DEB, APK, ... (the purl type)
    purl: str
    cataloger: str
    licenses: tuple[str, ...] = ()  # declared licences as found (not yet SPDX-normalised)
    layer: LayerRef | None = None  # the layer that introduced it (as far as can be told)
    paths: tuple[str, ...] = ()  # where the evidence was found (absolute paths)
    # Extra facts (sorted key/value pairs): source package, architecture, Go version...
    metadata: tuple[tuple[str, str], ...] = ()

    def sort_key(self) -> tuple[str, str, str, tuple[str, ...]]:
        return (self.type, self.name, self.purl, self.paths)


@dataclass(frozen=True)
class ImageInfo:
    """The image an SBOM describes: one platform's manifest."""

    name: str  # human label / repository, e.g. "docker.io/library/debian"
    digest: Digest  # manifest digest
    platform: Platform
    config_digest: Digest
    created: str | None = None  # image config "created" (RFC 3339)
    layers: tuple[LayerRef, ...] = ()
    reference: str | None = None  # full reference when known (registry images)


@dataclass(frozen=True)
class Catalog:
    """Everything found in one image (one platform)."""

    image: ImageInfo
    os: OSInfo | None
    packages: tuple[Package, ...]
    notes: tuple[str, ...] = field(default=())  # things skipped or not understood
