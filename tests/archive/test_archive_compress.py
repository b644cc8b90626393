from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path

import pytest
import zstandard

from xarch.archive import (
    LayerWriter,
    compress_stream,
    decompress_stream,
    detect_compression,
    gzip_header,
    layer_media_type,
)
from xarch.errors import UsageError
from xarch.oci import mediatype

DATA = os.urandom(1_500_000) + b"layer" * 400_000  # > one internal chunk, half compressible


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_one_pass_digests_match_separate_computation(compression: str) -> None:
    r = compress_stream(io.BytesIO(DATA), compression)
    assert r.data is not None
    assert r.diff_id == _sha(DATA)
    assert r.uncompressed_size == len(DATA)
    assert r.blob_digest == _sha(r.data)
    assert r.size == len(r.data)
    assert decompress_stream(io.BytesIO(r.data)).read() == DATA
    if compression == "none":
        assert r.blob_digest == r.diff_id and r.data == DATA


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_chunk_iterable_and_many_small_writes_give_identical_blob(compression: str) -> None:
    a = compress_stream(io.BytesIO(DATA), compression)
    w = LayerWriter(compression)
    for i in range(0, len(DATA), 777):
        w.write(DATA[i : i + 777])
    b = w.close()
    c = compress_stream(iter([DATA[:10], DATA[10:]]), compression)
    assert a.data == b.data == c.data
    assert a.blob_digest == b.blob_digest == c.blob_digest


def test_gzip_readable_by_python_and_header_matches_go() -> None:
    r = compress_stream(io.BytesIO(DATA), "gzip")
    assert r.data is not None
    assert gzip.decompress(r.data) == DATA
    # Go compress/gzip, zero Header: ID1 ID2 CM=8 FLG=0 MTIME=0 XFL OS=255 (unknown)
    assert r.data[:10] == bytes.fromhex("1f8b08000000000000ff")
    assert gzip_header(9)[8] == 2 and gzip_header(1)[8] == 4 and gzip_header(6)[8] == 0
    for level in (1, 9):
        blob = compress_stream(io.BytesIO(b"x" * 1000), "gzip", level=level).data
        assert blob is not None and blob[:10] == gzip_header(level)
        assert gzip.decompress(blob) == b"x" * 1000


def test_gzip_empty_input_is_valid() -> None:
    r = compress_stream(io.BytesIO(b""), "gzip")
    assert r.data is not None and gzip.decompress(r.data) == b""
    assert r.diff_id == _sha(b"")


def test_zstd_frame_has_checksum_and_no_content_size() -> None:
    r = compress_stream(io.BytesIO(DATA), "zstd")
    assert r.data is not None
    params = zstandard.get_frame_parameters(r.data)
    assert params.has_checksum
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert zstandard.ZstdDecompressor().decompressobj().decompress(r.data) == DATA


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_output_is_deterministic(compression: str) -> None:
    a = compress_stream(io.BytesIO(DATA), compression)
    b = compress_stream(io.BytesIO(DATA), compression)
    assert a == b


def test_media_types() -> None:
    assert layer_media_type("gzip") == mediatype.OCI_LAYER_GZIP
    assert layer_media_type("gzip", oci_media_types=False) == mediatype.DOCKER_LAYER_GZIP
    assert layer_media_type("zstd") == mediatype.OCI_LAYER_ZSTD
    assert layer_media_type("none") == mediatype.OCI_LAYER
    assert layer_media_type("none", oci_media_types=False) == mediatype.DOCKER_LAYER
    with pytest.raises(UsageError, match="zstd layers need OCI media types"):
        layer_media_type("zstd", oci_media_types=False)
    with pytest.raises(UsageError, match="unknown compression"):
        layer_media_type("bzip2")
    with pytest.raises(UsageError):
        LayerWriter("gzip", level=11)


def test_detect_compression() -> None:
    assert detect_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"\x50\x2a\x4d\x18") == "zstd"  # skippable frame
    assert detect_compression(b"usta") == "none"
    assert detect_compression(b"") == "none"


def test_decompress_short_and_empty_plain_streams() -> None:
    assert decompress_stream(io.BytesIO(b"")).read() == b""
    assert decompress_stream(io.BytesIO(b"ab")).read() == b"ab"


def test_decompress_multi_member_gzip() -> None:
    blob = gzip.compress(b"one") + gzip.compress(b"two")
    assert decompress_stream(io.BytesIO(blob)).read() == b"onetwo"


def test_writer_to_path_and_abort_removes_it(tmp_path: Path) -> None:
    dest = tmp_path / "blob"
    r = compress_stream(io.BytesIO(DATA), "gzip", dest=dest)
    assert r.path == dest and r.data is None
    assert _sha(dest.read_bytes()) == r.blob_digest and dest.stat().st_size == r.size

    dest2 = tmp_path / "blob2"
    with pytest.raises(RuntimeError), LayerWriter("zstd", dest=dest2) as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert not dest2.exists()


def test_writer_to_open_file(tmp_path: Path) -> None:
    with open(tmp_path / "f", "wb") as f:
        r = compress_stream(io.BytesIO(DATA), "zstd", dest=f)
    assert _sha((tmp_path / "f").read_bytes()) == r.blob_digest


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_parallel_hashing_equals_serial(compression: str) -> None:
    serial = LayerWriter(compression, parallel=False)
    par = LayerWriter(compression, parallel=True)
    buf = bytearray(DATA)
    for w in (serial, par):
        for i in range(0, len(buf), 300_000):
            w.write(buf[i : i + 300_000])
    assert serial.close() == par.close()


def test_caller_buffer_reuse_is_safe() -> None:
    """write() must be done with the caller's buffer when it returns (reused buffers)."""
    w = LayerWriter("gzip")
    buf = bytearray(1 << 20)
    expected = hashlib.sha256()
    for i in range(5):
        buf[:] = bytes([i]) * len(buf)
        expected.update(buf)
        w.write(buf)
    r = w.close()
    assert r.diff_id == "sha256:" + expected.hexdigest()
