"""Benchmark (acceptance): ``xarch sbom`` of a ~1 GB image vs ``xarch copy`` reading it.

    .venv/bin/python bench/sbom_vs_copy.py [--mib 1024] [--layers 4] [--runs 3] [--dir DIR]
        [--compression gzip|zstd] [--copy-to DIR]

Builds, with xarch's own layer writer, a single-platform image in an OCI layout: ``--mib`` MiB
of mostly incompressible (random) file data spread over many files (Pareto sizes, ~4 KiB
median) plus an ``/etc/os-release`` and a dpkg status with 400 packages, gzip level 1 (or
``--compression zstd``, level 3), so the layout is about ``--mib`` on disk. Then runs, as
commands (process start-up included, warm page cache, ``sync`` before each, median of
``--runs``):

* ``xarch sbom oci:DIR:bench -o FILE``
* ``xarch copy oci:DIR:bench oci:OTHER:bench`` (a fresh OTHER every run; this reads and
  verifies every blob and writes it once more)

and prints both and their ratio. Acceptance target: sbom < 2x copy.
"""

# ruff: noqa: E402  (sys.path must be fixed before the standard library imports below)
from __future__ import annotations

import os
import sys

# bench/copy.py (the name the issue gives it) would shadow the standard library's ``copy``
# when this runs as a script: the script's directory goes last on sys.path (after the
# standard library, still there for the sibling _image module).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse
import json
import random
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from _image import add_file as _add
from _image import commit_image, store_layer

from xarch.archive.compress import LayerWriter
from xarch.content.store import ContentStore
from xarch.oci.descriptor import Descriptor

TAG = "bench"


def dpkg_status(n: int) -> bytes:
    paras = [
        f"Package: pkg{i}\nStatus: install ok installed\nPriority: optional\nVersion: 1.{i}-1\n"
        f"Architecture: amd64\nMaintainer: Bench <b@example.org>\nDescription: package {i}\n"
        " long description\n"
        for i in range(n)
    ]
    return "\n".join(paras).encode()


def build_image(
    layout: Path, mib: int, layers: int, seed: int = 1, compression: str = "gzip"
) -> tuple[int, int]:
    """Write the image into the OCI layout ``layout`` (tag ``bench``): (files, blob bytes)."""
    rng = random.Random(seed)
    pool = os.urandom(32 << 20)  # slices of random data: incompressible, cheap to produce
    store = ContentStore(layout, fsync=False)
    store.init()
    per_layer = (mib << 20) // layers
    descs: list[Descriptor] = []
    diff_ids: list[str] = []
    nfiles = 0
    for li in range(layers):
        tmp = layout / f"layer{li}.tmp"
        w = LayerWriter(compression, level=1 if compression == "gzip" else None, dest=tmp)
        with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            if li == 0:
                _add(tf, "etc/os-release", b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                     b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')  # fmt: skip
                _add(tf, "var/lib/dpkg/status", dpkg_status(400))
                for i in range(400):
                    _add(tf, f"usr/share/doc/pkg{i}/copyright", b"License: MIT\n")
            written = 0
            while written < per_layer:
                size = min(int(rng.paretovariate(1.1) * 2048), 16 << 20, per_layer - written + 1)
                start = rng.randrange(0, len(pool) - size)
                _add(tf, f"usr/lib/l{li}/d{nfiles // 256}/f{nfiles}", pool[start : start + size])
                written += size
                nfiles += 1
        desc, diff_id = store_layer(store, w, tmp)
        descs.append(desc)
        diff_ids.append(diff_id)
    commit_image(store, descs, diff_ids, TAG)
    return nfiles, sum(d.size for d in descs)


def xarch_cmd() -> list[str]:
    return [sys.executable, "-m", "xarch.cli.main", "--progress", "quiet"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    # Flush what earlier steps wrote (the image, the last copy): otherwise its writeback runs
    # during the next measurement and charges whichever command happens to come next.
    os.sync()
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt


def measure(
    layout: Path, work: Path, runs: int, copy_to: Path | None = None
) -> tuple[list[float], list[float], int]:
    """(sbom times, copy times, packages in the SBOM)."""
    env = {**os.environ, "XARCH_HOME": str(work / "home")}
    sbom_out = work / "sbom.spdx.json"
    sbom_cmd = [*xarch_cmd(), "sbom", f"oci:{layout}:{TAG}", "-o", str(sbom_out)]
    # warm the page cache (and Python's bytecode cache) once for both
    timed(sbom_cmd, env)
    warm = (copy_to or work) / "xarch-bench-warm"
    timed([*xarch_cmd(), "copy", f"oci:{layout}:{TAG}", f"oci:{warm}:{TAG}"], env)
    shutil.rmtree(warm)
    t_sbom: list[float] = []
    t_copy: list[float] = []
    for i in range(runs):  # interleaved, so drift (thermal, other load) hits both alike
        t_sbom.append(timed(sbom_cmd, env))
        dst = (copy_to or work) / f"xarch-bench-copy{i}"
        t_copy.append(timed([*xarch_cmd(), "copy", f"oci:{layout}:{TAG}", f"oci:{dst}:{TAG}"], env))
        shutil.rmtree(dst)
    doc = json.loads(sbom_out.read_text())
    n = sum(
        any(r.get("referenceLocator", "").startswith("pkg:deb/") for r in p.get("externalRefs", []))
        for p in doc["packages"]
    )
    return t_sbom, t_copy, n


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: $TMPDIR)")
    ap.add_argument("--compression", choices=("gzip", "zstd"), default="gzip")
    ap.add_argument(
        "--copy-to",
        type=Path,
        default=None,
        help="where copy writes (default: beside the image); /dev/shm takes the disk out, "
        "leaving what copy needs to read the image",
    )
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="xarch-bench-sbom-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        t = time.perf_counter()
        nfiles, size = build_image(layout, a.mib, a.layers, compression=a.compression)
        print(f"image: {a.layers} {a.compression} layers, {nfiles} files, {size / 1e6:.0f} MB of blobs "
              f"(built in {time.perf_counter() - t:.1f}s)")  # fmt: skip
        t_sbom, t_copy, npkg = measure(layout, work, a.runs, a.copy_to)
        sbom, copy = statistics.median(t_sbom), statistics.median(t_copy)
        print(f"deb packages in SBOM: {npkg}")
        print(f"xarch sbom  (median of {a.runs}): {sbom:7.2f}s  {[round(x, 2) for x in t_sbom]}")
        print(f"xarch copy  (median of {a.runs}): {copy:7.2f}s  {[round(x, 2) for x in t_copy]}")
        print(f"ratio sbom/copy: {sbom / copy:.2f}x  (target < 2x)")
        return {"sbom": sbom, "copy": copy, "ratio": sbom / copy, "packages": float(npkg),
                "bytes": float(size)}  # fmt: skip


if __name__ == "__main__":
    main()
