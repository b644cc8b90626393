"""Layer compression with the diffID and the blob digest computed in one streaming pass.

tar bytes ─▶ sha256 (diffID) ─▶ compressor ─▶ sha256 + size (blob) ─▶ destination

gzip goes through isal (raw deflate) with a header written by us, byte-equal to what Go's
``compress/gzip`` writes with a zero Header (what BuildKit/containerd produce): no name, mtime 0,
OS byte 255, XFL 2/4 only for gzip levels 9/1. The deflate stream itself differs from Go's
(different compressor), so blobs are reproducible across xarch runs, not against BuildKit.
zstd goes through ``zstandard`` with a checksum and no content size (a stream never knows it),
which is what a streaming klauspost encoder (containerd) writes as well.

Decompression is bounded (:class:`ExpansionLimits`): a layer may expand to at most
``max_size`` bytes, and past ``ratio_floor`` expanded bytes to at most ``max_ratio`` times the
compressed bytes read so far. A few KB of gzip/zstd can encode gigabytes of zeros; every
reader of layer content goes through :func:`decompress_stream`, so no site inflates a hostile
blob onto disk or through memory without limit.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from xarch.errors import IntegrityError, StoreError, UsageError, human_bytes
from xarch.oci import mediatype
from xarch.oci.digest import Digest, Digester

Compression = Literal["gzip", "zstd", "none"]
COMPRESSIONS: tuple[str, ...] = ("gzip", "zstd", "none")

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


def gzip_header(level: int | None = None) -> bytes:
    """The 10-byte header Go's compress/gzip writes for a zero Header at ``level``."""
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 0xFF))


def layer_media_type(compression: str, *, oci_media_types: bool = True) -> str:
    if compression == "gzip":
        return mediatype.OCI_LAYER_GZIP if oci_media_types else mediatype.DOCKER_LAYER_GZIP
    if compression == "zstd":
        if not oci_media_types:
            raise UsageError(
                "zstd layers need OCI media types (Docker schema2 has no zstd layer type); "
                "use oci-mediatypes=true or compression=gzip"
            )
        return mediatype.OCI_LAYER_ZSTD
    if compression == "none":
        return mediatype.OCI_LAYER if oci_media_types else mediatype.DOCKER_LAYER
    raise UsageError(f"unknown compression {compression!r} (use one of: {', '.join(COMPRESSIONS)})")


class BlobSink(Protocol):
    """Where blob bytes go when not to a path: an open binary file, a socket wrapper, ..."""

    def write(self, data: bytes | memoryview, /) -> object: ...
    def flush(self) -> None: ...


class _Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes: ...
    def flush(self) -> bytes: ...


def _isal_level(level: int | None) -> int:
    """Map the familiar gzip scale (0-9, what --compression-level means for gzip) to isal 0-3."""
    if level is None:
        return isal_zlib.ISAL_DEFAULT_COMPRESSION
    if not 0 <= level <= 9:
        raise UsageError(f"gzip compression level {level} out of range (0-9)")
    return 0 if level == 0 else 1 if level <= 3 else 2 if level <= 6 else 3


class _GzipCompressor:
    def __init__(self, level: int | None) -> None:
        self._c = isal_zlib.compressobj(_isal_level(level), isal_zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self._header: bytes | None = gzip_header(level)

    def compress(self, data: bytes | memoryview) -> bytes:
        self._crc = isal_zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._c.compress(data)
        if self._header is not None:
            out, self._header = self._header + out, None
        return out

    def flush(self) -> bytes:
        head = self._header or b""
        self._header = None
        return head + self._c.flush() + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)


class _ZstdCompressor:
    def __init__(self, level: int | None) -> None:
        lvl = 3 if level is None else level
        if not -7 <= lvl <= 22:
            raise UsageError(f"zstd compression level {lvl} out of range (-7..22)")
        cctx = zstandard.ZstdCompressor(level=lvl, write_checksum=True, write_content_size=False)
        self._c = cctx.compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


