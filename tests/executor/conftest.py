"""Fixtures for executor tests: busybox root filesystems for the host and foreign arches."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import fetch_busybox_deb, make_busybox_rootfs


@pytest.fixture
def host_rootfs(tmp_path: Path) -> Path:
    bb = shutil.which("busybox") or "/bin/busybox"
    if not Path(bb).exists():
        pytest.skip("busybox-static not installed")
    out = subprocess.run(["file", "-L", bb], capture_output=True, text=True, check=False).stdout
    if out and "statically linked" not in out:
        pytest.skip(f"{bb} is not statically linked (install busybox-static)")
    return make_busybox_rootfs(Path(bb), tmp_path / "rootfs")


@pytest.fixture(scope="session")
def foreign_busybox(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Returns a function debarch -> path of that arch's static busybox (skips if unavailable)."""
    extracted: dict[str, Path] = {}

    def get(debarch: str) -> Path:
        if debarch not in extracted:
            deb = fetch_busybox_deb(debarch)
            if deb is None:
                pytest.skip(f"busybox-static:{debarch} is not available from the package archive")
            dest = tmp_path_factory.mktemp(f"bb-{debarch}")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
            bb = dest / "bin" / "busybox"
            if not bb.exists():
                pytest.skip(f"busybox-static:{debarch} has no /bin/busybox")
            extracted[debarch] = bb
        return extracted[debarch]

    return get
