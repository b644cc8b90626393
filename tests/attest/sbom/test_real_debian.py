"""Real data: a Debian bookworm minbase rootfs built by mmdebstrap, packed as a one-layer image.
The dpkg cataloger must list exactly what ``dpkg-query -W`` reports (names and versions)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from attest.sbom._schemas import (
    cyclonedx_validator,
    errors,
    spdx_expression_errors,
    spdx_validator,
)
from xarch.attest.sbom import ManifestImageReader, catalog_image, render
from xarch.attest.sbom.model import ImageInfo
from xarch.content.store import ContentStore
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xarch-test"
ROOTFS = CACHE / "debian-bookworm-minbase-amd64.tar.gz"
MIRROR = "http://deb.debian.org/debian"


def _rootfs_tarball(tmp: Path) -> Path:
    if ROOTFS.is_file():
        return ROOTFS
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap)")
    root = tmp / "rootfs"
    try:
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--architectures=amd64", "bookworm", str(root),
             MIRROR],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except subprocess.CalledProcessError as e:
        pytest.skip(f"mmdebstrap failed (no network?): {e.stderr.decode()[-300:]}")
    CACHE.mkdir(parents=True, exist_ok=True)
    part = ROOTFS.with_suffix(".partial")
    with part.open("wb") as f:
        tar = subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=1) as gz:
            shutil.copyfileobj(tar.stdout, gz, 1 << 20)
        assert tar.wait() == 0
    part.replace(ROOTFS)
    return ROOTFS


def _dpkg_query(tarball: Path, tmp: Path) -> list[tuple[str, str]]:
    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not installed")
    admin = tmp / "admin"
    admin.mkdir()
    with tarfile.open(tarball) as tf:
        member = tf.getmember("./var/lib/dpkg/status")
        src = tf.extractfile(member)
        assert src is not None
        (admin / "status").write_bytes(src.read())
    out = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Package} ${Version}\n"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted(tuple(line.split(" ", 1)) for line in out.splitlines() if line)  # type: ignore[misc]


def test_dpkg_matches_dpkg_query(tmp_path: Path) -> None:
    tarball = _rootfs_tarball(tmp_path)
    expected = _dpkg_query(tarball, tmp_path)
    assert len(expected) > 50

    store = ContentStore(tmp_path / "store", fsync=False)
    store.init()
    blob = tarball.read_bytes()
    layer = Descriptor.of(mt.OCI_LAYER_GZIP, blob)
    store.ingest_bytes(blob, layer)
    h = hashlib.sha256()
    with gzip.open(tarball) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    cfg = ImageConfig.build(
        {"created": "2024-06-01T00:00:00Z", "architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}
    )  # fmt: skip
    store.ingest_bytes(cfg.raw)
    m = Manifest.build(cfg.descriptor(), [layer])
    reader = ManifestImageReader.from_store(store, m.raw)
    info = ImageInfo("debian", m.digest, Platform.parse("linux/amd64"), cfg.digest)
    cat = catalog_image(reader, info)

    got = sorted((p.name, p.version) for p in cat.packages if p.type == "deb")
    assert got == expected
    assert cat.os is not None and (cat.os.id, cat.os.version_id) == ("debian", "12")
    assert all(p.layer is not None and p.layer.digest == layer.digest for p in cat.packages)
    bash = next(p for p in cat.packages if p.name == "bash")
    assert "GPL-3+" in bash.licenses
    assert bash.purl.startswith("pkg:deb/debian/bash@") and "distro=debian-12" in bash.purl

    spdx_doc = json.loads(render(cat, "spdx-json"))
    assert errors(spdx_validator(), spdx_doc) == []
    assert spdx_expression_errors(spdx_doc) == []
    cdx_doc = json.loads(render(cat, "cyclonedx-json"))
    assert errors(cyclonedx_validator(), cdx_doc) == []
    assert len(cdx_doc["components"]) == len(expected) + 1  # + the OS
