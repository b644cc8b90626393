"""Issue 11: a layer that inflates without limit (gzip/zstd bomb) is refused while it is read.

Every reader of layer content goes through ``decompress_stream``; these tests drive it with
small limits and crafted bombs, and check that the defaults guard ``apply_layer`` (the
worker's layer extraction) and the SBOM walker without being told to.
"""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path

import pytest
import zstandard

from xarch.archive.apply import apply_layer
from xarch.archive.compress import (
    DEFAULT_EXPANSION_LIMITS,
    NO_EXPANSION_LIMITS,
    ExpansionError,
    ExpansionLimits,
    compress_stream,
    decompress_stream,
)
from xarch.errors import IntegrityError, UsageError

MiB = 1 << 20


def _gzip_bomb(mib: int = 100) -> bytes:
    """``mib`` MiB of zeros as repeated 1 MiB gzip members (~1 KB each; gunzip reads on
    across members, as it must for real multi-member layers)."""
    return gzip.compress(bytes(MiB), 9, mtime=0) * mib


def _zstd_bomb(mib: int) -> bytes:
    """``mib`` MiB of zeros as repeated 1 MiB zstd frames (~20 bytes each)."""
    frame = zstandard.ZstdCompressor(level=1).compress(bytes(MiB))
    return frame * mib


def _drain(f: io.BufferedIOBase | object) -> int:
    n = 0
    while chunk := f.read(MiB):  # type: ignore[attr-defined]
        n += len(chunk)
    return n


def test_gzip_bomb_stops_at_the_size_cap() -> None:
    bomb = _gzip_bomb(4096)
    assert len(bomb) < 5 * MiB  # 4 GiB of zeros from ~4 MB
    src = io.BytesIO(bomb)
    f = decompress_stream(src, limits=ExpansionLimits(max_size=10 * MiB))
    got = 0
    with pytest.raises(ExpansionError) as ei:
        while chunk := f.read(MiB):
            got += len(chunk)
    assert got <= 10 * MiB  # nothing past the cap is ever handed out
    assert src.tell() <= 2 * MiB  # stopped early (read-ahead only), not after inflating it all
    msg = str(ei.value)
    assert "expands past 10485760 bytes" in msg and "refusing" in msg
    assert "max_size" in msg  # says how to raise it
    assert isinstance(ei.value, IntegrityError)


def test_zstd_bomb_stops_at_the_ratio_once_past_the_floor() -> None:
    bomb = _zstd_bomb(64)
    lim = ExpansionLimits(max_size=None, max_ratio=100, ratio_floor=4 * MiB)
    f = decompress_stream(io.BytesIO(bomb), limits=lim)
    with pytest.raises(ExpansionError, match=r"expands past 100:1 .*refusing"):
        _drain(f)


def test_ratio_is_not_judged_below_the_floor() -> None:
    # a small, very compressible layer (an empty file tree, a zero-filled file) is fine
    bomb = _zstd_bomb(8)
    lim = ExpansionLimits(max_size=None, max_ratio=100, ratio_floor=16 * MiB)
    assert _drain(decompress_stream(io.BytesIO(bomb), limits=lim)) == 8 * MiB


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_ordinary_layers_read_unchanged_under_tight_limits(compression: str) -> None:
    import os

    data = os.urandom(3 * MiB) + b"layer" * 200_000
    blob = compress_stream(io.BytesIO(data), compression).data
    assert blob is not None
    lim = ExpansionLimits(max_size=len(data), max_ratio=50, ratio_floor=MiB)
    assert decompress_stream(io.BytesIO(blob), limits=lim).read() == data
    with pytest.raises(ExpansionError):  # one byte less and even a plain layer is refused
        decompress_stream(io.BytesIO(blob), limits=ExpansionLimits(max_size=len(data) - 1)).read()


def test_a_store_blob_is_named_by_its_digest(tmp_path: Path) -> None:
    bomb = _gzip_bomb(8)
    hexd = "ab" * 32
    p = tmp_path / "blobs" / "sha256" / hexd
    p.parent.mkdir(parents=True)
    p.write_bytes(bomb)
    with p.open("rb") as fh, pytest.raises(ExpansionError, match=f"layer sha256:{hexd} expands"):
        _drain(decompress_stream(fh, limits=ExpansionLimits(max_size=MiB)))
    with pytest.raises(ExpansionError, match=r"^blob X expands"):
        _drain(decompress_stream(io.BytesIO(bomb), limits=ExpansionLimits(max_size=MiB),
                                 what="blob X"))  # fmt: skip


def test_no_limits_reads_everything() -> None:
    assert _drain(decompress_stream(io.BytesIO(_gzip_bomb(20)), limits=NO_EXPANSION_LIMITS)) == (
        20 * MiB
    )


def test_limits_are_validated() -> None:
    with pytest.raises(UsageError):
        ExpansionLimits(max_ratio=0.5)
    with pytest.raises(UsageError):
        ExpansionLimits(max_size=-1)


def test_defaults_are_generous_for_real_layers() -> None:
    assert DEFAULT_EXPANSION_LIMITS.max_size == 64 << 30
    assert DEFAULT_EXPANSION_LIMITS.max_ratio == 1000
    assert DEFAULT_EXPANSION_LIMITS.ratio_floor == 1 << 30


def test_apply_layer_refuses_a_bomb_by_default(tmp_path: Path) -> None:
    """The worker's extraction (apply_layer, no limits passed) is guarded by the defaults: a
    77 KB zstd layer of 1.5 GiB of zeros (a valid empty tar with enormous padding, which apply
    reads to the end to hash it) is refused after 1 GiB instead of being read to the end."""
    bomb = _zstd_bomb(1536)
    assert len(bomb) < 100_000
    root = tmp_path / "root"
    root.mkdir()
    t0 = time.monotonic()
    with pytest.raises(ExpansionError, match="expands past 1000:1"):
        apply_layer(io.BytesIO(bomb), root, mode="flatten")
    assert time.monotonic() - t0 < 30
    assert list(root.iterdir()) == []
