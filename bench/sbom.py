"""Benchmark: SBOM generation vs just reading the image's layers.

    .venv/bin/python bench/sbom.py [--mib 1024] [--layers 4] [--runs 2] [--dir DIR]

Builds a synthetic image (default ≈1 GiB uncompressed, gzip level 1, half random / half text
content, ~30k files, 15% of them ELF executables the Go scanner must stream through, a dpkg
status with 400 packages, Python and npm metadata) in an OCI layout, then times, best of
``--runs`` with a warm page cache:

* read+hash: every layer blob read and sha256-verified (what ``xarch copy`` reads);
* read+hash+gunzip: the same plus decompression (the floor for anything that looks inside);
* generate_sboms: the full SBOM (walk, whiteouts, catalogers, SPDX JSON).

and prints the ratios. Acceptance target: SBOM < 2× the copy read.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/copy.py would shadow the stdlib ``copy`` module (tarfile imports it) when this file
# is run as a script, because the script's directory comes first on sys.path: it goes last
# (after the standard library, still there for the sibling _image module).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import argparse
import io
import json
import os
import random
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator

from _image import add_file as _add
from _image import commit_image, store_layer

from xarch.archive.compress import LayerWriter, decompress_stream
from xarch.attest.sbom import generate_sboms
from xarch.attest.sbom.walker import ChunkReader
from xarch.content.store import ContentStore
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digester
from xarch.oci.manifest import Manifest
from xarch.transports.layout import LayoutSource

TEXT = (b"RUN apt-get install -y --no-install-recommends ca-certificates curl\n" * 4000)[: 1 << 18]
CHUNK = 1 << 20


def _content(rng: random.Random, size: int, pool: bytes) -> bytes:
    if rng.random() < 0.5:
        start = rng.randrange(0, len(pool) - size) if size < len(pool) else 0
        return pool[start : start + size]
    return (TEXT * (size // len(TEXT) + 1))[:size]


def _dpkg_status(n: int) -> bytes:
    paras = [
        f"Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}-1\n"
        f"Architecture: amd64\nDescription: package {i}\n long text\n"
        for i in range(n)
    ]
    return "\n".join(paras).encode()


def build_image(root: Path, mib: int, layers: int, seed: int = 1) -> Descriptor:
    rng = random.Random(seed)
    pool = os.urandom(16 << 20)
    store = ContentStore(root, fsync=False)
    store.init()
    per_layer = (mib << 20) // layers
    descs: list[Descriptor] = []
    diff_ids: list[str] = []
    nfiles = 0
    for li in range(layers):
        tmp = root / f"layer{li}.tmp"
        w = LayerWriter("gzip", level=1, dest=tmp)
        with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            if li == 0:
                _add(tf, "etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
                _add(tf, "var/lib/dpkg/status", _dpkg_status(400))
                for i in range(400):
                    _add(tf, f"usr/share/doc/pkg{i}/copyright", b"License: MIT\n")
            for i in range(200):
                _add(tf, f"usr/lib/python3/dist-packages/m{li}_{i}.dist-info/METADATA",
                     f"Name: m{li}-{i}\nVersion: 1.0\nLicense: MIT\n".encode())  # fmt: skip
                _add(tf, f"srv/app/node_modules/n{li}_{i}/package.json",
                     json.dumps({"name": f"n{li}-{i}", "version": "1.0.0"}).encode())  # fmt: skip
            written = 0
            while written < per_layer:
                size = min(int(rng.paretovariate(1.2) * 4096), 8 << 20)
                exe = rng.random() < 0.15
                data = _content(rng, size, pool)
                if exe:
                    data = b"\x7fELF" + data[4:]
                d = f"usr/lib/l{li}/d{nfiles // 200}"
                _add(tf, f"{d}/f{nfiles}", data, 0o755 if exe else 0o644)
                written += size
                nfiles += 1
        desc, diff_id = store_layer(store, w, tmp)
        descs.append(desc)
        diff_ids.append(diff_id)
    top = commit_image(store, descs, diff_ids, "bench")
    print(f"image: {layers} layers, {nfiles} files, {sum(d.size for d in descs) >> 20} MiB "
          f"compressed, ~{mib} MiB uncompressed")  # fmt: skip
    return top


def _layers(src: LayoutSource) -> list[Descriptor]:
    root = src.resolve()
    return list(Manifest.parse(src.fetch_manifest(root)).layers)


def read_hash(src: LayoutSource) -> None:
    for d in _layers(src):
        dg = Digester()
        for chunk in src.open_blob(d):
            dg.update(chunk)
        assert dg.digest() == d.digest


def read_hash_gunzip(src: LayoutSource) -> None:
    for d in _layers(src):
        dg = Digester()

        def chunks(d: Descriptor = d, dg: Digester = dg) -> Iterator[bytes]:
            for c in src.open_blob(d):
                dg.update(c)
                yield c

        s = decompress_stream(io.BufferedReader(ChunkReader(chunks()), CHUNK), d.media_type)
        while s.read(CHUNK):
            pass
        assert dg.digest() == d.digest


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        root = Path(tmp) / "layout"
        t = time.perf_counter()
        build_image(root, a.mib, a.layers)
        print(f"built in {time.perf_counter() - t:.1f}s")
        src = LayoutSource(root, "bench")
        read_hash(src)  # warm the page cache
        t_copy = best(lambda: read_hash(src), a.runs)
        t_gz = best(lambda: read_hash_gunzip(src), a.runs)
        out: dict[object, bytes] = {}
        t_sbom = best(lambda: out.update(generate_sboms(src, fmt="spdx-json")), a.runs)
        doc = json.loads(next(iter(out.values())))
        print(f"packages in SBOM: {len(doc['packages']) - 2}")
        print(f"read+hash (copy):      {t_copy:7.2f}s")
        print(f"read+hash+gunzip:      {t_gz:7.2f}s")
        print(f"generate_sboms:        {t_sbom:7.2f}s")
        print(f"ratio sbom/copy-read:  {t_sbom / t_copy:7.2f}x  (target < 2x)")
        print(f"ratio sbom/gunzip:     {t_sbom / t_gz:7.2f}x")


if __name__ == "__main__":
    main()
