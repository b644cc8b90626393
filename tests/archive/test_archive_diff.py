from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.archive.conftest import requires_root, snapshot

from xarch.archive import (
    EntryType,
    TarEntry,
    apply_layer,
    diff_overlay_upper,
    diff_trees,
    write_layer,
)
from xarch.errors import InputError

T0 = 1_700_000_000


def _lower(root: Path) -> None:
    (root / "etc/conf.d").mkdir(parents=True)
    (root / "etc/conf.d/a").write_text("a")
    (root / "etc/conf.d/b").write_text("b")
    (root / "etc/os-release").write_text("ID=test\n")
    (root / "etc/same-size").write_text("AAAA")
    (root / "var/lib/pkg").mkdir(parents=True)
    (root / "var/lib/pkg/db").write_text("db")
    (root / "opt/old").mkdir(parents=True)
    (root / "opt/old/file").write_text("old")
    (root / "becomes-dir").write_text("file")
    (root / "becomes-file").mkdir()
    (root / "becomes-file/child").write_text("c")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("tool")
    os.symlink("usr/bin", root / "bin")
    _stamp(root)


def _stamp(root: Path, t: int = T0) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)


def _mutate(m: Path) -> None:
    """A RUN step's worth of changes, applied to a full tree (or an overlay mount)."""
    (m / "etc/os-release").write_text("ID=changed\n")
    os.chmod(m / "etc/conf.d/b", 0o600)
    shutil.rmtree(m / "etc/conf.d")  # ... then recreated: opaque in overlay terms
    (m / "etc/conf.d").mkdir()
    (m / "etc/conf.d/c").write_text("c")
    shutil.rmtree(m / "var/lib/pkg")
    (m / "opt/old/file").unlink()
    (m / "becomes-dir").unlink()
    (m / "becomes-dir").mkdir()
    (m / "becomes-dir/inner").write_text("inner")
    shutil.rmtree(m / "becomes-file")
    (m / "becomes-file").write_text("now a file")
    (m / "new").mkdir()
    (m / "new/h1").write_text("linked")
    os.link(m / "new/h1", m / "new/h2")
    os.symlink("../usr/bin/tool", m / "new/tool")


def _round_trip(
    lower: Path, entries: Iterator[TarEntry], expected: dict[str, tuple[object, ...]], tmp: Path
) -> None:
    r = write_layer(entries, compression="gzip")
    assert r.data is not None
    target = tmp / "applied"
    subprocess.run(["cp", "-a", str(lower), str(target)], check=True)
    apply_layer(io.BytesIO(r.data), target, diff_id=r.diff_id)
    assert snapshot(target, whole_seconds=True) == expected


