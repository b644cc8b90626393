from __future__ import annotations

import multiprocessing
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.images import make_index, single_image, write_image
from helpers.layout_check import assert_valid_layout
from xarch.errors import NotFoundError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest
from xarch.transports.base import ImageSink, ImageSource
from xarch.transports.copy import copy_image
from xarch.transports.store import (
    CREATED,
    LocalStore,
    default_store_root,
    normalize_name,
    xarch_home,
)

REF_NAME = "org.opencontainers.image.ref.name"


def test_default_root(tmp_path: Path) -> None:
    assert default_store_root({"XARCH_HOME": "/x"}) == Path("/x/store")
    assert default_store_root({"XDG_DATA_HOME": "/d", "HOME": "/h"}) == Path("/d/xarch/store")
    assert default_store_root({"HOME": "/h"}) == Path("/h/.local/share/xarch/store")
    assert xarch_home({"XARCH_HOME": "/x", "XDG_DATA_HOME": "/d"}) == Path("/x")


def test_normalize_name() -> None:
    assert normalize_name("hello") == "docker.io/library/hello:latest"
    assert normalize_name("hello:1") == "docker.io/library/hello:1"
    assert normalize_name("localhost/app:dev") == "localhost/app:dev"
    assert normalize_name("ghcr.io/o/r") == "ghcr.io/o/r:latest"
    d = "sha256:" + "a" * 64
    assert normalize_name(f"app@{d}") == f"docker.io/library/app@{d}"
    with pytest.raises(UsageError):
        normalize_name("Bad Name")


def test_sink_source_list_tag_remove(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    img = make_index(["linux/amd64", "linux/arm64"])
    sink = store.sink("hello:1")
    assert isinstance(sink, ImageSink)
    write_image(sink, img)
    assert_valid_layout(tmp_path)
    [entry] = store.list()
    assert entry.name == "docker.io/library/hello:1"
    assert entry.descriptor.digest == img.root.digest
    assert entry.created is not None
    src = store.source("hello:1")
    assert isinstance(src, ImageSource)
    assert src.resolve().digest == img.root.digest
    assert src.fetch_manifest(src.resolve()) == img.root_raw
    # tag
    store.tag("hello:1", "localhost/other:2")
    assert [e.name for e in store.list()] == ["docker.io/library/hello:1", "localhost/other:2"]
    assert store.resolve("localhost/other:2").digest == img.root.digest
    # retag over an existing name replaces it
    other = single_image("linux/s390x")
    write_image(store.sink("localhost/other:2"), other)
    assert store.resolve("localhost/other:2").digest == other.root.digest
    assert len(store.list()) == 2
    # by digest
    assert store.resolve(f"whatever@{img.root.digest}").digest == img.root.digest
    child = next(d for d in img.manifests if d != img.root.digest)
    assert store.resolve(f"x@{child}").media_type == mt.OCI_MANIFEST
    # remove
    store.remove("hello:1")
    with pytest.raises(NotFoundError, match="not found in the local store"):
        store.resolve("hello:1")
    with pytest.raises(NotFoundError):
        store.remove("hello:1")
    with pytest.raises(NotFoundError):
        store.tag("nope:1", "x:1")
    # annotations on disk
    entries = store.content.read_index()
    assert entries[0].annotations[REF_NAME] == "localhost/other:2"
    assert CREATED in entries[0].annotations


def test_sink_needs_a_tag(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LocalStore(tmp_path).sink("app@sha256:" + "b" * 64)


def test_prune(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    a = make_index(["linux/amd64", "linux/arm64"])
    b = single_image("linux/riscv64")
    write_image(store.sink("a:1"), a)
    write_image(store.sink("b:1"), b)
    # a referrer (signature-like artifact) whose subject is a's index: kept while a is
    payload = b'{"sig":"x"}'
    store.content.ingest_bytes(payload)
    empty = b"{}"
    store.content.ingest_bytes(empty)
    ref_manifest = Manifest.build(
        Descriptor.of(mt.OCI_EMPTY, empty),
        [Descriptor.of("application/vnd.example.sig", payload)],
        subject=a.root,
        artifact_type="application/vnd.example.sig",
    )
    store.content.ingest_bytes(ref_manifest.raw)
    # unreferenced garbage
    store.content.ingest_bytes(b"garbage" * 100)
    report = store.prune()
    assert report.removed_blobs == 1 and report.freed_bytes == 700
    assert store.verify() == []
    assert store.content.has(ref_manifest.digest) and store.content.has(Digest.from_bytes(payload))
    # remove b: its blobs go
    store.remove("b:1")
    report = store.prune()
    assert report.removed_blobs == len(b.blobs) + 1
    assert store.verify() == []
    # remove a: a's content and its referrer go, the store is empty
    store.remove("a:1")
    report = store.prune()
    assert list(store.content.walk()) == []
    assert store.prune().removed_blobs == 0


@pytest.mark.integration
def test_store_readable_by_skopeo(tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    store = LocalStore(tmp_path / "s")
    img = single_image()
    write_image(store.sink("localhost/app:dev"), img)
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{tmp_path}/s:localhost/app:dev"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    assert out == img.root_raw


# -- concurrency ------------------------------------------------------------------------------


def _worker(root: str, n: int) -> None:
    store = LocalStore(Path(root))
    shared = make_index(["linux/amd64", "linux/arm64", "linux/ppc64le"])
    own = single_image("linux/amd64", {f"file-{n}": b"x" * (n + 1) * 1000})
    for i in range(3):
        write_image(store.sink(f"shared:{n}-{i}"), shared)
        write_image(store.sink(f"own-{n}:{i}"), own)
        write_image(store.sink("same:latest"), shared if n % 2 else own)
    if n == 0:
        store.prune()  # concurrent GC must never take referenced content away


def test_concurrent_writers(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = LocalStore(tmp_path)
    assert store.verify() == []
    names = {e.name for e in store.list()}
    for n in range(4):
        for i in range(3):
            assert f"docker.io/library/shared:{n}-{i}" in names
            assert f"docker.io/library/own-{n}:{i}" in names
    assert "docker.io/library/same:latest" in names
    assert len(names) == 4 * 3 * 2 + 1
    # every image is fully copyable out of the store
    for e in store.list():
        from xarch.transports.layout import LayoutSink

        copy_image(store.source(e.name), LayoutSink(tmp_path / "out", e.name.replace("/", "_")))
    assert_valid_layout(tmp_path / "out")
    store.prune()
    assert store.verify() == []


def test_prune_waits_for_writers_then_fails(tmp_path: Path) -> None:
    from xarch.errors import StoreError

    store = LocalStore(tmp_path)
    img = single_image()
    sink = store.sink("app:1")
    write_image(sink, img, commit=False)  # blobs ingested, not yet tagged: must survive GC
    with pytest.raises(StoreError, match="in use"):
        store.prune(wait=0.2)
    sink.commit()
    assert store.prune().removed_blobs == 0
    assert store.verify() == []