@dataclass(frozen=True)
class LayerResult:
    """A finished layer blob: where it is, what it is, and both of its digests."""

    media_type: str
    compression: str
    blob_digest: Digest  # digest of the (compressed) blob: the manifest descriptor digest
    size: int  # blob size in bytes
    diff_id: Digest  # digest of the uncompressed tar: the image config rootfs.diff_ids entry
    uncompressed_size: int
    path: Path | None = None
    data: bytes | None = None


class LayerWriter:
    """A write-only file object: feed it tar bytes, ``close()`` returns the LayerResult.

    ``dest``: a Path (created/truncated; removed again if the writer is aborted), an open binary
    file (left open), or None to keep the blob in memory (``LayerResult.data``).
    """

    def __init__(
        self,
        compression: str = "gzip",
        *,
        level: int | None = None,
        oci_media_types: bool = True,
        dest: Path | BlobSink | None = None,
        algorithm: str = "sha256",
        parallel: bool = True,
    ) -> None:
        self.media_type = layer_media_type(compression, oci_media_types=oci_media_types)
        self.compression = compression
        self._compressor: _Compressor | None
        if compression == "gzip":
            self._compressor = _GzipCompressor(level)
        elif compression == "zstd":
            self._compressor = _ZstdCompressor(level)
        else:
            self._compressor = None
        self._diff = Digester(algorithm)
        self._blob = Digester(algorithm) if self._compressor is not None else self._diff
        self._buf = bytearray()
        self._path: Path | None = None
        self._own_file = False
        self._mem: io.BytesIO | None = None
        self._out: BlobSink
        self._file: BinaryIO | None = None  # our own file when dest is a path
        if dest is None:
            self._mem = io.BytesIO()
            self._out = self._mem
        elif isinstance(dest, (str, os.PathLike)):
            self._path = Path(dest)
            try:
                self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()/abort()
            except OSError as e:
                raise StoreError(f"cannot create layer blob {self._path}: {e.strerror}") from e
            self._own_file = True
            self._out = self._file
        else:
            self._out = dest
        self._result: LayerResult | None = None
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="xarch-layer-hash")
            if parallel and self._compressor is not None
            else None
        )

    # -- file-object protocol ------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._result is not None:
            raise StoreError("layer writer already closed")
        # The compressor always sees exactly _CHUNK-sized inputs: deflate/zstd block boundaries
        # (and so the blob digest) must not depend on how callers happen to slice their writes.
        mv = memoryview(data).cast("B")
        n = len(mv)
        if self._buf:
            need = _CHUNK - len(self._buf)
            self._buf += mv[:need]
            mv = mv[need:]
            if len(self._buf) < _CHUNK:
                return n
            self._process(bytes(self._buf))
            self._buf.clear()
        while len(mv) >= _CHUNK:
            self._process(mv[:_CHUNK])
            mv = mv[_CHUNK:]
        self._buf += mv
        return n

    def _emit(self, out: bytes) -> None:
        if out:
            if self._compressor is not None:
                self._blob.update(out)
            self._out.write(out)

    def _process(self, chunk: bytes | memoryview) -> None:
        if self._compressor is None:
            self._diff.update(chunk)
            self._out.write(chunk)
            return
        if self._pool is None:
            self._diff.update(chunk)
            self._emit(self._compressor.compress(chunk))
            return
        # hashlib, isal and zstd all release the GIL on large buffers: hash the tar bytes on the
        # helper thread while this one compresses the same chunk (~1.7x on two cores). We wait
        # before returning, so the caller's buffer is never read after write() returns.
        fut = self._pool.submit(self._diff.update, chunk)
        try:
            self._emit(self._compressor.compress(chunk))
        finally:
            fut.result()

    def close(self) -> LayerResult:
        if self._result is not None:
            return self._result
        try:
            if self._buf:
                self._process(bytes(self._buf))
                self._buf.clear()
            if self._compressor is not None:
                self._emit(self._compressor.flush())
            self._out.flush()
            if self._own_file and self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._own_file = False
        except BaseException:
            self.abort()
            raise
        finally:
            self._shutdown()
        self._result = LayerResult(
            media_type=self.media_type,
            compression=self.compression,
            blob_digest=self._blob.digest(),
            size=self._blob.size,
            diff_id=self._diff.digest(),
            uncompressed_size=self._diff.size,
            path=self._path,
            data=self._mem.getvalue() if self._mem is not None else None,
        )
        return self._result

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def abort(self) -> None:
        """Discard a half-written blob (removes ``dest`` if we created it)."""
        self._shutdown()
        if self._own_file and self._file is not None:
            try:
                self._file.close()
            finally:
                if self._path is not None:
                    self._path.unlink(missing_ok=True)
            self._own_file = False

    @property
    def result(self) -> LayerResult:
        if self._result is None:
            raise StoreError("layer writer not closed yet")
        return self._result

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def compress_stream(
    source: Iterable[bytes] | BinaryIO,
    compression: str = "gzip",
    *,
    level: int | None = None,
    oci_media_types: bool = True,
    dest: Path | BlobSink | None = None,
) -> LayerResult:
    """Compress an uncompressed tar (file object or chunk iterable) in one pass."""
    w = LayerWriter(compression, level=level, oci_media_types=oci_media_types, dest=dest)
    with w:
        if hasattr(source, "read"):
            f: BinaryIO = source  # type: ignore[assignment]
            while chunk := f.read(_CHUNK):
                w.write(chunk)
        else:
            for chunk in source:
                w.write(chunk)
    return w.result


