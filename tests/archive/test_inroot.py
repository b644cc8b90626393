"""archive/inroot: every operation resolves inside the root, whatever the tree's symlinks say.

Trees are random (directories, files, symlinks with absolute, relative and ``..`` targets,
loops); a copy of every name also exists *outside* the root, so a resolution that escaped
would find something there. The kernel (openat2 RESOLVE_IN_ROOT), the descriptor walk and
``safe_join`` must agree on every path.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xarch.archive import inroot
from xarch.archive.safepath import UnsafePathError, safe_join

NAMES = ("a", "b", "etc", "x")
TARGETS = ("/", "/a", "/etc", "a/b", "..", "../..", "../../..", "../../../..", "/x/..",
           "b/../a", "/tmp", "x", "a", ".", "/b/x/etc")


def _paths() -> st.SearchStrategy[str]:
    comp = st.sampled_from((*NAMES, "..", "."))
    return st.lists(comp, min_size=0, max_size=5).map("/".join) | st.lists(
        comp, min_size=1, max_size=5).map(lambda c: "/" + "/".join(c))


_ENTRY = st.tuples(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
    st.sampled_from(("dir", "file", "link")),
    st.sampled_from(TARGETS),
)


def _build(base: Path, entries: list[tuple[list[str], str, str]]) -> tuple[Path, Path]:
    """A root and a decoy beside it: the decoy holds every name a path could escape to."""
    root, decoy = base / "root", base / "decoy"
    root.mkdir()
    for comps in ([], ["a"], ["a", "b"], ["etc"], ["x"], ["b"], ["b", "x"]):
        (decoy.joinpath(*comps)).mkdir(parents=True, exist_ok=True)
    (decoy / "etc" / "x").write_text("decoy")
    for comps, kind, target in entries:
        p = root.joinpath(*comps)
        if not p.parent.is_dir() or p.parent.is_symlink() or os.path.lexists(p):
            continue
        if not str(p.parent.resolve()).startswith(str(root.resolve())):
            continue
        if kind == "dir":
            p.mkdir()
        elif kind == "file":
            p.write_text("in root")
        else:
            p.symlink_to(target)
    return root, decoy


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _errno(e: BaseException) -> int | None:
    return e.errno if isinstance(e, OSError) else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, max_size=12), query=_paths(), follow=st.booleans())
def test_walk_kernel_and_safe_join_agree(
    entries: list[tuple[list[str], str, str]], query: str, follow: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = _build(Path(tmp), entries)
        real_root = str(root.resolve())
        with inroot.rooted(root) as rfd:
            # open: the kernel and the walk reach the same inode (or fail the same way)
            outcomes = []
            for kernel in (True, False):
                try:
                    fd = inroot.open_in_root(rfd, query, os.O_PATH, follow_final=follow,
                                             use_openat2=kernel)
                except OSError as e:
                    outcomes.append(("err", e.errno))
                    continue
                try:
                    where = _fd_path(fd)
                    assert where == real_root or where.startswith(real_root + "/"), where
                    st_ = os.fstat(fd)
                    outcomes.append(("ok", (st_.st_dev, st_.st_ino)))
                finally:
                    os.close(fd)
            assert outcomes[0] == outcomes[1], (query, outcomes)
            # resolve: the physical path safe_join names too
            try:
                mine: str | None = inroot.resolve(rfd, query, follow_final=follow)
                mine_err = None
            except OSError as e:
                mine, mine_err = None, e.errno
            try:
                theirs = os.path.relpath(safe_join(root, query, follow_final=follow), root)
                theirs = "" if theirs == "." else theirs
            except UnsafePathError:
                theirs = None
            if mine_err == errno.ELOOP:
                assert theirs is None
            elif mine_err is None:
                assert mine == theirs, (query, mine, theirs)
            if outcomes[0][0] == "ok" and mine is not None:
                target = os.path.join(real_root, mine) if mine else real_root
                assert (os.lstat(target).st_dev, os.lstat(target).st_ino) == outcomes[0][1]


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=10), query=_paths())
def test_mkdir_all_creates_only_inside_the_root(
    entries: list[tuple[list[str], str, str]], query: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, decoy = _build(Path(tmp), entries)
        before = sorted(str(p) for p in decoy.rglob("*"))
        with inroot.rooted(root) as rfd:
            created: list[str] = []
            try:
                fd = inroot.mkdir_all(rfd, query + "/new", 0o751, created=created)
            except OSError as e:
                assert e.errno in (errno.ENOTDIR, errno.ELOOP), e
            else:
                try:
                    assert stat.S_ISDIR(os.fstat(fd).st_mode)
                    assert _fd_path(fd).startswith(str(root.resolve()) + "/")
                finally:
                    os.close(fd)
                assert created and all(
                    stat.S_IMODE(os.lstat(root / c).st_mode) == 0o751 for c in created)
        assert sorted(str(p) for p in decoy.rglob("*")) == before


def test_absolute_relative_and_looping_links_stay_inside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "canary"
    root.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("host")
    (root / "abs").symlink_to(str(outside))
    (root / "rel").symlink_to("../" * 12 + str(outside).lstrip("/"))
    (root / "loop").symlink_to("loop")
    with inroot.rooted(root) as rfd:
        for link in ("abs", "rel"):
            assert inroot.resolve(rfd, f"/{link}/victim") == str(outside).lstrip("/") + "/victim"
            with pytest.raises(FileNotFoundError):
                inroot.open_in_root(rfd, f"{link}/victim", os.O_RDONLY)
            with pytest.raises(FileNotFoundError):
                inroot.unlink_in_root(rfd, f"{link}/victim")
            fd = inroot.mkdir_all(rfd, f"{link}/made")
            os.close(fd)
        with pytest.raises(OSError) as ei:
            inroot.resolve(rfd, "loop/x")
        assert ei.value.errno == errno.ELOOP
        # the physical-path operations never follow a symlink at all
        with pytest.raises(OSError):
            inroot.rmdir_in_root(rfd, "abs")
        assert os.path.islink(root / "abs")
    assert (outside / "victim").read_text() == "host"
    assert not (outside / "made").exists()
    assert (root / str(outside).lstrip("/") / "made").is_dir()


def test_read_file_refuses_devices_and_fifos(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "passwd")  # opening it for reading would block forever
    (root / "etc" / "group").symlink_to("/etc/../etc/real")
    (root / "etc" / "real").write_text("g:x:1:\n")
    with inroot.rooted(root) as rfd:
        with pytest.raises(OSError):
            inroot.read_file(rfd, "/etc/passwd")
        assert inroot.read_file(rfd, "/etc/group") == b"g:x:1:\n"
