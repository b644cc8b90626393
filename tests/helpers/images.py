"""Tiny in-memory test images, for any test that needs a real manifest/index with real blobs.

    cfg, manifest, blobs = make_image("linux/arm64", {"hello.txt": b"hi"})
    write_image(sink, manifest, blobs, media_type=OCI_MANIFEST)   # puts blobs + manifest, commits

Everything is deterministic (gzip mtime 0, fixed tar metadata), so equal inputs give equal
digests across runs. ``MemorySource`` serves such content as an ImageSource.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from xarch.errors import IntegrityError, NotFoundError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.transports.base import ImageSink


def make_layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed layer tar with the given regular files (sorted, fixed metadata)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(files):
            data = files[name]
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_layer(files: Mapping[str, bytes], *, compress: bool = True) -> tuple[bytes, Digest]:
    """(blob, diffID): the blob is gzip-compressed unless ``compress=False``."""
    tar = make_layer_tar(files)
    diff_id = Digest.from_bytes(tar)
    return (gzip.compress(tar, mtime=0) if compress else tar), diff_id


def _platform(p: Platform | str) -> Platform:
    return Platform.parse(p) if isinstance(p, str) else p


def make_image(
    platform: Platform | str,
    files: Mapping[str, bytes] | Sequence[Mapping[str, bytes]],
    *,
    media_type: str = mt.OCI_MANIFEST,
    compress: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> tuple[bytes, bytes, dict[Digest, bytes]]:
    """(config bytes, manifest bytes, blobs by digest — config and layers).

    ``files`` is one layer's files, or a sequence of them for several layers.
    """
    plat = _platform(platform)
    layer_files = [files] if isinstance(files, Mapping) else list(files)
    docker = media_type == mt.DOCKER_MANIFEST
    blobs: dict[Digest, bytes] = {}
    layers: list[Descriptor] = []
    diff_ids: list[str] = []
    for lf in layer_files:
        blob, diff_id = make_layer(lf, compress=compress)
        if docker:
            lmt = mt.DOCKER_LAYER_GZIP if compress else mt.DOCKER_LAYER
        else:
            lmt = mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER
        layers.append(Descriptor.of(lmt, blob))
        blobs[Digest.from_bytes(blob)] = blob
        diff_ids.append(str(diff_id))
    cfg_doc: dict[str, object] = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": plat.architecture,
        "os": plat.os,
    }
    if plat.variant:
        cfg_doc["variant"] = plat.variant
    cfg_doc["config"] = {"Env": ["PATH=/usr/bin:/bin"]}
    cfg_doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    cfg_doc["history"] = [
        {"created": "1970-01-01T00:00:00Z", "created_by": "test"} for _ in diff_ids
    ]
    cfg = ImageConfig.build(cfg_doc)
    cfg_mt = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
    blobs[cfg.digest] = cfg.raw
    manifest = Manifest.build(
        cfg.descriptor(cfg_mt), layers, media_type=media_type, annotations=annotations
    )
    return cfg.raw, manifest.raw, blobs


@dataclass
class ImageSet:
    """A root (manifest or index) plus every manifest and blob under it."""

    root: Descriptor
    manifests: dict[Digest, tuple[str, bytes]] = field(default_factory=dict)  # digest → (mt, raw)
    blobs: dict[Digest, bytes] = field(default_factory=dict)

    @property
    def root_raw(self) -> bytes:
        return self.manifests[self.root.digest][1]


def single_image(
    platform: Platform | str = "linux/amd64",
    files: Mapping[str, bytes] | Sequence[Mapping[str, bytes]] | None = None,
    *,
    media_type: str = mt.OCI_MANIFEST,
    compress: bool = True,
) -> ImageSet:
    files = files if files is not None else {"etc/hello": f"hello {platform}".encode()}
    _cfg, raw, blobs = make_image(platform, files, media_type=media_type, compress=compress)
    desc = Descriptor.of(media_type, raw)
    return ImageSet(desc, {desc.digest: (media_type, raw)}, dict(blobs))


def make_index(
    platforms: Sequence[Platform | str],
    *,
    media_type: str = mt.OCI_INDEX,
    files: Mapping[str, bytes] | None = None,
    compress: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> ImageSet:
    """A multi-platform image: one single-layer image per platform under an index.

    With ``media_type=DOCKER_MANIFEST_LIST`` the children are Docker schema2 manifests.
    """
    child_mt = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST_LIST else mt.OCI_MANIFEST
    out = ImageSet(Descriptor.of(media_type, b"{}"))
    entries: list[Descriptor] = []
    for p in platforms:
        plat = _platform(p)
        f = dict(files) if files is not None else {"etc/arch": str(plat).encode()}
        _cfg, raw, blobs = make_image(plat, f, media_type=child_mt, compress=compress)
        d = Descriptor.of(child_mt, raw, platform=plat)
        entries.append(d)
        out.manifests[d.digest] = (child_mt, raw)
        out.blobs.update(blobs)
    idx = Index.build(entries, media_type=media_type, annotations=annotations)
    out.root = idx.descriptor
    out.manifests[idx.digest] = (media_type, idx.raw)
    return out


def write_image(sink: ImageSink, image: ImageSet, *, commit: bool = True) -> Descriptor:
    """Put every blob and manifest of ``image`` into ``sink`` (children first), then commit."""
    for d, data in image.blobs.items():
        sink.put_blob(Descriptor("application/octet-stream", d, len(data)), [data])
    root_mt, root_raw = image.manifests[image.root.digest]
    for d, (m_type, raw) in image.manifests.items():
        if d != image.root.digest:
            sink.put_manifest(raw, m_type)
    sink.put_manifest(root_raw, root_mt, root=True)
    if commit:
        sink.commit()
    return image.root


class MemorySource:
    """An ImageSource over an ImageSet (optionally corrupting or failing chosen blobs)."""

    def __init__(
        self,
        image: ImageSet,
        *,
        name: str = "memory:test",
        corrupt: Iterable[Digest] = (),
        fail: Iterable[Digest] = (),
    ) -> None:
        self.image = image
        self.name = name
        self.corrupt = set(corrupt)
        self.fail = set(fail)
        self.opened: list[Digest] = []

    def resolve(self) -> Descriptor:
        return self.image.root

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        try:
            raw = self.image.manifests[desc.digest][1]
        except KeyError:
            raise NotFoundError(f"{self.name}: no manifest {desc.digest}") from None
        if not desc.digest.verify(raw):
            raise IntegrityError("bad manifest")
        return raw

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        self.opened.append(desc.digest)
        if desc.digest in self.fail:
            raise NotFoundError(f"{self.name}: blob {desc.digest} unavailable")
        try:
            data = self.image.blobs[desc.digest]
        except KeyError:
            raise NotFoundError(f"{self.name}: no blob {desc.digest}") from None
        if desc.digest in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return iter([data[: len(data) // 2], data[len(data) // 2 :]])

    def close(self) -> None:
        pass
