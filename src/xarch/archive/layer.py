"""Entries → tar → compressed blob, in one pass."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xarch.archive.compress import BlobSink, LayerResult, LayerWriter
from xarch.archive.entry import TarEntry
from xarch.archive.tarwriter import TarWriter


def write_layer(
    entries: Iterable[TarEntry],
    dest: Path | BlobSink | None = None,
    *,
    compression: str = "gzip",
    level: int | None = None,
    oci_media_types: bool = True,
) -> LayerResult:
    """Write a layer blob from a changeset; the result carries blob digest, size and diffID.

    ``dest`` as in :class:`LayerWriter` (a Path is removed again if writing fails).
    """
    lw = LayerWriter(compression, level=level, oci_media_types=oci_media_types, dest=dest)
    with lw:
        tw = TarWriter(lw)
        for e in entries:
            tw.add(e)
        tw.close()
    return lw.result
