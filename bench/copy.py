"""Benchmark: ``xarch copy --all`` against ``skopeo copy --all`` on a 300+ MB 3-platform image.

    .venv/bin/python bench/copy.py [--runs 3] [--work DIR] [--jobs 4] [--no-docs] [--profile]

Builds (once, cached under ``--work``) a 3-platform OCI image with 4 gzip layers per
platform — random data (incompressible) and generated text (compressible) — with xarch's own
layer writer into an OCI layout, starts a Debian ``docker-registry`` on 127.0.0.1 and pushes the
image there. Then times, median of ``--runs``:

- registry → OCI layout (a fresh directory every run);
- OCI layout → registry (a fresh repository on a freshly started, empty registry every run, so
  neither tool can mount or skip blobs it pushed before — skopeo's blob-info cache would
  otherwise turn its pushes into cross-repo mounts).

Both tools are run as commands (process start-up included). Results replace the table in
``docs/benchmarks.md`` between the ``<!-- bench:copy -->`` markers. ``--profile`` also runs
each xarch direction once under cProfile and prints the top functions.
"""

# ruff: noqa: E402  (sys.path must be fixed before the standard library imports below)
from __future__ import annotations

import os
import sys

# This file is named copy.py: drop its directory from sys.path before anything imports the
# standard library's ``copy`` module (dataclasses does), or it would import this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import platform as pyplatform
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the registry fixture helper

from helpers.registry import RunningRegistry, start_registry
from xarch.archive import entries_from_tree, write_layer
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.transports.layout import LayoutSink

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
MiB = 1 << 20
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
    "container",
    "image",
    "layer",
    "manifest",
    "index",
    "registry",
    "digest",
    "platform",
    "build",
    "cache",
    "copy",
    "blob",
    "config",
]
MARK_BEGIN = "<!-- bench:copy -->"
MARK_END = "<!-- /bench:copy -->"


# -- image generation --------------------------------------------------------------------------
def _random_file(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def _text_file(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        written = 0
        while written < size:
            line = " ".join(rng.choices(WORDS, k=12)) + f" {rng.randrange(10**9)}\n"
            f.write(line)
            written += len(line)


def _layer_trees(root: Path, plat: str, rng: random.Random) -> list[Path]:
    """4 layer trees: 2 random (55 MiB + 35 MiB in 35 files), 2 compressible text."""
    trees = [root / f"l{i}" for i in range(4)]
    _random_file(trees[0] / "opt" / "big.bin", 55 * MiB, rng)
    for i in range(35):
        _random_file(trees[1] / "usr" / "lib" / f"lib{i}.so", MiB, rng)
    _text_file(trees[2] / "usr" / "share" / "doc" / "all.txt", 48 * MiB, rng)
    for i in range(400):
        _text_file(trees[3] / "etc" / f"conf{i}.txt", 40 * 1024, rng)
    (trees[3] / "etc" / "platform").write_text(plat)
    return trees


def build_image(layout: Path, scratch: Path) -> int:
    """Write the 3-platform image to ``layout`` tag ``v1``; returns total blob bytes."""
    sink = LayoutSink(layout, "v1")
    entries: list[Descriptor] = []
    total = 0
    try:
        for n, p in enumerate(PLATFORMS):
            plat = Platform.parse(p)
            rng = random.Random(1000 + n)
            work = scratch / f"p{n}"
            layers: list[Descriptor] = []
            diff_ids: list[str] = []
            for i, tree in enumerate(_layer_trees(work, p, rng)):
                blob = scratch / f"p{n}-l{i}.blob"
                res = write_layer(entries_from_tree(tree), blob)
                desc = Descriptor(res.media_type, res.blob_digest, res.size)
                with open(blob, "rb") as f:
                    sink.put_blob(desc, iter(lambda f=f: f.read(MiB), b""))  # type: ignore[misc]
                blob.unlink()
                layers.append(desc)
                diff_ids.append(str(res.diff_id))
                total += res.size
            shutil.rmtree(work)
            doc: dict[str, object] = {
                "created": "2026-01-01T00:00:00Z",
                "architecture": plat.architecture,
                "os": plat.os,
            }
            if plat.variant:
                doc["variant"] = plat.variant
            doc["config"] = {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]}
            doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            cfg = ImageConfig.build(doc)
            sink.put_blob(cfg.descriptor(), [cfg.raw])
            man = Manifest.build(cfg.descriptor(), layers)
            sink.put_manifest(man.raw, mt.OCI_MANIFEST)
            entries.append(Descriptor(mt.OCI_MANIFEST, man.digest, len(man.raw), platform=plat))
            total += len(cfg.raw) + len(man.raw)
        idx = Index.build(entries)
        sink.put_manifest(idx.raw, mt.OCI_INDEX, root=True)
        sink.commit()
    finally:
        sink.close()
    return total + len(idx.raw)


def layout_size(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())


# -- timing ------------------------------------------------------------------------------------
def run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt


def median_of(runs: int, once: Callable[[int], float]) -> tuple[float, list[float]]:
    times = [once(i) for i in range(runs)]
    return statistics.median(times), times


def machine() -> str:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, {pyplatform.system()} {pyplatform.release()}, "
        f"load average {load} at the end (other work shares the machine)"
    )


