"""Benchmark: layer hashing / compression / apply throughput on half-random data.

    .venv/bin/python bench/layers.py [--mb 200] [--runs 3] [--small-files 20000]

Rows: raw sha256, isal gzip (raw deflate + crc32), stdlib zlib gzip (reference), zstd, and
xarch's one-pass LayerWriter (tar bytes → diffID sha256 → compressor → blob sha256; output
discarded except in the "→ file" row),
then tree → tar → gzip blob end to end and applying that blob. MB/s is input (uncompressed)
megabytes per second, best of ``--runs``.
"""

# ruff: noqa: E402  (sys.path must be fixed before the standard library imports below)
from __future__ import annotations

import os
import sys

# bench/copy.py (the name issue #2 gives it) would shadow the standard library's ``copy``
# when this runs as a script: drop the script's directory from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import hashlib
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import zstandard
from isal import isal_zlib

from xarch.archive import LayerWriter, apply_layer, entries_from_tree, write_layer

CHUNK = 1 << 20


def make_data(mib: int) -> list[bytes]:
    """Alternating 64 KiB blocks of random bytes and repetitive text (≈ half compressible)."""
    text = (b"RUN apt-get install -y --no-install-recommends ca-certificates curl\n" * 1000)[
        : 64 * 1024
    ]
    blocks = [os.urandom(64 * 1024) if i % 2 == 0 else text for i in range(mib * 16)]
    data = b"".join(blocks)
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def run_sha256(chunks: list[bytes]) -> int:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return 32


def run_isal(chunks: list[bytes]) -> int:
    c = isal_zlib.compressobj(isal_zlib.ISAL_DEFAULT_COMPRESSION, isal_zlib.DEFLATED, -15)
    n = 0
    crc = 0
    for x in chunks:
        crc = isal_zlib.crc32(x, crc)
        n += len(c.compress(x))
    return n + len(c.flush())


def run_zlib(chunks: list[bytes]) -> int:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    n = 0
    for x in chunks:
        n += len(c.compress(x))
    return n + len(c.flush())


def run_zstd(chunks: list[bytes]) -> int:
    c = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    n = 0
    for x in chunks:
        n += len(c.compress(x))
    return n + len(c.flush())


class _NullSink:
    """Discards output: isolates hashing+compression from disk speed."""

    def write(self, data: bytes | memoryview, /) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def run_writer(
    compression: str, parallel: bool = True, to_file: bool = False
) -> Callable[[list[bytes]], int]:
    def go(chunks: list[bytes]) -> int:
        with tempfile.TemporaryDirectory() as d:
            dest = Path(d) / "blob" if to_file else _NullSink()
            w = LayerWriter(compression, dest=dest, parallel=parallel)
            for x in chunks:
                w.write(x)
            return w.close().size

    return go


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, object]:
    best = float("inf")
    out: object = None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def apply_secs(blob: Path, runs: int) -> float:
    def go() -> None:
        with tempfile.TemporaryDirectory() as d, open(blob, "rb") as f:
            apply_layer(f, d)

    return best_of(runs, go)[0]


def tree_rows(chunks: list[bytes], runs: int) -> tuple[float, float, int]:
    """Files of 1 MiB in 10 dirs: tree → deterministic tar → gzip blob, and apply it back."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "tree"
        for i, c in enumerate(chunks):
            sub = root / f"dir{i % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:05d}").write_bytes(c)
        blob = Path(d) / "blob"
        w, res = best_of(runs, lambda: write_layer(entries_from_tree(root), blob))
        return w, apply_secs(blob, runs), res.size  # type: ignore[attr-defined]


def small_files(n: int, runs: int) -> tuple[float, float]:
    """n files of 4 KiB in 100 dirs: files/s for tree → gzip layer and for applying it."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "tree"
        payload = os.urandom(2048) + b"a" * 2048
        for i in range(n):
            sub = root / f"d{i % 100:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:06d}").write_bytes(payload)
        blob = Path(d) / "blob"
        w, _ = best_of(runs, lambda: write_layer(entries_from_tree(root), blob))
        return n / w, n / apply_secs(blob, runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="MiB of input")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--small-files", type=int, default=20_000, help="0 to skip")
    args = ap.parse_args()
    chunks = make_data(args.mb)
    total = sum(len(c) for c in chunks)
    mb = total / 1e6
    rows: list[tuple[str, Callable[[list[bytes]], int]]] = [
        ("sha256", run_sha256),
        ("gzip isal (default level)", run_isal),
        ("gzip stdlib zlib level 6", run_zlib),
        ("zstd level 3", run_zstd),
        ("LayerWriter none", run_writer("none")),
        ("LayerWriter gzip, hashing serial", run_writer("gzip", parallel=False)),
        ("LayerWriter gzip", run_writer("gzip")),
        ("LayerWriter zstd, hashing serial", run_writer("zstd", parallel=False)),
        ("LayerWriter zstd", run_writer("zstd")),
        ("LayerWriter gzip → file + fsync", run_writer("gzip", to_file=True)),
    ]
    print(
        f"{args.mb} MiB ({mb:.0f} MB) half-random input, best of {args.runs} runs, {os.cpu_count()} CPUs"
    )
    print(f"{'operation':<38} {'MB/s':>8} {'seconds':>8} {'ratio':>6}")
    for name, fn in rows:
        secs, out = best_of(args.runs, lambda fn=fn: fn(chunks))  # type: ignore[misc]
        ratio = f"{int(out) / total:.2f}" if int(out) > 32 else "-"  # type: ignore[call-overload]
        print(f"{name:<38} {mb / secs:>8.0f} {secs:>8.2f} {ratio:>6}")
    w, a, size = tree_rows(chunks, args.runs)
    print(
        f"{'tree → tar → gzip blob (write_layer)':<38} {mb / w:>8.0f} {w:>8.2f} {size / total:>6.2f}"
    )
    print(f"{'gzip blob → apply_layer (flatten)':<38} {mb / a:>8.0f} {a:>8.2f} {'-':>6}")
    if args.small_files:
        wf, af = small_files(args.small_files, args.runs)
        print(
            f"{args.small_files} files of 4 KiB: write_layer {wf:,.0f} files/s, "
            f"apply_layer {af:,.0f} files/s"
        )


if __name__ == "__main__":
    main()
