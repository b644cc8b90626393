from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xarch.errors import NotFoundError, StoreError, UsageError
from xarch.snapshot.overlay import (
    MAX_MOUNT_DATA,
    Snapshotter,
    flatten,
    is_mounted,
    overlay_supported,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod / mount)")


def layers(tmp_path: Path) -> tuple[Path, Path]:
    """bottom: a, b=b1, dir/c, dir/keep ; top: b=b2, d"""
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    (bottom / "dir").mkdir(parents=True)
    top.mkdir()
    (bottom / "a").write_text("a")
    (bottom / "b").write_text("b1")
    (bottom / "dir" / "c").write_text("c")
    (bottom / "dir" / "keep").write_text("keep")
    (top / "b").write_text("b2")
    (top / "d").write_text("d")
    return bottom, top


def need_overlay(tmp_path: Path) -> None:
    ok, why = overlay_supported(tmp_path / "probe")
    if not ok:
        pytest.skip(why)


def tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISCHR(st.st_mode):
            out[rel] = f"chr {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "dir"
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = "-> " + os.readlink(p)
        else:
            out[rel] = p.read_text()
    return out


@pytest.mark.integration
@root_only
def test_overlay_prepare_write_delete_commit(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "snaps", mode="overlay")
    m = snap.prepare("k", [top, bottom])
    assert m.kind == "overlay" and m.work is not None and m.base is None
    with snap.mounted("k") as merged:
        assert merged == m.merged and is_mounted(merged)
        assert tree(merged) == {
            "a": "a",
            "b": "b2",
            "d": "d",
            "dir": "dir",
            "dir/c": "c",
            "dir/keep": "keep",
        }
        (merged / "a").unlink()
        (merged / "dir" / "c").unlink()
        (merged / "e").write_text("e")
        (merged / "b").write_text("b3")
        (merged / "opq").mkdir()
        # replace a lower dir wholesale -> opaque dir in upper
        for child in (merged / "dir").iterdir():
            child.unlink()
        (merged / "dir").rmdir()
        (merged / "dir").mkdir()
        (merged / "dir" / "new").write_text("new")
    assert not is_mounted(m.merged)
    c = snap.commit("k")
    assert c.kind == "overlay" and c.upper == m.upper and c.base is None
    assert tree(c.upper) == {
        "a": "chr 0:0",
        "b": "b3",
        "dir": "dir",
        "dir/new": "new",
        "e": "e",
        "opq": "dir",
    }
    assert os.getxattr(c.upper / "dir", "trusted.overlay.opaque") == b"y"
    # lowers untouched
    assert tree(bottom)["dir/c"] == "c" and (top / "b").read_text() == "b2"
    with pytest.raises(StoreError, match="committed"):
        snap.mount("k")
    assert snap.list() == [("k", "overlay", "committed")]
    snap.remove("k")
    assert snap.list() == []
    with pytest.raises(NotFoundError):
        snap.remove("k")


@pytest.mark.integration
@root_only
def test_committed_upper_stacks_as_lower(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "snaps")
    snap.prepare("one", [top, bottom])
    with snap.mounted("one") as merged:
        (merged / "a").unlink()
    up1 = snap.commit("one").upper
    snap.prepare("two", [up1, top, bottom])
    with snap.mounted("two") as merged:
        assert not (merged / "a").exists()
        assert (merged / "b").read_text() == "b2"
    # the copy flattener agrees with the kernel on the same stack
    flat = tmp_path / "flat"
    flatten([up1, top, bottom], flat)
    assert "a" not in tree(flat)
    assert tree(flat)["b"] == "b2"


@pytest.mark.integration
@root_only
def test_long_lowerdir_paths_use_short_links(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    lowers = []
    for i in range(40):
        d = tmp_path / ("x" * 150) / f"layer{i:03d}"
        d.mkdir(parents=True)
        (d / f"f{i}").write_text(str(i))
        lowers.append(d)
    assert sum(len(str(p)) + 1 for p in lowers) > MAX_MOUNT_DATA  # would not fit as-is
    snap = Snapshotter(tmp_path / "s")
    m = snap.prepare("deep", list(reversed(lowers)))
    assert m.kind == "overlay"
    with snap.mounted("deep") as merged:
        assert len(list(merged.iterdir())) == 40
    snap.remove("deep")


@root_only
def test_too_many_layers_flattens(tmp_path: Path) -> None:
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "s", max_lowers=1)
    m = snap.prepare("k", [top, bottom])
    assert m.kind == "copy"


