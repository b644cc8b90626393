from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.images import make_index, single_image, write_image
from helpers.layout_check import assert_valid_layout
from xarch.errors import IntegrityError, NotFoundError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.manifest import Index
from xarch.transports.base import ImageSink, ImageSource
from xarch.transports.copy import copy_image
from xarch.transports.layout import LayoutSink, LayoutSource

REF_NAME = "org.opencontainers.image.ref.name"


def _blobs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def test_protocols(tmp_path: Path) -> None:
    write_image(LayoutSink(tmp_path, "t"), single_image())
    assert isinstance(LayoutSink(tmp_path, "t"), ImageSink)
    assert isinstance(LayoutSource(tmp_path, "t"), ImageSource)


def test_write_layout_is_valid_and_tagged(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    sink = LayoutSink(tmp_path / "lay", "v1")
    write_image(sink, img)
    sink.close()
    assert assert_valid_layout(tmp_path / "lay") >= 2 + 1 + 2 * 2
    index = json.loads((tmp_path / "lay" / "index.json").read_bytes())
    assert index["manifests"] == [
        {
            "mediaType": mt.OCI_INDEX,
            "digest": img.root.digest,
            "size": img.root.size,
            "annotations": {REF_NAME: "v1"},
        }
    ]
    assert not (tmp_path / "lay" / "ingest").exists()
    src = LayoutSource(tmp_path / "lay", "v1")
    assert src.resolve().digest == img.root.digest
    assert src.fetch_manifest(src.resolve()) == img.root_raw


def test_round_trip_is_byte_identical(tmp_path: Path) -> None:
    img = make_index(
        ["linux/amd64", "linux/arm/v7", "linux/s390x"], media_type=mt.DOCKER_MANIFEST_LIST
    )
    write_image(LayoutSink(tmp_path / "a", "t"), img)
    res = copy_image(LayoutSource(tmp_path / "a", "t"), LayoutSink(tmp_path / "b", "t"))
    assert res.root.digest == img.root.digest
    assert _blobs(tmp_path / "a") == _blobs(tmp_path / "b")
    assert (tmp_path / "a" / "index.json").read_bytes() == (
        tmp_path / "b" / "index.json"
    ).read_bytes()
    assert_valid_layout(tmp_path / "b")


def test_many_tags_and_retag(tmp_path: Path) -> None:
    a, b = single_image("linux/amd64"), single_image("linux/arm64")
    root = tmp_path / "lay"
    write_image(LayoutSink(root, "a"), a)
    write_image(LayoutSink(root, "b"), b)
    assert LayoutSource(root, "a").resolve().digest == a.root.digest
    assert LayoutSource(root, "b").resolve().digest == b.root.digest
    # rewriting a tag replaces its entry instead of duplicating it
    write_image(LayoutSink(root, "a"), b)
    entries = Index.parse((root / "index.json").read_bytes()).manifests
    assert [e.annotations[REF_NAME] for e in entries] == ["b", "a"]
    assert LayoutSource(root, "a").resolve().digest == b.root.digest
    with pytest.raises(UsageError, match="name one with :TAG"):
        LayoutSource(root).resolve()
    with pytest.raises(NotFoundError, match="'zzz' not found"):
        LayoutSource(root, "zzz").resolve()
    # by digest
    assert LayoutSource(root, "@" + b.root.digest).resolve().digest == b.root.digest


def test_untagged_single_entry(tmp_path: Path) -> None:
    img = single_image()
    write_image(LayoutSink(tmp_path, None), img)
    write_image(LayoutSink(tmp_path, None), img)  # no duplicate untagged entries
    assert len(Index.parse((tmp_path / "index.json").read_bytes()).manifests) == 1
    assert LayoutSource(tmp_path).resolve().digest == img.root.digest


def test_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not an OCI image layout"):
        LayoutSource(tmp_path)


def test_empty_layout(tmp_path: Path) -> None:
    from xarch.content.store import ContentStore

    ContentStore(tmp_path).init()
    with pytest.raises(NotFoundError, match="no images"):
        LayoutSource(tmp_path).resolve()


def test_corrupt_manifest_detected(tmp_path: Path) -> None:
    img = single_image()
    write_image(LayoutSink(tmp_path, "t"), img)
    p = tmp_path / "blobs" / "sha256" / img.root.digest.hex
    p.write_bytes(p.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    src = LayoutSource(tmp_path, "t")
    with pytest.raises(IntegrityError):
        src.fetch_manifest(src.resolve())


def test_commit_without_root_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LayoutSink(tmp_path, "t").commit()


def test_uncommitted_sink_does_not_tag(tmp_path: Path) -> None:
    img = single_image()
    sink = LayoutSink(tmp_path, "t")
    write_image(sink, img, commit=False)
    sink.close()
    with pytest.raises(NotFoundError):
        LayoutSource(tmp_path, "t").resolve()


# -- interop ----------------------------------------------------------------------------------

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
@skopeo
def test_skopeo_reads_and_copies_our_layout(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(LayoutSink(tmp_path / "ours", "v1"), img)
    raw = _run("skopeo", "inspect", "--raw", f"oci:{tmp_path}/ours:v1").stdout.encode()
    assert raw == img.root_raw
    _run("skopeo", "copy", "--all", f"oci:{tmp_path}/ours:v1", f"oci:{tmp_path}/theirs:v2")
    assert_valid_layout(tmp_path / "theirs")
    # and we read what skopeo wrote, byte-identical
    src = LayoutSource(tmp_path / "theirs", "v2")
    assert src.resolve().digest == img.root.digest
    res = copy_image(src, LayoutSink(tmp_path / "back", "v3"))
    assert res.root.digest == img.root.digest
    assert _blobs(tmp_path / "back") == _blobs(tmp_path / "ours")


@pytest.mark.integration
@skopeo
def test_we_read_skopeo_single_arch_output(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(LayoutSink(tmp_path / "ours", "v1"), img)
    _run(
        "skopeo",
        "copy",
        "--override-arch",
        "arm64",
        f"oci:{tmp_path}/ours:v1",
        f"oci:{tmp_path}/theirs:one",
    )
    src = LayoutSource(tmp_path / "theirs")  # the only entry
    desc = src.resolve()
    assert desc.media_type == mt.OCI_MANIFEST
    assert desc.digest in img.manifests


@pytest.mark.integration
@umoci
def test_umoci_unpacks_our_layout(tmp_path: Path) -> None:
    img = single_image(
        "linux/amd64", [{"etc/hello": b"hi there\n"}, {"usr/bin/tool": b"#!/bin/sh\n"}]
    )
    write_image(LayoutSink(tmp_path / "lay", "latest"), img)
    _run(
        "umoci",
        "unpack",
        "--rootless",
        "--image",
        f"{tmp_path}/lay:latest",
        str(tmp_path / "bundle"),
    )
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc" / "hello").read_bytes() == b"hi there\n"
    assert (rootfs / "usr" / "bin" / "tool").exists()
