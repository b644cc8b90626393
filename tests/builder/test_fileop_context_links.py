"""COPY never reads outside the build context, whatever its symlinks say (as BuildKit: a
context's links resolve inside the context; links inside copied trees are copied as links)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xarch.builder.fileop import CopySpec, SourceTree, copy
from xarch.errors import NotFoundError

SECRET = "host secret"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    h = tmp_path / "host"
    (h / "etc").mkdir(parents=True)
    (h / "etc" / "shadow").write_text(SECRET)
    return h


@pytest.fixture
def ctx(tmp_path: Path, host: Path) -> Path:
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "abs").symlink_to(host / "etc" / "shadow")
    (c / "rel").symlink_to("../host/etc/shadow")
    (c / "dirlink").symlink_to("../../../../../../../../" + str(host / "etc").lstrip("/"))
    (c / "tree").mkdir()
    (c / "tree" / "inner").symlink_to(host / "etc" / "shadow")
    return c


def _read_all(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                out.append(p.read_text())
    return out


@pytest.mark.parametrize("source", ["abs", "rel", "dirlink/shadow", "dirlink/../host/etc/shadow"])
def test_a_context_link_to_a_host_file_is_not_followed_out(
    ctx: Path, tmp_path: Path, source: str
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(NotFoundError):
        copy(SourceTree(ctx), dst, CopySpec((source,), "/x"))
    assert SECRET not in _read_all(dst)


def test_links_inside_a_copied_tree_stay_links(ctx: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    copy(SourceTree(ctx), dst, CopySpec(("tree",), "/t"))
    assert (dst / "t" / "inner").is_symlink()
    assert SECRET not in _read_all(dst)


def test_whole_context_copy_reads_nothing_outside(ctx: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    copy(SourceTree(ctx), dst, CopySpec((".",), "/all/"))
    assert SECRET not in _read_all(dst)
