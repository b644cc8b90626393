"""The one platform selector: which image of an index (or a lone manifest) serves a platform.

Every caller that picks a platform child (copy, inspect, the build's base resolver, run/test,
sbom) asks here, so they agree. The rules:

* index entries match by their descriptor's platform, strictly (``Platform.matches``: no
  arm/v6 for an arm/v7 request); the first match in index order wins, as containerd's
  ``images.Manifest`` does for equally good candidates;
* attestation manifests (buildx's ``unknown/unknown`` entries that point at an image through
  ``vnd.docker.reference.digest``) are never a platform's image;
* a single-platform manifest serves only the platform its config declares: a mismatch is an
  error that names both, never a silent fallback (an arm64 build on an amd64 base is the
  worst thing a multi-architecture builder can produce).
"""

from __future__ import annotations

from collections.abc import Sequence

from xarch.errors import NotFoundError
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index
from xarch.oci.platform import Platform

REFERENCE_DIGEST = "vnd.docker.reference.digest"


def is_attestation(d: Descriptor) -> bool:
    """A buildx attestation manifest (or any entry whose platform is unknown/unknown)."""
    if REFERENCE_DIGEST in d.annotations:
        return True
    return d.platform is not None and d.platform.os == "unknown"


def image_entries(index: Index) -> list[Descriptor]:
    """The entries of ``index`` that are platform images (not attestations, not untyped)."""
    return [d for d in index.manifests if d.platform is not None and not is_attestation(d)]


def available(index: Index) -> str:
    """The platforms an index offers, for error messages (sorted, de-duplicated)."""
    return ", ".join(sorted({str(d.platform) for d in image_entries(index)})) or "none"


def match(entries: Sequence[Descriptor], want: Platform) -> Descriptor | None:
    """The first entry serving ``want`` (entries without a platform never match)."""
    for d in entries:
        if d.platform is not None and not is_attestation(d) and want.matches(d.platform):
            return d
    return None


def select(index: Index, want: Platform, where: str) -> Descriptor:
    """The entry of ``index`` for ``want``; NotFoundError naming what the index has."""
    found = match(index.manifests, want)
    if found is None:
        raise NotFoundError(
            f"{where}: no image for platform {want} (available: {available(index)})",
            hint="pick one of the available platforms, or build the base for this one",
        )
    return found


def check_manifest_platform(have: Platform, want: Platform, where: str) -> None:
    """A single-platform manifest for ``want``: its config must declare a matching platform."""
    if not want.matches(have):
        raise NotFoundError(
            f"{where}: image is for {have.normalize()}, not {want}",
            hint="use a multi-platform image (index), or one built for this platform",
        )
