"""The README's main job (scripts/demo.sh) works: build examples/hello for three platforms
and test it on each, with no registry; then the same through the CLI pieces it uses."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _need_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the main job needs root (runc, overlayfs, binfmt_misc)")
        pytest.skip("needs root")


def _xarch(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XARCH_HOME=str(home))
    r = subprocess.run(
        [str(REPO / ".venv" / "bin" / "xarch"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if check and r.returncode != 0:
        raise AssertionError(
            f"xarch {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r


def test_readme_main_job(tmp_path: Path) -> None:
    _need_root()
    env = dict(os.environ, XARCH_HOME=str(tmp_path / "home"))
    r = subprocess.run(
        [str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True, env=env, timeout=1200
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("3 passed, 0 failed") == 2, r.stdout[-3000:]
    for machine in ("x86_64", "aarch64", "armv7l"):
        assert machine in r.stdout


def test_rebuild_runs_nothing_and_metadata(tmp_path: Path) -> None:
    _need_root()
    home = tmp_path / "home"
    plats = "linux/amd64,linux/arm64,linux/arm/v7"
    _xarch(
        home,
        "bootstrap",
        "debian",
        "--variant",
        "extract",
        "--include",
        "busybox-static",
        "--busybox-links",
        "--platform",
        plats,
        "-t",
        "xarch-examples/busybox:bookworm",
        "--source-date-epoch",
        "1700000000",
    )
    meta = tmp_path / "meta.json"
    t0 = time.monotonic()
    cold = _xarch(
        home,
        "--progress",
        "plain",
        "build",
        str(REPO / "examples" / "hello"),
        "--platform",
        plats,
        "-t",
        "hello:1",
        "--metadata-file",
        str(meta),
        "--iidfile",
        str(tmp_path / "iid"),
    )
    cold_s = time.monotonic() - t0
    # the $BUILDPLATFORM stage's platform-independent RUN executes once for three targets
    shared = [
        ln
        for ln in cold.stderr.splitlines()
        if "RUN sed -e 's/@GREETING@" in ln and not ln.endswith("CACHED")
    ]
    assert len(shared) == 1, cold.stderr
    doc = json.loads(meta.read_text())
    digest = doc["containerimage.digest"]
    assert (tmp_path / "iid").read_text() == digest == cold.stdout.strip()
    assert sorted(doc["xarch.platforms"]) == sorted(plats.split(","))
    t0 = time.monotonic()
    warm = _xarch(
        home,
        "--progress",
        "plain",
        "build",
        str(REPO / "examples" / "hello"),
        "--platform",
        plats,
        "-t",
        "hello:1",
    )
    warm_s = time.monotonic() - t0
    assert "0 RUN executed, 0 steps run" in warm.stderr, warm.stderr
    print(f"cold {cold_s:.2f}s, no-change rebuild {warm_s:.2f}s (CLI process included)")
    assert warm_s < cold_s


def test_reproducible_no_cache_builds(tmp_path: Path) -> None:
    _need_root()
    home = tmp_path / "home"
    _xarch(
        home,
        "bootstrap",
        "debian",
        "--variant",
        "extract",
        "--include",
        "busybox-static",
        "--busybox-links",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "xarch-examples/busybox:bookworm",
        "--source-date-epoch",
        "1700000000",
    )
    digests = []
    for _ in range(2):
        r = _xarch(
            home,
            "build",
            str(REPO / "examples" / "hello"),
            "--platform",
            "linux/amd64,linux/arm64",
            "--no-cache",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "-t",
            "hello:repro",
        )
        digests.append(r.stdout.strip())
    assert digests[0] == digests[1], digests