# -- decompression --------------------------------------------------------------------------


class _PrefixedReader(io.RawIOBase):
    """Re-attach bytes already read for sniffing to the front of a stream."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        mv = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(mv), len(self._prefix))
            mv[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(mv))
        if not data:
            return 0
        mv[: len(data)] = data
        return len(data)


def detect_compression(head: bytes) -> str:
    """'gzip', 'zstd' or 'none' from the first bytes of a blob (containerd's rule: magic wins)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    # zstd skippable frame (0x184D2A50-0x184D2A5F little endian), used by seekable zstd variants
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"
    return "none"


class _ZstdReader(io.RawIOBase):
    """zstandard's stream reader, made a proper RawIOBase (with decoding errors as IntegrityError)."""

    def __init__(self, raw: BinaryIO) -> None:
        dctx = zstandard.ZstdDecompressor()
        self._r = dctx.stream_reader(raw, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return int(self._r.readinto(b))
        except zstandard.ZstdError as e:
            raise IntegrityError(f"corrupt zstd layer stream: {e}") from e


@dataclass(frozen=True)
class ExpansionLimits:
    """How far a layer may inflate when decompressed (the gzip/zstd bomb guard).

    The defaults leave room for any real image (the largest real layers are a few GiB; zeros
    compress at most ~1030:1 with deflate) while stopping a bomb long before it fills a disk.
    """

    max_size: int | None = 64 << 30  # expanded bytes; None: no limit
    max_ratio: float | None = 1000.0  # expanded / compressed bytes; None: no limit
    ratio_floor: int = 1 << 30  # the ratio is only judged past this many expanded bytes

    def __post_init__(self) -> None:
        if self.max_size is not None and self.max_size < 0:
            raise UsageError(f"max layer size {self.max_size} must not be negative")
        if self.max_ratio is not None and self.max_ratio < 1:
            raise UsageError(f"max layer expansion ratio {self.max_ratio} must be at least 1")


DEFAULT_EXPANSION_LIMITS = ExpansionLimits()
NO_EXPANSION_LIMITS = ExpansionLimits(max_size=None, max_ratio=None)


class ExpansionError(IntegrityError):
    """A layer expands past its :class:`ExpansionLimits`."""



class TapReader(io.RawIOBase):
    """A raw reader over ``raw`` that counts the bytes read through it and hands each chunk
    to ``on_data`` (a digester's update): the compressed bytes a decompressor pulled, the
    uncompressed stream an applier hashes."""

    def __init__(self, raw: BinaryIO, on_data: Callable[[bytes], object] | None = None) -> None:
        self._raw = raw
        self._on_data = on_data
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        if not data:
            return 0
        n = len(data)
        if self._on_data is not None:
            self._on_data(data)
        memoryview(b).cast("B")[:n] = data
        self.count += n
        return n


class _LimitedReader(io.RawIOBase):
    """The decompressed stream, refusing to hand out more than the limits allow."""

    def __init__(
        self, inner: BinaryIO, compressed: TapReader | None, limits: ExpansionLimits,
        what: str,
    ) -> None:  # fmt: skip
        self._inner = inner
        self._compressed = compressed  # None: a plain blob (ratio 1)
        self._limits = limits
        self._what = what
        self.expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        readinto = getattr(self._inner, "readinto", None)
        if readinto is not None:
            n = readinto(b) or 0
        else:  # a plain reader with read() only
            data = self._inner.read(len(b))
            n = len(data)
            memoryview(b).cast("B")[:n] = data
        self.expanded += n
        self._check()
        return n

    def _check(self) -> None:
        lim, out = self._limits, self.expanded
        if lim.max_size is not None and out > lim.max_size:
            raise ExpansionError(
                f"{self._what} expands past {lim.max_size} bytes ({human_bytes(lim.max_size)}): "
                "refusing",
                hint="a decompression bomb? if the layer is genuine, raise the expansion "
                "limit (ExpansionLimits.max_size)",
            )
        if (
            lim.max_ratio is not None
            and self._compressed is not None
            and out > lim.ratio_floor
            and out > lim.max_ratio * max(1, self._compressed.count)
        ):
            raise ExpansionError(
                f"{self._what} expands past {lim.max_ratio:g}:1 ({human_bytes(out)} from "
                f"{human_bytes(self._compressed.count)} so far): refusing",
                hint="a decompression bomb? if the layer is genuine, raise the expansion "
                "limit (ExpansionLimits.max_ratio)",
            )


_BLOB_PATH = re.compile(r"/blobs/([a-z0-9]+)/([a-f0-9]{32,})$")


def _label(fileobj: BinaryIO) -> str:
    """``layer sha256:…`` for a blob file of a content store (its name is its digest)."""
    name = getattr(fileobj, "name", None)
    m = _BLOB_PATH.search(name) if isinstance(name, str) else None
    return f"layer {m.group(1)}:{m.group(2)}" if m else "layer"


def decompress_stream(
    fileobj: BinaryIO,
    media_type: str | None = None,
    *,
    limits: ExpansionLimits = DEFAULT_EXPANSION_LIMITS,
    what: str | None = None,
) -> BinaryIO:
    """A reader of the uncompressed bytes of a (gzip|zstd|plain) blob, detected by magic bytes.

    ``media_type`` is only a hint: like containerd we trust the bytes, since registries and
    docker-archives in the wild mislabel uncompressed layers as gzip. Reading past ``limits``
    raises :class:`ExpansionError` naming ``what`` (default: ``layer <digest>`` when
    ``fileobj`` is a store blob file, else ``layer``).
    """
    label = what if what is not None else _label(fileobj)
    peek = getattr(fileobj, "peek", None)
    head = peek(4)[:4] if callable(peek) else b""
    if len(head) >= 4:  # sniffed without consuming: no re-attaching layer to copy through
        raw = fileobj
    else:
        while len(head) < 4:
            more = fileobj.read(4 - len(head))
            if not more:
                break
            head += more
        raw = cast(BinaryIO, io.BufferedReader(_PrefixedReader(head, fileobj), _CHUNK))
    kind = detect_compression(head)
    if limits.max_size is None and limits.max_ratio is None:
        return _open(kind, raw)
    counter = TapReader(raw) if kind != "none" else None
    inner = _open(kind, cast(BinaryIO, counter) if counter is not None else raw)
    return cast(BinaryIO, io.BufferedReader(_LimitedReader(inner, counter, limits, label), _CHUNK))


def _open(kind: str, raw: BinaryIO) -> BinaryIO:
    if kind == "gzip":
        return cast(BinaryIO, igzip.GzipFile(fileobj=raw, mode="rb"))
    if kind == "zstd":
        return cast(BinaryIO, io.BufferedReader(_ZstdReader(raw), _CHUNK))
    return raw
