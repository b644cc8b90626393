"""Read-only views of an image over any ``ImageSource``: its root, and one platform's image.

``open_root`` fetches and verifies the root manifest or index a source names; ``open_platform``
selects the platform's image through ``xarch.image.select`` and fetches its manifest and config
(both verified against their digests). Raw bytes stay next to the parsed documents: digests are
over exact bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from xarch.errors import IntegrityError
from xarch.image.select import check_manifest_platform, image_entries, select
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform

MAX_CONFIG = 32 << 20  # configs are read into memory; anything larger is not a config


class BlobReader(Protocol):
    def open_blob(self, desc: Descriptor) -> Iterator[bytes]: ...


class ManifestReader(BlobReader, Protocol):
    """What the views need of an ``ImageSource`` (which satisfies it; image sits below
    transports, so it names only the verbs it uses)."""

    name: str

    def resolve(self) -> Descriptor: ...

    def fetch_manifest(self, desc: Descriptor) -> bytes: ...


@dataclass(frozen=True)
class RootView:
    """The manifest or index a reference names."""

    name: str
    descriptor: Descriptor
    raw: bytes
    doc: Manifest | Index

    @property
    def is_index(self) -> bool:
        return isinstance(self.doc, Index)


@dataclass(frozen=True)
class ImageView:
    """One platform's image: manifest and config, each with its exact bytes."""

    name: str
    descriptor: Descriptor  # of the platform manifest
    manifest: Manifest
    config: ImageConfig

    @property
    def platform(self) -> Platform:
        return self.config.platform

    @property
    def layers(self) -> tuple[tuple[Descriptor, Digest], ...]:
        """(layer descriptor, diff id) pairs, bottom first."""
        diff_ids = self.config.diff_ids
        if len(diff_ids) != len(self.manifest.layers):
            raise IntegrityError(
                f"{self.name}: {len(self.manifest.layers)} layers but {len(diff_ids)} diff_ids"
            )
        return tuple(zip(self.manifest.layers, diff_ids, strict=True))


def _verified(raw: bytes, desc: Descriptor, where: str, what: str) -> bytes:
    if len(raw) != desc.size or not desc.digest.verify(raw):
        raise IntegrityError(f"{where}: {what} {desc.digest} does not match its descriptor")
    return raw


def open_root(src: ManifestReader, desc: Descriptor | None = None) -> RootView:
    """The root ``src`` names (``desc`` when the caller resolved it already), verified."""
    d = desc if desc is not None else src.resolve()
    raw = _verified(src.fetch_manifest(d), d, src.name, "manifest")
    doc = parse_any(raw, d.media_type)
    return RootView(src.name, Descriptor(doc.media_type, d.digest, d.size), raw, doc)


def read_config(src: BlobReader, man: Manifest, where: str) -> ImageConfig:
    if man.config.size > MAX_CONFIG:
        raise IntegrityError(f"{where}: config of {man.config.size} bytes is implausibly large")
    raw = _verified(b"".join(src.open_blob(man.config)), man.config, where, "config")
    return ImageConfig.parse(raw)


def open_manifest(src: ManifestReader, desc: Descriptor, where: str) -> ImageView:
    """The image whose platform manifest is ``desc`` (no platform check)."""
    raw = _verified(src.fetch_manifest(desc), desc, where, "manifest")
    man = Manifest.parse(raw, desc.media_type)
    return ImageView(where, Descriptor(man.media_type, desc.digest, desc.size, platform=desc.platform),
                     man, read_config(src, man, where))


def platform_descriptor(root: RootView, want: Platform) -> Descriptor | None:
    """The platform manifest's descriptor when the root is an index (None for a manifest)."""
    if isinstance(root.doc, Index):
        return select(root.doc, want, root.name)
    return None


def open_platform(src: ManifestReader, root: RootView, want: Platform) -> ImageView:
    """``want``'s image of ``root``: selected from an index, or the lone manifest after its
    config's platform was checked against ``want``."""
    child = platform_descriptor(root, want)
    if child is not None:
        return open_manifest(src, child, root.name)
    assert isinstance(root.doc, Manifest)
    view = ImageView(root.name, root.descriptor, root.doc, read_config(src, root.doc, root.name))
    check_manifest_platform(view.platform, want, root.name)
    return view


def root_platforms(src: ManifestReader, root: RootView) -> list[tuple[Platform, Descriptor]]:
    """Every platform image of ``root`` (an index's image entries; a manifest's own config)."""
    if isinstance(root.doc, Index):
        return [(d.platform, d) for d in image_entries(root.doc) if d.platform is not None]
    cfg = read_config(src, root.doc, root.name)
    return [(cfg.platform, root.descriptor)]
