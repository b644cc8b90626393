"""Snapshots over layers written under a lower layer's symlinked directory (issue 11, item 4):
both snapshot kinds (overlay mount, copy-mode flatten) show what flattening the layer tars
shows, and a step writing through the symlink writes where it points."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.archive.symlinked_parents import (
    CASES,
    check_expected,
    extract_layers,
    flatten_tars,
    tree,
)

from xarch.snapshot.overlay import Snapshotter, overlay_supported

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, mount)")

SNAP_CASES = [
    "relative",
    "absolute",
    "nested",
    "whiteout",
    "opaque",
    "outside-relative",
    "replaced-by-dir",
    "whiteout-of-link-then-dir",
    "hardlink-to-lower",
]


@pytest.fixture(params=["copy", "overlay"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "overlay":
        ok, why = overlay_supported(tmp_path / "probe")
        if not ok:
            pytest.skip(why)
    return str(request.param)


@pytest.mark.parametrize("case", SNAP_CASES)
def test_snapshot_shows_the_flattened_image(case: str, kind: str, tmp_path: Path) -> None:
    layers, expected = CASES[case]
    ref = tree(flatten_tars(layers, tmp_path / "ref"))
    dirs = extract_layers(layers, tmp_path / "layers")
    snap = Snapshotter(tmp_path / "snaps", mode=kind)  # type: ignore[arg-type]
    m = snap.prepare("k", dirs)
    assert m.kind == kind
    try:
        with snap.mounted("k") as root:
            got = tree(root)
    finally:
        snap.remove("k")
    check_expected(got, expected)
    assert got == ref


@pytest.mark.parametrize("case", ["relative", "nested"])
def test_write_through_the_symlink_in_a_snapshot(case: str, kind: str, tmp_path: Path) -> None:
    layers, _ = CASES[case]
    dirs = extract_layers(layers, tmp_path / "layers")
    snap = Snapshotter(tmp_path / "snaps", mode=kind)  # type: ignore[arg-type]
    snap.prepare("k", dirs)
    try:
        with snap.mounted("k") as root:
            assert (root / "lib").is_symlink()
            assert (root / "lib/x/f").read_text() == "1"
            (root / "lib/x/g").write_text("2")
            assert (root / "lib").is_symlink()
            target = (root / "lib").resolve().relative_to(root.resolve())
            assert (root / target / "x/g").read_text() == "2"
    finally:
        snap.remove("k")
