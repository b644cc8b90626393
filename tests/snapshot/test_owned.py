"""Snapshots carry their owner: what a killed or cancelled build left is found and removed,
and another owner's snapshots are never touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from xarch.errors import UsageError
from xarch.snapshot.overlay import Snapshotter, is_mounted, mounts_below, unmount_below

from .test_overlay import layers, need_overlay, root_only


def test_remove_owned_takes_only_that_owners_snapshots(tmp_path: Path) -> None:
    bottom, top = layers(tmp_path)
    root = tmp_path / "s"
    mine = Snapshotter(root, mode="copy", owner="111-aaaa")
    theirs = Snapshotter(root, mode="copy", owner="222-bbbb")
    a1 = mine.prepare("a1", [top, bottom])
    mine.prepare("a2", [bottom])
    mine.commit("a2")  # committed, not yet removed: still the owner's
    b = theirs.prepare("b", [bottom])
    unowned = Snapshotter(root, mode="copy").prepare("legacy", [bottom])
    assert theirs.owners() == {"111-aaaa", "222-bbbb"}
    assert len(theirs.remove_owned("111-aaaa")) == 2
    assert not a1.merged.exists()
    assert sorted(k for k, _, _ in mine.list()) == ["b", "legacy"]
    assert (b.merged / "a").read_text() == "a"
    assert unowned.merged.exists()
    assert theirs.remove_owned("111-aaaa") == []


def test_owner_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Snapshotter(tmp_path / "s", mode="copy", owner="../x")


@pytest.mark.integration
@root_only
def test_remove_owned_unmounts_overlays_first(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    bottom, top = layers(tmp_path)
    root = tmp_path / "s"
    mine = Snapshotter(root, mode="overlay", owner="111-aaaa")
    theirs = Snapshotter(root, mode="overlay", owner="222-bbbb")
    m = mine.prepare("a", [top, bottom])
    merged = mine.mount("a")
    (merged / "new").write_text("x")
    other = theirs.prepare("b", [bottom])
    theirs.mount("b")
    try:
        assert mine.remove_owned("111-aaaa") == [m.merged.parent.name]
        assert not is_mounted(m.merged) and not m.merged.parent.exists()
        assert bottom.joinpath("a").read_text() == "a"  # never removed through the mount
        assert is_mounted(other.merged)  # another owner's mount stays
    finally:
        theirs.remove("b")


@pytest.mark.integration
@root_only
def test_unmount_below_takes_nested_mounts_deepest_first(tmp_path: Path) -> None:
    outer, inner = tmp_path / "x", tmp_path / "x" / "y"
    outer.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(outer)], check=True)
    try:
        inner.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
        (tmp_path / "z").mkdir()
        assert mounts_below(tmp_path) == [inner, outer]
        assert unmount_below(tmp_path) == [inner, outer]
        assert mounts_below(tmp_path) == []
        assert unmount_below(tmp_path) == []
    finally:
        for p in (inner, outer):
            if is_mounted(p):
                subprocess.run(["umount", "-l", str(p)], check=False)
    assert os.listdir(outer) == []