def test_diff_trees_round_trip(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _lower(lower)
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    _mutate(upper)
    # same size, same whole-second mtime, different bytes: only a content compare sees it
    (upper / "etc/same-size").write_text("BBBB")
    os.utime(upper / "etc/same-size", (T0, T0))
    entries = list(diff_trees(lower, upper))
    names = [e.path for e in entries]
    assert "etc/same-size" in names
    assert "usr/bin/tool" not in names and "bin" not in names  # unchanged
    assert "var/lib/.wh.pkg" in names and "var/lib/pkg/db" not in names
    assert "opt/old/.wh.file" in names
    assert "etc/conf.d/.wh.a" in names and "etc/conf.d/.wh.b" in names
    h2 = next(e for e in entries if e.path == "new/h2")
    assert h2.type is EntryType.HARDLINK and h2.linkname == "new/h1"
    # parents of changes come first
    assert names.index("var") < names.index("var/lib") < names.index("var/lib/.wh.pkg")
    _round_trip(lower, iter(entries), snapshot(upper, whole_seconds=True), tmp_path)


def test_diff_trees_identical_trees_is_empty(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    _lower(lower)
    subprocess.run(["cp", "-a", str(lower), str(tmp_path / "copy")], check=True)
    assert list(diff_trees(lower, tmp_path / "copy")) == []


def test_diff_trees_metadata_only_change(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    _lower(lower)
    subprocess.run(["cp", "-a", str(lower), str(tmp_path / "u")], check=True)
    os.chmod(tmp_path / "u/usr/bin/tool", 0o755)
    os.utime(tmp_path / "u/usr/bin/tool", (T0, T0))
    assert [e.path for e in diff_trees(lower, tmp_path / "u")] == ["usr", "usr/bin", "usr/bin/tool"]


def test_diff_is_deterministic_and_epoch_clamped(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _lower(lower)
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    _mutate(upper)
    a = write_layer(diff_trees(lower, upper, source_date_epoch=T0 - 10), compression="zstd")
    b = write_layer(diff_trees(lower, upper, source_date_epoch=T0 - 10), compression="zstd")
    assert (a.blob_digest, a.diff_id) == (b.blob_digest, b.diff_id)
    assert all(e.mtime <= T0 - 10 for e in diff_trees(lower, upper, source_date_epoch=T0 - 10))


@requires_root
def test_overlay_upper_by_hand(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc/conf.d").mkdir(parents=True)
    os.setxattr(upper / "etc/conf.d", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "etc/conf.d", "trusted.overlay.origin", b"\x00junk")
    (upper / "etc/conf.d/c").write_text("c")
    os.mknod(upper / "etc/gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a real device stays one
    entries = list(diff_overlay_upper(upper))
    got = [(e.path, e.type) for e in entries]
    assert got == [
        ("etc", EntryType.DIR),
        ("etc/conf.d", EntryType.DIR),
        ("etc/conf.d/.wh..wh..opq", EntryType.FILE),
        ("etc/conf.d/c", EntryType.FILE),
        ("etc/.wh.gone", EntryType.FILE),
        ("null", EntryType.CHAR),
    ]
    assert all(not x[0].startswith("trusted.overlay.") for e in entries for x in e.xattrs)


@requires_root
def test_overlay_upper_rejects_redirects(tmp_path: Path) -> None:
    (tmp_path / "u/d").mkdir(parents=True)
    os.setxattr(tmp_path / "u/d", "trusted.overlay.redirect", b"/old")
    with pytest.raises(InputError, match="redirect_dir=off"):
        list(diff_overlay_upper(tmp_path / "u"))


def _mount_overlay(tmp: Path, lower: Path) -> tuple[Path, Path]:
    upper, work, merged = tmp / "ovl-upper", tmp / "ovl-work", tmp / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    res = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlay: {res.stderr.strip()}")
    return upper, merged


@pytest.mark.integration
@requires_root
def test_real_overlay_mount_diff_round_trip(tmp_path: Path) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount binary")
    lower = tmp_path / "lower"
    _lower(lower)
    upper, merged = _mount_overlay(tmp_path, lower)
    try:
        _mutate(merged)
        expected = snapshot(merged, whole_seconds=True)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    entries = list(diff_overlay_upper(upper))
    names = [e.path for e in entries]
    assert "etc/conf.d/.wh..wh..opq" in names
    assert "var/lib/.wh.pkg" in names and "opt/old/.wh.file" in names
    for i, n in enumerate(names):  # parents before children
        parent = n.rpartition("/")[0]
        assert not parent or parent in names[:i]
    _round_trip(lower, iter(entries), expected, tmp_path)

    # overlay mode: the extracted layer stacked on the lower gives the same merged view again
    layer_dir = tmp_path / "layer1"
    layer_dir.mkdir()
    r = write_layer(iter(entries), compression="none")
    assert r.data is not None
    apply_layer(io.BytesIO(r.data), layer_dir, mode="overlay")
    merged2 = tmp_path / "merged2"
    merged2.mkdir()
    res = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={layer_dir}:{lower}", str(merged2)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    try:
        assert snapshot(merged2, whole_seconds=True) == expected
    finally:
        subprocess.run(["umount", str(merged2)], check=True)


@pytest.mark.parametrize("epoch", [None, 1700000000, T0 - 10])
def test_whiteouts_have_mtime_zero_whatever_the_epoch(tmp_path: Path, epoch: int | None) -> None:
    """BuildKit v0.32 writes every whiteout with mtime 0, with SOURCE_DATE_EPOCH too
    (seen in its layers with rewrite-timestamp=true): the diffID depends on it."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _lower(lower)
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    _mutate(upper)
    entries = list(diff_trees(lower, upper, source_date_epoch=epoch))
    whiteouts = [e for e in entries if os.path.basename(e.path).startswith(".wh.")]
    assert whiteouts, [e.path for e in entries]
    assert all(e.mtime == 0 for e in whiteouts), [(e.path, e.mtime) for e in whiteouts]
