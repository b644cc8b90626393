"""Generate SBOMs for an image: one per platform, never one for an index.

    sboms = generate_sboms("ghcr.io/org/app:1", fmt="cyclonedx-json")   # {Platform: bytes}
    one = generate_sbom(source, platform=Platform.parse("linux/arm64"))

An index yields one SBOM per platform image (buildx attestation manifests and other
``unknown/unknown`` entries are not images and are skipped). ``generate_sbom`` on an index
needs ``platform``. Every blob is verified against its digest before anything from it is used.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Literal

from xarch.attest.sbom import cyclonedx, spdx
from xarch.attest.sbom.catalogers import (
    MAX_NOTES,
    Cataloger,
    Context,
    default_catalogers,
    osrelease,
)
from xarch.attest.sbom.model import Catalog, ImageInfo, LayerRef
from xarch.attest.sbom.walker import ChunkReader, FileRequest, ImageReader, walk_layers
from xarch.content.store import ContentStore
from xarch.errors import InputError, IntegrityError, NotFoundError, UsageError
from xarch.image.select import is_attestation
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest, Digester
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.oci.reference import Reference
from xarch.transports.base import BlobFileOpener, ImageSource

Format = Literal["spdx-json", "cyclonedx-json"]
FORMATS: tuple[str, ...] = ("spdx-json", "cyclonedx-json")
MAX_CONFIG = 8 << 20
_ATTESTATION = "attestation-manifest"
_REF_TYPE = "vnd.docker.reference.type"

__all__ = [
    "FORMATS",
    "Format",
    "ManifestImageReader",
    "catalog_image",
    "generate_sbom",
    "generate_sboms",
    "render",
]


class ManifestImageReader:
    """An :class:`ImageReader` for one image manifest, reading blobs through ``opener``."""

    def __init__(
        self, manifest: Manifest, config: ImageConfig, opener: Callable[[Descriptor], BinaryIO]
    ) -> None:
        self.manifest = manifest
        self.config = config
        self._opener = opener
        diff_ids = config.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InputError(
                f"image {manifest.digest}: manifest has {len(manifest.layers)} layers but its "
                f"config lists {len(diff_ids)} diff_ids (corrupt image)"
            )
        for d in manifest.layers:
            if not mt.is_layer(d.media_type):
                raise InputError(
                    f"image {manifest.digest}: {d.media_type} is not a layer media type "
                    "(this is an artifact, not a container image)"
                )

    def layers(self) -> list[tuple[Descriptor, Digest]]:
        return list(zip(self.manifest.layers, self.config.diff_ids))

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._opener(desc)

    @classmethod
    def from_store(cls, store: ContentStore, manifest_raw: bytes) -> ManifestImageReader:
        """Over blobs of a local content store (they are verified while read)."""
        m = Manifest.parse(manifest_raw)
        cfg_raw = store.read_bytes(m.config)  # verified against digest and size
        return cls(m, _parse_config(cfg_raw, m), lambda d: store.open(d))  # type: ignore[arg-type,return-value]

    @classmethod
    def from_source(cls, source: ImageSource, desc: Descriptor) -> ManifestImageReader:
        """Over any transport's ImageSource (registry, layout, archive, store)."""
        raw = source.fetch_manifest(desc)
        if len(raw) != desc.size or not desc.digest.verify(raw):
            raise IntegrityError(f"{source.name}: manifest {desc.digest} does not match its digest")
        m = Manifest.parse(raw, desc.media_type)
        cfg_raw = _read_blob(source, m.config, MAX_CONFIG)
        return cls(m, _parse_config(cfg_raw, m), lambda d: _open_source_blob(source, d))


def _open_source_blob(source: ImageSource, desc: Descriptor) -> BinaryIO:
    if isinstance(source, BlobFileOpener):  # a file: the walker reads into its own buffers
        return source.open_blob_file(desc)
    return io.BufferedReader(ChunkReader(iter(source.open_blob(desc))), 1 << 20)


