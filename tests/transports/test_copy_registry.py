"""copy_image against a real registry (Debian's docker-registry, distribution 2.8)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.images import make_index, write_image
from helpers.layout_check import assert_valid_layout
from helpers.registry import RunningRegistry, registry_available, start_registry
from xarch.oci.platform import Platform
from xarch.transports.copy import CopyEvent, copy_image
from xarch.transports.layout import LayoutSink
from xarch.transports.resolve import open_sink, open_source, parse_location
from xarch.transports.store import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRegistry]:
    if not registry_available():
        pytest.skip("/usr/bin/docker-registry is not installed")
    monkeypatch.setenv("DOCKER_CONFIG", os.fspath(tmp_path / "docker-env"))
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        reg.stop()


def test_layout_to_registry_to_store(tmp_path: Path, registry: RunningRegistry) -> None:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    write_image(LayoutSink(tmp_path / "lay", "v1"), img)
    store = LocalStore(tmp_path / "store")

    def copy(src: str, dst: str, **kw):  # type: ignore[no-untyped-def]
        s = open_source(parse_location(src, default_store=store))
        d = open_sink(parse_location(dst, default_store=store))
        try:
            return copy_image(s, d, **kw)
        finally:
            s.close()
            d.close()

    r1 = copy(f"oci:{tmp_path}/lay:v1", f"{registry.url}/team/app:1")
    assert r1.root.digest == img.root.digest and r1.blobs_copied == len(img.blobs)
    # registry → another repository on the same registry: blobs are mounted, not uploaded
    events: list[CopyEvent] = []
    r2 = copy(f"{registry.url}/team/app:1", f"{registry.url}/other/app:2", on_event=events.append)
    assert r2.root.digest == img.root.digest
    assert r2.blobs_mounted == len(img.blobs) and r2.blobs_copied == 0
    assert {e.kind for e in events} == {"mount", "manifest"}
    # again: everything exists
    r3 = copy(f"oci:{tmp_path}/lay:v1", f"{registry.url}/team/app:1")
    assert r3.blobs_skipped == len(img.blobs)
    # registry → store (one platform) and store → layout
    r4 = copy(f"{registry.url}/other/app:2", "app:arm", platforms=[Platform.parse("arm64")])
    assert r4.root.digest in img.manifests
    assert store.verify() == []
    copy("store:app:arm", f"oci:{tmp_path}/out:x")
    assert_valid_layout(tmp_path / "out")
