"""Write a changeset straight into the content store as a layer blob, in one pass."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from xarch.archive.compress import LayerResult
from xarch.archive.entry import TarEntry
from xarch.archive.layer import write_layer
from xarch.content.store import FILE_MODE, ContentStore
from xarch.oci.descriptor import Descriptor


def store_layer(
    store: ContentStore,
    entries: Iterable[TarEntry],
    *,
    compression: str = "gzip",
    oci_media_types: bool = True,
) -> tuple[Descriptor, LayerResult]:
    """Tar + compress ``entries`` into a temp file of the store, then rename it into place.

    The blob digest was computed over exactly the bytes written, so the file can be adopted
    without re-reading it; fsync before the rename keeps a crash from leaving a torn blob.
    """
    store.ingest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="layer-", dir=store.ingest_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            res = write_layer(entries, f, compression=compression, oci_media_types=oci_media_types)
            f.flush()
            os.fsync(f.fileno())
        final = store.path(res.blob_digest)
        if store.has(res.blob_digest):
            os.unlink(tmp)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    desc = Descriptor(media_type=res.media_type, digest=res.blob_digest, size=res.size)
    return desc, res