def _read_blob(source: ImageSource, desc: Descriptor, limit: int) -> bytes:
    if desc.size > limit:
        raise InputError(f"{source.name}: blob {desc.digest} is too large ({desc.size} bytes)")
    dg = Digester(desc.digest.algorithm)
    parts: list[bytes] = []
    for chunk in source.open_blob(desc):
        dg.update(chunk)
        if dg.size > desc.size:
            break
        parts.append(chunk)
    if dg.size != desc.size or dg.digest() != desc.digest:
        raise IntegrityError(f"{source.name}: blob {desc.digest} does not match its digest")
    return b"".join(parts)


def _parse_config(raw: bytes, m: Manifest) -> ImageConfig:
    if not mt.is_config(m.config.media_type):
        raise InputError(
            f"image {m.digest}: config media type {m.config.media_type} is not an image config "
            "(this is an artifact, not a container image)"
        )
    return ImageConfig.parse(raw)


def catalog_image(
    reader: ImageReader, image: ImageInfo, catalogers: Sequence[Cataloger] | None = None
) -> Catalog:
    """Walk the image once and run every cataloger over the visible filesystem."""
    cats = tuple(catalogers) if catalogers is not None else tuple(default_catalogers())
    requests: list[FileRequest] = [osrelease.REQUEST]
    for c in cats:
        requests.extend(c.requests)
    scanners = [c.scanner for c in cats if c.scanner is not None]
    notes: list[str] = []
    fs = walk_layers(reader, requests, scanners, notes=notes)
    ctx = Context(os=osrelease.detect_os(fs), notes=notes)
    pkgs = []
    for c in cats:
        pkgs.extend(c.catalog(fs, ctx))
    layers = image.layers or fs.layers
    return Catalog(
        image=ImageInfo(
            name=image.name,
            digest=image.digest,
            platform=image.platform,
            config_digest=image.config_digest,
            created=image.created,
            layers=tuple(layers),
            reference=image.reference,
        ),
        os=ctx.os,
        packages=tuple(sorted(pkgs, key=lambda p: p.sort_key())),
        notes=tuple(sorted(set(ctx.notes))[:MAX_NOTES]),
    )


def render(catalog: Catalog, fmt: str, *, created: str | None = None) -> bytes:
    if fmt == "spdx-json":
        return spdx.render(catalog, created=created)
    if fmt == "cyclonedx-json":
        return cyclonedx.render(catalog, created=created)
    raise UsageError(f"unknown SBOM format {fmt!r}", hint="use spdx-json or cyclonedx-json")


def _image_name(label: str) -> tuple[str, str | None]:
    """(name for the SBOM, full reference when the source is a registry/store image)."""
    for prefix in ("docker://", "store:"):
        if label.startswith(prefix):
            with contextlib.suppress(InputError):
                ref = Reference.parse(label[len(prefix) :])
                return f"{ref.registry}/{ref.repository}", str(ref)
    return label, None


def _platform_images(
    source: ImageSource, desc: Descriptor, depth: int = 0
) -> Iterator[tuple[Platform | None, Descriptor]]:
    if mt.is_manifest(desc.media_type):
        yield None, desc
        return
    if not mt.is_index(desc.media_type) or depth > 4:
        raise InputError(f"{source.name}: {desc.media_type} is not an image manifest or index")
    raw = source.fetch_manifest(desc)
    if len(raw) != desc.size or not desc.digest.verify(raw):
        raise IntegrityError(f"{source.name}: index {desc.digest} does not match its digest")
    doc = parse_any(raw, desc.media_type)
    if isinstance(doc, Manifest):
        yield None, desc.replace(media_type=doc.media_type)
        return
    assert isinstance(doc, Index)
    for child in doc.manifests:
        if child.annotations.get(_REF_TYPE) == _ATTESTATION or is_attestation(child):
            continue
        if mt.is_index(child.media_type):
            yield from _platform_images(source, child, depth + 1)
            continue
        if not mt.is_manifest(child.media_type):
            continue
        p = child.platform
        if p is not None and p.architecture == "unknown":
            continue
        yield (p.normalize() if p is not None else None), child


