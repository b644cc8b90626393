"""xarch.api directly: the event stream the renderers consume, and explicit-store use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.images import single_image
from xarch import api
from xarch.errors import UsageError
from xarch.transports.store import LocalStore

from .conftest import write_layout


def test_copy_events_cover_every_blob_with_byte_progress(tmp_path: Path) -> None:
    big = os.urandom(9 << 20)
    img = single_image("linux/amd64", {"big.bin": big}, compress=False)
    src = write_layout(tmp_path / "src", img)
    events: list[api.ProgressEvent] = []
    store = LocalStore(tmp_path / "store")
    res = api.copy(f"oci:{src}:v1", "big:1", on_event=events.append, store=store, jobs=2)
    assert res.blobs_copied == len(img.blobs) and res.bytes == sum(map(len, img.blobs.values()))
    layer = max(img.blobs, key=lambda d: len(img.blobs[d]))
    mine = [e for e in events if e.id == str(layer)]
    kinds = [e.kind for e in mine]
    assert kinds[0] == "begin" and kinds[-1] == "copy"
    progress = [e.current for e in mine if e.kind == "progress"]
    assert progress == sorted(progress) and len(progress) == 2  # every 4 MiB of 9+ MiB
    assert all(e.total == len(img.blobs[layer]) for e in mine)
    assert [e.kind for e in events].count("manifest") == 1
    assert [i.name for i in api.list_images(store)] == ["docker.io/library/big:1"]
    assert api.verify_store(store) == []


def test_copy_needs_something_to_copy(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        api.copy("oci:/x:v1", "y:1", all_platforms=False)
    with pytest.raises(UsageError):
        api.copy("oci:/x:v1", "y:1", jobs=0)


def test_verify_store_on_missing_or_foreign_dirs(tmp_path: Path) -> None:
    assert api.verify_store(LocalStore(tmp_path / "nothing")) == []
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file").write_text("x")
    problems = api.verify_store(LocalStore(tmp_path / "plain"))
    assert problems and "not an OCI image layout" in problems[0]
