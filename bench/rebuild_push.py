"""Benchmark: a no-change rebuild with ``--push`` of the README example, against start-up.

    .venv/bin/python bench/rebuild_push.py [--runs 7] [--work DIR]

Bootstraps the busybox base of ``examples/hello`` for linux/amd64, linux/arm64 and linux/arm/v7
(offline, mmdebstrap), starts a Debian ``docker-registry`` on 127.0.0.1, builds and pushes the
example once, then times, interleaved run by run, ``xarch build … --push`` with nothing changed
and ``xarch --version`` (process start-up and imports). Prints the medians, the difference (the
target: under 0.3 s), whether every rebuild gave the first build's index digest, and how many
requests of the rebuilds wrote to the registry (the target: none).
"""

# ruff: noqa: E402  (sys.path must be fixed before the imports below)
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # bench/copy.py
REPO_DIR = os.path.dirname(_HERE)
sys.path.insert(0, os.path.join(REPO_DIR, "tests"))  # the registry helpers

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from helpers.registry import start_registry
from helpers.registry_log import LogCursor

XARCH = os.path.join(REPO_DIR, ".venv", "bin", "xarch")
PLATFORMS = "linux/amd64,linux/arm64,linux/arm/v7"
BASE = "xarch-examples/busybox:bookworm"


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="xarch-bench-rebuild-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, XARCH_HOME=str(work / "home"))
    reg = start_registry(work / "registry")
    try:
        subprocess.run([XARCH, "setup", "emulation"], env=env, check=True, capture_output=True)
        _run([XARCH, "bootstrap", "debian", "--variant", "extract", "--include", "busybox-static",
              "--busybox-links", "--source-date-epoch", "1700000000", "--platform", PLATFORMS,
              "-t", BASE], env)
        ref = f"{reg.url}/bench/hello:1"
        build = [XARCH, "--progress", "quiet", "build", os.path.join(REPO_DIR, "examples", "hello"),
                 "--platform", PLATFORMS, "-t", ref, "--push"]
        cold, first = _run(build, env)
        cursor = LogCursor.at_end(reg.log_path)
        rebuild: list[float] = []
        startup: list[float] = []
        digests: set[str] = set()
        _run([XARCH, "--version"], env)  # warm the page cache for both
        for _ in range(args.runs):
            dt, digest = _run(build, env)
            rebuild.append(dt)
            digests.add(digest)
            startup.append(_run([XARCH, "--version"], env)[0])
        writes = [q for q in cursor.requests() if q.method in ("PUT", "POST", "PATCH", "DELETE")]
        med_r, med_s = statistics.median(rebuild), statistics.median(startup)
        print(f"cold build + push: {cold:.2f} s ({PLATFORMS})")
        print(f"no-change rebuild + push: median {med_r:.3f} s (min {min(rebuild):.3f}, "
              f"max {max(rebuild):.3f}) over {args.runs} runs")
        print(f"start-up (xarch --version): median {med_s:.3f} s")
        print(f"rebuild minus start-up: {med_r - med_s:.3f} s (target < 0.3 s)")
        print(f"index digest identical to the first build: {digests == {first}} ({first})")
        print(f"registry writes during the rebuilds: {len(writes)} (target 0)")
    finally:
        reg.stop()
        if args.work is None:
            subprocess.run(["umount", "-R", str(work / "home")], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