def _generate(
    source: ImageSource,
    platforms: Sequence[Platform] | None,
    fmt: str,
    created: str | None,
    catalogers: Sequence[Cataloger] | None,
    name: str | None,
) -> dict[Platform, bytes]:
    if fmt not in FORMATS:
        raise UsageError(f"unknown SBOM format {fmt!r}", hint="use spdx-json or cyclonedx-json")
    root = source.resolve()
    label, reference = _image_name(source.name)
    if name is not None:
        label = name
    wanted = [p.normalize() for p in platforms] if platforms else None
    out: dict[Platform, bytes] = {}
    found: list[Platform] = []
    for declared, desc in _platform_images(source, root):
        if declared is not None and (
            declared in out or (wanted is not None and not any(w.matches(declared) for w in wanted))
        ):
            found.append(declared)
            continue  # not asked for: do not even fetch its config
        reader = ManifestImageReader.from_source(source, desc)
        plat = declared or reader.config.platform.normalize()
        found.append(plat)
        if plat in out:
            continue
        if wanted is not None and not any(w.matches(plat) for w in wanted):
            continue
        cfg = reader.config
        created_cfg = cfg.data.get("created")
        info = ImageInfo(
            name=label,
            digest=desc.digest,
            platform=plat,
            config_digest=reader.manifest.config.digest,
            created=created_cfg if isinstance(created_cfg, str) else None,
            layers=tuple(
                LayerRef(i, d.digest, diff) for i, (d, diff) in enumerate(reader.layers())
            ),
            reference=reference,
        )
        out[plat] = render(catalog_image(reader, info, catalogers), fmt, created=created)
    if wanted is not None:
        for w in wanted:
            if not any(w.matches(p) for p in out):
                have = ", ".join(sorted({str(p) for p in found})) or "none"
                raise NotFoundError(f"{source.name}: no image for platform {w} (available: {have})")
    if not out:
        raise NotFoundError(f"{source.name}: no container image found (only artifacts?)")
    return out


def _with_source(
    source: ImageSource | str, registry_options: Any, store: Any
) -> contextlib.AbstractContextManager[ImageSource]:
    if not isinstance(source, str):
        return contextlib.nullcontext(source)
    from xarch.transports.resolve import open_source, parse_location

    loc = parse_location(source, default_store=store, registry_options=registry_options)

    @contextlib.contextmanager
    def opened() -> Iterator[ImageSource]:
        src = open_source(loc)
        try:
            yield src
        finally:
            src.close()

    return opened()


def generate_sboms(
    source: ImageSource | str,
    *,
    platforms: Sequence[Platform] | None = None,
    fmt: str = "spdx-json",
    created: str | None = None,
    registry_options: Any = None,
    store: Any = None,
    catalogers: Sequence[Cataloger] | None = None,
    name: str | None = None,
) -> dict[Platform, bytes]:
    """One SBOM per platform image of ``source`` (an ImageSource or a location string such as
    ``ghcr.io/org/app:1``, ``oci:DIR:TAG``, ``store:NAME``). ``platforms`` restricts the set
    (each must exist). ``created`` overrides the timestamp (default: the config's "created").
    """
    with _with_source(source, registry_options, store) as src:
        return _generate(src, platforms, fmt, created, catalogers, name)


def generate_sbom(
    source: ImageSource | str,
    *,
    platform: Platform | None = None,
    fmt: str = "spdx-json",
    created: str | None = None,
    registry_options: Any = None,
    store: Any = None,
    catalogers: Sequence[Cataloger] | None = None,
    name: str | None = None,
) -> bytes:
    """The SBOM of one platform's image. For a multi-platform index ``platform`` is required
    (an SBOM always describes one platform's image, never the index)."""
    with _with_source(source, registry_options, store) as src:
        if platform is None:
            root = src.resolve()
            images = list(_platform_images(src, root))
            if len(images) > 1:
                have = ", ".join(sorted({str(p) for p, _ in images if p is not None}))
                raise UsageError(
                    f"{src.name} is a multi-platform image ({have})",
                    hint="choose one with --platform, or generate one SBOM per platform",
                )
        result = _generate(
            src, [platform] if platform is not None else None, fmt, created, catalogers, name
        )
    if platform is not None:
        for p, data in result.items():
            if platform.matches(p):
                return data
    return next(iter(result.values()))