def tool_versions(xarch: list[str]) -> str:
    sk = subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip()
    xv = subprocess.run([*xarch, "--version"], capture_output=True, text=True).stdout.strip()
    return f"{xv}, {sk}, Python {pyplatform.python_version()}"


def write_docs(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{MARK_BEGIN}\n{block.rstrip()}\n{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        a = text.index(MARK_BEGIN)
        b = text.index(MARK_END) + len(MARK_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip() + "\n\n## copy: xarch vs skopeo\n\n" + section + "\n"
    path.write_text(text)


def profile(xarch_py: str, args: list[str], env: dict[str, str], out: Path) -> str:
    subprocess.run(
        [xarch_py, "-m", "cProfile", "-o", str(out), "-m", "xarch.cli.main", *args],
        env=env,
        check=True,
        capture_output=True,
    )
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(out), stream=buf).sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=4, help="xarch --jobs (skopeo has no equivalent)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xarch-bench-copy")
    ap.add_argument("--no-docs", action="store_true", help="print the table, leave docs alone")
    ap.add_argument("--profile", action="store_true", help="cProfile one xarch run per direction")
    args = ap.parse_args()
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (apt-get install skopeo)")

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    src_layout = work / "image"
    if not (src_layout / "index.json").exists():
        print("building the 3-platform test image …", flush=True)
        scratch = work / "scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        t0 = time.perf_counter()
        build_image(src_layout, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"  built in {time.perf_counter() - t0:.1f}s", flush=True)
    size = layout_size(src_layout)
    print(f"image: {size / 1e6:.1f} MB of blobs, {len(PLATFORMS)} platforms × 4 layers", flush=True)

    py = sys.executable
    xarch = [py, "-m", "xarch.cli.main", "--progress", "quiet"]
    env = {**os.environ, "XARCH_HOME": str(work / "home")}
    runs_dir = work / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir()

    def fresh_registry(tag: str) -> RunningRegistry:
        d = runs_dir / tag
        d.mkdir()
        return start_registry(d)

    src_reg = fresh_registry("source")
    results: dict[str, dict[str, tuple[float, list[float]]]] = {}
    profiles: list[str] = []
    try:
        run([*xarch, "copy", "--all", f"oci:{src_layout}:v1", f"{src_reg.url}/bench/src:v1"], env)
        src_ref = f"{src_reg.url}/bench/src:v1"

        def pull_xarch(i: int) -> float:
            dest = runs_dir / f"pull-x{i}"
            return run(
                [*xarch, "copy", "--all", "--jobs", str(args.jobs), src_ref, f"oci:{dest}:v1"], env
            )

        def pull_skopeo(i: int) -> float:
            dest = runs_dir / f"pull-s{i}"
            return run(
                [
                    "skopeo",
                    "copy",
                    "--all",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{src_ref}",
                    f"oci:{dest}:v1",
                ]
            )

        def push(tool: str) -> Callable[[int], float]:
            def once(i: int) -> float:
                reg = fresh_registry(f"push-{tool}{i}")
                try:
                    if tool == "xarch":
                        return run(
                            [
                                *xarch,
                                "copy",
                                "--all",
                                "--jobs",
                                str(args.jobs),
                                f"oci:{src_layout}:v1",
                                f"{reg.url}/bench/dst:v1",
                            ],
                            env,
                        )
                    return run(
                        [
                            "skopeo",
                            "copy",
                            "--all",
                            "--quiet",
                            "--dest-tls-verify=false",
                            f"oci:{src_layout}:v1",
                            f"docker://{reg.url}/bench/dst:v1",
                        ]
                    )
                finally:
                    reg.stop()
                    shutil.rmtree(runs_dir / f"push-{tool}{i}", ignore_errors=True)

            return once

        # Interleave tools run by run, so drift (page cache, CPU boost) hits both equally.
        for name, fx, fs in (
            ("registry → OCI layout", pull_xarch, pull_skopeo),
            ("OCI layout → fresh registry repo", push("xarch"), push("skopeo")),
        ):
            tx: list[float] = []
            ts: list[float] = []
            for i in range(args.runs):
                tx.append(fx(i))
                ts.append(fs(i))
                print(
                    f"  {name}: run {i + 1}: xarch {tx[-1]:.2f}s, skopeo {ts[-1]:.2f}s", flush=True
                )
            results[name] = {
                "xarch": (statistics.median(tx), tx),
                "skopeo": (statistics.median(ts), ts),
            }
        if args.profile:
            prof = work / "pull.prof"
            profiles.append(
                "pull:\n"
                + profile(
                    py,
                    [
                        "--progress",
                        "quiet",
                        "copy",
                        "--all",
                        src_ref,
                        f"oci:{runs_dir / 'prof-pull'}:v1",
                    ],
                    env,
                    prof,
                )
            )
            reg = fresh_registry("prof-push")
            try:
                profiles.append(
                    "push:\n"
                    + profile(
                        py,
                        [
                            "--progress",
                            "quiet",
                            "copy",
                            "--all",
                            f"oci:{src_layout}:v1",
                            f"{reg.url}/bench/dst:v1",
                        ],
                        env,
                        work / "push.prof",
                    )
                )
            finally:
                reg.stop()
    finally:
        src_reg.stop()
        shutil.rmtree(runs_dir, ignore_errors=True)

    lines = [
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}; "
        f"{tool_versions(xarch[:3])}.",
        "",
        f"Image: {len(PLATFORMS)} platforms × 4 gzip layers (2 random, 2 generated text), "
        f"{size / 1e6:.1f} MB of blobs. Registry: Debian docker-registry on 127.0.0.1 "
        f"(filesystem storage, plain HTTP). xarch `--jobs {args.jobs}`; skopeo defaults. "
        f"Median of {args.runs} runs, wall clock including process start-up.",
        "",
        "| direction | xarch copy --all | skopeo copy --all | xarch / skopeo | xarch MB/s | skopeo MB/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        x, s = r["xarch"][0], r["skopeo"][0]
        lines.append(
            f"| {name} | {x:.2f} s | {s:.2f} s | {x / s:.2f} | {size / 1e6 / x:.0f} | {size / 1e6 / s:.0f} |"
        )
    lines.append("")
    lines.append(
        "Individual runs (s): "
        + "; ".join(
            f"{name}: xarch {', '.join(f'{t:.2f}' for t in r['xarch'][1])} / "
            f"skopeo {', '.join(f'{t:.2f}' for t in r['skopeo'][1])}"
            for name, r in results.items()
        )
    )
    block = "\n".join(lines)
    print()
    print(block)
    for p in profiles:
        print(p)
    if not args.no_docs:
        write_docs(REPO / "docs" / "benchmarks.md", block)
        print(f"\nupdated {REPO / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