@root_only
def test_copy_mode_flattens_whiteouts_and_commits(tmp_path: Path) -> None:
    bottom, top = layers(tmp_path)
    os.mknod(top / "a", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # overlay whiteout
    (top / ".wh.d-never").write_text("")  # AUFS-style whiteout for a missing file: no-op
    (top / "dir").mkdir()
    os.setxattr(top / "dir", "trusted.overlay.opaque", b"y")
    (top / "dir" / "only").write_text("only")
    (bottom / "link").symlink_to("b")
    os.link(bottom / "b", bottom / "b-hard")
    snap = Snapshotter(tmp_path / "s", mode="copy")
    m = snap.prepare("k", [top, bottom])
    assert m.kind == "copy" and m.base is not None and m.upper == m.merged
    expected = {
        "b": "b2",
        "b-hard": "b1",
        "d": "d",
        "dir": "dir",
        "dir/only": "only",
        "link": "-> b",
    }
    assert tree(m.base) == expected
    with snap.mounted("k") as merged:
        assert tree(merged) == expected
        (merged / "new").write_text("n")
        (merged / "d").unlink()
    c = snap.commit("k")
    assert c.kind == "copy" and c.base == m.base
    assert tree(c.base) == expected  # the differ's "before" is untouched
    assert tree(c.upper) == {**{k: v for k, v in expected.items() if k != "d"}, "new": "n"}
    snap.remove("k")
    assert not m.base.exists()


def test_flatten_aufs_whiteouts_without_root(tmp_path: Path) -> None:
    bottom, top = layers(tmp_path)
    (top / ".wh.a").write_text("")
    (top / "dir").mkdir()
    (top / "dir" / ".wh..wh..opq").write_text("")
    (top / "dir" / "x").write_text("x")
    flatten([top, bottom], tmp_path / "out")
    assert tree(tmp_path / "out") == {"b": "b2", "d": "d", "dir": "dir", "dir/x": "x"}


def test_copy_mode_lifecycle_errors(tmp_path: Path) -> None:
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "s", mode="copy")
    snap.prepare("k", [top, bottom])
    with pytest.raises(StoreError, match="already exists"):
        snap.prepare("k", [top])
    with pytest.raises(NotFoundError):
        snap.prepare("k2", [tmp_path / "missing"])
    assert [k for k, _, _ in snap.list()] == ["k"]  # nothing left behind by the failure
    with pytest.raises(NotFoundError):
        snap.mount("nope")
    with pytest.raises(UsageError):
        snap.prepare("", [top])
    with pytest.raises(UsageError):
        Snapshotter(tmp_path / "x", mode="zfs")  # type: ignore[arg-type,unused-ignore]


def test_scratch_snapshot_has_no_parents(tmp_path: Path) -> None:
    snap = Snapshotter(tmp_path / "s", mode="copy")
    m = snap.prepare("scratch", [])
    assert list(m.merged.iterdir()) == []


@pytest.mark.integration
@root_only
def test_overlay_scratch(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    snap = Snapshotter(tmp_path / "s", mode="overlay")
    snap.prepare("scratch", [])
    with snap.mounted("scratch") as merged:
        (merged / "f").write_text("x")
    assert tree(snap.commit("scratch").upper) == {"f": "x"}


@pytest.mark.integration
@root_only
def test_remove_unmounts_first(tmp_path: Path) -> None:
    need_overlay(tmp_path)
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "s")
    m = snap.prepare("k", [top, bottom])
    snap.mount("k")
    assert snap.mount("k") == m.merged  # idempotent
    snap.remove("k")
    assert not is_mounted(m.merged)
    assert (bottom / "a").read_text() == "a"  # rmtree never went through the mount


def test_flatten_never_writes_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    bottom.mkdir()
    top.mkdir()
    (bottom / "dir").symlink_to(outside)  # absolute link out of the tree
    (bottom / "f").symlink_to(outside / "victim")
    (top / "dir").mkdir()
    (top / "dir" / "file").write_text("in tree")
    (top / "f").write_text("replaced")
    (top / ".wh.nothing").write_text("")
    flatten([top, bottom], tmp_path / "out")
    assert list(outside.iterdir()) == []
    assert tree(tmp_path / "out") == {"dir": "dir", "dir/file": "in tree", "f": "replaced"}


@pytest.mark.integration
@root_only
def test_overlay_upper_is_a_valid_changeset(tmp_path: Path) -> None:
    """Directory renames must not leave redirect xattrs the OCI differ cannot express."""
    diff = pytest.importorskip("xarch.archive.diff")
    import shutil

    need_overlay(tmp_path)
    bottom, top = layers(tmp_path)
    snap = Snapshotter(tmp_path / "s", mode="overlay")
    snap.prepare("k", [top, bottom])
    with snap.mounted("k") as merged:
        # rename(2) of a lower dir gives EXDEV with redirect_dir=off; move copies + deletes
        shutil.move(merged / "dir", merged / "moved")
        (merged / "a").unlink()
    c = snap.commit("k")
    names = [e.name for e in diff.diff_overlay_upper(c.upper)]
    assert ".wh.dir" in names and ".wh.a" in names
    assert "moved" in names
