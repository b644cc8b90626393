"""Pieces shared by the benchmarks that write a synthetic image into an OCI layout
(sbom.py, sbom_vs_copy.py): tar members, a finished layer into the store, the image on top."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

from xarch.archive.compress import LayerWriter
from xarch.content.store import REF_NAME, ContentStore
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest

CHUNK = 1 << 20


def add_file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    tf.addfile(ti, io.BytesIO(data))


def store_layer(store: ContentStore, w: LayerWriter, tmp: Path) -> tuple[Descriptor, str]:
    """Close ``w`` (writing to ``tmp``), move the blob into ``store``: (descriptor, diffID)."""
    res = w.close()
    desc = Descriptor(res.media_type, res.blob_digest, res.size)
    with tmp.open("rb") as f:
        store.ingest(desc, iter(lambda f=f: f.read(CHUNK), b""))  # type: ignore[misc]
    tmp.unlink()
    return desc, str(res.diff_id)


def commit_image(
    store: ContentStore, layers: Sequence[Descriptor], diff_ids: Sequence[str], tag: str
) -> Descriptor:
    """Config and manifest (linux/amd64, fixed date) over ``layers``, tagged ``tag`` as the
    layout's only image: the manifest's descriptor."""
    cfg = ImageConfig.build(
        {"created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}
    )  # fmt: skip
    store.ingest_bytes(cfg.raw)
    m = Manifest.build(cfg.descriptor(), list(layers))
    store.ingest_bytes(m.raw)
    top = Descriptor(mt.OCI_MANIFEST, m.digest, len(m.raw), annotations={REF_NAME: tag})
    store.update_index(lambda _old: [top])
    return top
