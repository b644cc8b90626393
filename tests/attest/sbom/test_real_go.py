"""Real data: a Go binary from Debian (shfmt), cataloged from inside an image layer. The Go
version found must be the toolchain Debian records in the package's Built-Using field."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from attest.sbom._fixtures import F, make_image
from xarch.attest.sbom.api import catalog_image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xarch-test"


def _deb(tmp: Path) -> Path:
    cached = sorted(CACHE.glob("shfmt_*_amd64.deb"))
    if cached:
        return cached[-1]
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb")
    r = subprocess.run(["apt-get", "download", "shfmt:amd64"], cwd=tmp, capture_output=True)
    debs = sorted(tmp.glob("shfmt_*.deb"))
    if r.returncode != 0 or not debs:
        pytest.skip(f"cannot download shfmt: {r.stderr.decode()[-200:]}")
    CACHE.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(debs[-1], CACHE / debs[-1].name))


def test_go_binary_from_debian(tmp_path: Path) -> None:
    deb = _deb(tmp_path)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "x")], check=True)
    built_using = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Built-Using"], check=True, capture_output=True, text=True
    ).stdout
    m = re.search(r"golang-1\.\d+ \(= (\d+\.\d+(?:\.\d+)?)-", built_using)
    assert m, built_using
    binary = (tmp_path / "x/usr/bin/shfmt").read_bytes()
    img = make_image([[F("usr/bin/shfmt", binary, 0o755)]])
    cat = catalog_image(img, img.info())
    (std,) = [p for p in cat.packages if p.name == "stdlib"]
    assert std.version == "go" + m.group(1)
    assert std.purl == f"pkg:golang/stdlib@{m.group(1)}"
    assert ("main-package", "mvdan.cc/sh/v3/cmd/shfmt") in std.metadata
    assert std.paths == ("/usr/bin/shfmt",)
