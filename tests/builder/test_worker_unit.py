"""Worker helpers that need no runtime: copy-up pruning, error tails, --parents pivots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xarch.builder.fileop import CopySpec, SourceTree, _parents_rel, copy
from xarch.builder.worker import _last_lines, prune_copied_up_dirs


def _dir(p: Path, mtime: int = 1000) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    os.utime(p, (mtime, mtime))
    return p


def test_prune_removes_unchanged_copied_up_dirs(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _dir(lower / "etc" / "deep")
    _dir(lower / "etc")
    _dir(lower / "var")
    _dir(upper)
    _dir(upper / "etc" / "deep")  # copy-up with the same metadata
    _dir(upper / "etc")
    _dir(upper / "var")
    os.chmod(upper / "var", 0o700)  # metadata change: a real change
    _dir(upper / "new")  # not in the lower: a real change
    (upper / "keepme").mkdir()
    (upper / "keepme" / "f").write_text("x")  # has content: kept
    removed = prune_copied_up_dirs(upper, [lower])
    assert removed == 2
    assert sorted(os.listdir(upper)) == ["keepme", "new", "var"]


def test_prune_keeps_dirs_whose_lower_is_hidden(tmp_path: Path) -> None:
    top, bottom, upper = tmp_path / "top", tmp_path / "bottom", tmp_path / "upper"
    _dir(bottom / "a" / "b")
    _dir(bottom / "a")
    _dir(top)
    os.mknod(top / "a", 0o600 | 0o020000, 0)  # whiteout char device 0/0 hides bottom's a
    _dir(upper / "a" / "b")
    _dir(upper / "a")
    assert prune_copied_up_dirs(upper, [top, bottom]) == 0
    assert (upper / "a" / "b").is_dir()


def test_prune_mtime_change_is_a_change(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _dir(lower / "d", 1000)
    _dir(upper / "d", 2000)
    assert prune_copied_up_dirs(upper, [lower]) == 0


def test_last_lines_is_one_line() -> None:
    assert _last_lines("a\nb\n\nc\nd\n") == "b | c | d"
    assert _last_lines("") == "(none)"
    long = _last_lines("x" * 1000)
    assert len(long) <= 303 and "\n" not in long


@pytest.mark.parametrize(
    ("rel", "pattern", "kept"),
    [
        ("src/lib/util.h", "./src/./lib/util.h", "lib/util.h"),  # leading ./ is no pivot
        ("src/lib/util.h", "src/./lib/util.h", "lib/util.h"),
        ("src/lib/util.h", "/./src/lib/util.h", "src/lib/util.h"),
        ("src/lib/util.h", "src/lib/util.h", "src/lib/util.h"),
        ("src/lib/util.h", "./src/lib/util.h", "src/lib/util.h"),
    ],
)
def test_parents_pivot(rel: str, pattern: str, kept: str) -> None:
    assert _parents_rel(rel, pattern) == kept


def test_parents_copy_with_leading_dot(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "lib").mkdir(parents=True)
    (ctx / "src" / "lib" / "util.h").write_text("h")
    dst = tmp_path / "dst"
    dst.mkdir()
    copy(SourceTree(ctx), dst, CopySpec(("./src/./lib/util.h",), "/q/", parents=True))
    assert (dst / "q" / "lib" / "util.h").read_text() == "h"


def test_layer_dir_creation_is_locked_across_processes(tmp_path: Path) -> None:
    """Another process holding the layer's lock (it is adopting or extracting the same layer)
    makes this one wait, then see the layer complete and leave it alone."""
    import subprocess
    import sys
    import time

    from xarch.builder.worker import BuildWorker, WorkerOptions
    from xarch.content.store import ContentStore
    from xarch.oci.digest import Digest

    store = ContentStore(tmp_path / "store")
    worker = BuildWorker(store, tmp_path / "home", lambda: None,
                         WorkerOptions(context_dir=tmp_path))
    diff_id = Digest("sha256:" + "ab" * 32)
    hexd = diff_id.hex
    layers = worker.layers_dir
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, time, pathlib
layers = pathlib.Path({str(layers)!r})
with open(layers / "{hexd}.lock", "a+") as fh:
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(1.0)
    (layers / "{hexd}").mkdir()
    (layers / "{hexd}" / "theirs").write_text("x")
    (layers / "{hexd}.complete").touch()
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "mine").write_text("y")
    t0 = time.monotonic()
    worker._adopt_upper(upper, diff_id)
    waited = time.monotonic() - t0
    holder.wait(timeout=10)
    assert waited > 0.5, f"did not wait for the other process ({waited:.2f}s)"
    assert sorted(os.listdir(layers / hexd)) == ["theirs"]  # the complete layer was kept
