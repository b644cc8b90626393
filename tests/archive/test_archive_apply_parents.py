"""Overlay-mode extraction over parents (issue 11, item 4): an entry under a directory that is
a symlink in a lower layer goes where the symlink points, as flattening the layer tars does,
so per-layer dirs stacked by overlayfs (or snapshot.flatten) show what export and sbom show."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from tests.archive.symlinked_parents import (
    CASES,
    OUTSIDE_ABS,
    check_expected,
    extract_layers,
    flatten_tars,
    tar,
    tree,
)

from xarch.archive.apply import apply_layer
from xarch.errors import IntegrityError, UsageError
from xarch.snapshot.overlay import flatten, overlay_supported

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, mount)")
pytestmark = root_only


@pytest.mark.parametrize("case", sorted(CASES))
def test_stacked_layer_dirs_show_the_flattened_image(case: str, tmp_path: Path) -> None:
    layers, expected = CASES[case]
    ref = tree(flatten_tars(layers, tmp_path / "ref"))
    check_expected(ref, expected)
    dirs = extract_layers(layers, tmp_path / "dirs")
    got = tree(flatten(dirs, tmp_path / "copy") or tmp_path / "copy")
    assert got == ref


@pytest.mark.parametrize("case", sorted(CASES))
def test_overlay_mount_of_layer_dirs_shows_the_flattened_image(case: str, tmp_path: Path) -> None:
    ok, why = overlay_supported(tmp_path / "probe")
    if not ok:
        pytest.skip(why)
    layers, expected = CASES[case]
    ref = tree(flatten_tars(layers, tmp_path / "ref"))
    dirs = extract_layers(layers, tmp_path / "dirs")
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(str(d) for d in dirs) if len(dirs) > 1 else f"{dirs[0]}:{tmp_path / 'empty'}"
    (tmp_path / "empty").mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", str(merged)], check=True
    )
    try:
        got = tree(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    check_expected(got, expected)
    assert got == ref


def test_entry_lands_at_the_physical_path(tmp_path: Path) -> None:
    layers, _ = CASES["relative"]
    top, bottom = extract_layers(layers, tmp_path)
    assert (top / "usr/lib/x/f").read_text() == "1"
    assert not os.path.lexists(top / "lib"), "the layer dir must not shadow the lower symlink"
    # the implied parents stand for the lower dirs: no libc.so copied, metadata kept
    assert sorted(os.listdir(top / "usr/lib")) == ["x"]
    assert (top / "usr/lib").stat().st_mtime == (bottom / "usr/lib").stat().st_mtime


def test_whiteout_and_opaque_land_under_the_link_target(tmp_path: Path) -> None:
    top, _ = extract_layers(CASES["whiteout"][0], tmp_path / "w")
    st = os.lstat(top / "usr/lib/old")
    assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert not os.path.lexists(top / "lib")
    top, _ = extract_layers(CASES["opaque"][0], tmp_path / "o")
    assert os.getxattr(top / "usr/lib/x", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(top / "lib")


def test_lower_dir_metadata_is_copied_to_implied_parents(tmp_path: Path) -> None:
    top, _ = extract_layers(CASES["lower-dir-metadata"][0], tmp_path)
    st = (top / "usr/lib").stat()
    assert (st.st_mode & 0o7777, st.st_uid) == (0o750, 7)


@pytest.mark.parametrize("case", ["outside-relative", "outside-absolute"])
def test_links_out_of_the_root_resolve_inside(case: str, tmp_path: Path) -> None:
    base = tmp_path / "a" / "b" / "c"
    extract_layers(CASES[case][0], base)
    flatten_tars(CASES[case][0], tmp_path / "ref")
    assert not os.path.lexists(OUTSIDE_ABS.rsplit("/", 1)[0])
    for dirpath, _dirs, files in os.walk(tmp_path):
        if "f" in files:
            inside = Path(dirpath).relative_to(tmp_path).parts[0] in ("a", "ref")
            assert inside and ("layer1" in dirpath or "ref" in dirpath), dirpath


def test_own_symlink_out_of_the_root_is_refused_over_parents(tmp_path: Path) -> None:
    dirs = extract_layers([[("dir", "etc/", "")]], tmp_path / "dirs")
    evil = tar([("symlink", "evil", "/etc"), ("file", "evil/passwd", "x")])
    top = tmp_path / "top"
    top.mkdir()
    with pytest.raises(IntegrityError, match="points outside the root"):
        apply_layer(io.BytesIO(evil), top, mode="overlay", parents=dirs)


def test_lower_symlink_loop_is_refused(tmp_path: Path) -> None:
    dirs = extract_layers([[("symlink", "a", "b"), ("symlink", "b", "a")]], tmp_path / "dirs")
    top = tmp_path / "top"
    top.mkdir()
    with pytest.raises(IntegrityError, match="symbolic links"):
        apply_layer(io.BytesIO(tar([("file", "a/f", "x")])), top, mode="overlay", parents=dirs)


def test_file_under_a_lower_file_is_malformed(tmp_path: Path) -> None:
    dirs = extract_layers([[("file", "lib", "not a dir")]], tmp_path / "dirs")
    top = tmp_path / "top"
    top.mkdir()
    with pytest.raises(IntegrityError, match="not a directory"):
        apply_layer(io.BytesIO(tar([("file", "lib/f", "x")])), top, mode="overlay", parents=dirs)


def test_parents_need_overlay_mode(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        apply_layer(
            io.BytesIO(tar([("file", "f", "x")])), tmp_path, mode="flatten", parents=[tmp_path]
        )
