"""Layer tarballs: deterministic writing, changesets (diff), safe application, compression.

Public API (import from here)::

    TarEntry, EntryType                       one changeset member
    entries_from_tree(root, source_date_epoch=None)       whole tree → entries
    diff_overlay_upper(upper, ...) / diff_trees(lower, upper, ...)   changesets
    TarWriter(out) / write_tar(entries, out)  deterministic tar bytes
    LayerWriter / compress_stream / write_layer → LayerResult(blob_digest, size, diff_id, ...)
    decompress_stream(fileobj)                gzip / zstd / plain by magic
    apply_layer(stream, root, mode="flatten"|"overlay", diff_id=None) → ApplyResult
    safe_join(root, name) / clean_name(name)  root-scoped path resolution
"""

from __future__ import annotations

from xarch.archive.apply import ApplyResult, apply_layer
from xarch.archive.compress import (
    LayerResult,
    LayerWriter,
    compress_stream,
    decompress_stream,
    detect_compression,
    gzip_header,
    layer_media_type,
)
from xarch.archive.diff import diff_overlay_upper, diff_trees
from xarch.archive.entry import EntryType, TarEntry
from xarch.archive.layer import write_layer
from xarch.archive.safepath import UnsafePathError, clean_name, safe_join
from xarch.archive.tarwriter import TarWriter, clamp_mtime, entries_from_tree, write_tar

__all__ = [
    "ApplyResult",
    "EntryType",
    "LayerResult",
    "LayerWriter",
    "TarEntry",
    "TarWriter",
    "UnsafePathError",
    "apply_layer",
    "clamp_mtime",
    "clean_name",
    "compress_stream",
    "decompress_stream",
    "detect_compression",
    "diff_overlay_upper",
    "diff_trees",
    "entries_from_tree",
    "gzip_header",
    "layer_media_type",
    "safe_join",
    "write_layer",
    "write_tar",
]
