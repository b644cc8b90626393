"""COPY semantics (BuildKit / fsutil copy) on real directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xarch.builder.fileop import CopySpec, SourceTree, checksum, copy, mkdir
from xarch.errors import InputError, NotFoundError
from xarch.frontend.dockerfile.dockerignore import PatternMatcher


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return root


def _files(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_text()
    return out


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    return _tree(tmp_path / "ctx", {"a.txt": "A", "b.txt": "B", "dir/x": "X", "dir/sub/y": "Y", "c.md": "C"})


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    d = tmp_path / "dst"
    d.mkdir()
    return d


def test_directory_contents_not_directory(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec(("dir",), "/app"))
    assert _files(dst) == {"app/x": "X", "app/sub/y": "Y"}


def test_file_to_trailing_slash_goes_inside(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/app/"))
    assert _files(dst) == {"app/a.txt": "A"}


def test_file_to_plain_dest_is_renamed(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/app/renamed"))
    assert _files(dst) == {"app/renamed": "A"}


def test_file_into_existing_directory(ctx: Path, dst: Path) -> None:
    (dst / "app").mkdir()
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/app"))
    assert _files(dst) == {"app/a.txt": "A"}


def test_wildcard_matching_one_file_to_dir(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec(("*.md",), "/docs/"))
    assert _files(dst) == {"docs/c.md": "C"}


def test_wildcard_matching_nothing_is_not_an_error(ctx: Path, dst: Path) -> None:
    assert copy(SourceTree(ctx), dst, CopySpec(("*.nope",), "/x/")) == 0


def test_missing_literal_source_is_an_error(ctx: Path, dst: Path) -> None:
    with pytest.raises(NotFoundError, match="missing"):
        copy(SourceTree(ctx), dst, CopySpec(("missing",), "/x/"))


def test_several_sources_need_a_directory_dest(ctx: Path, dst: Path) -> None:
    with pytest.raises(InputError, match="must be a directory and end with a /"):
        copy(SourceTree(ctx), dst, CopySpec(("a.txt", "b.txt"), "/x"))


def test_dockerignore_hides_files_and_reincludes(ctx: Path, dst: Path) -> None:
    tree = SourceTree(ctx, PatternMatcher(["*.txt", "!b.txt", "dir/sub"]))
    copy(tree, dst, CopySpec((".",), "/"))
    assert _files(dst) == {"b.txt": "B", "dir/x": "X", "c.md": "C"}
    with pytest.raises(NotFoundError):
        copy(tree, dst, CopySpec(("a.txt",), "/"))


def test_exclude_flag(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec((".",), "/out/", excludes=("*.txt", "dir/sub")))
    assert _files(dst) == {"out/c.md": "C", "out/dir/x": "X"}


def test_chown_chmod_and_context_owner(ctx: Path, dst: Path) -> None:
    os.chown(ctx / "a.txt", 1234, 1234)
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/plain"))
    assert os.lstat(dst / "plain").st_uid == 0  # context files belong to root
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/owned", owner=(10, 20), mode=0o640))
    st = os.lstat(dst / "owned")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (10, 20, 0o640)
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/kept", from_context=False))
    assert os.lstat(dst / "kept").st_uid == 1234  # stage/image files keep their owner


def test_parents_keeps_paths(ctx: Path, dst: Path) -> None:
    copy(SourceTree(ctx), dst, CopySpec(("dir/sub/y", "a.txt"), "/p/", parents=True))
    assert _files(dst) == {"p/dir/sub/y": "Y", "p/a.txt": "A"}
    copy(SourceTree(ctx), dst, CopySpec(("dir/./sub/y",), "/q/", parents=True))
    assert _files(dst)["q/sub/y"] == "Y"


def test_symlink_in_dest_cannot_escape(ctx: Path, dst: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), dst / "evil")
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/evil/"))
    assert not (outside / "a.txt").exists()
    assert (dst / str(outside).lstrip("/") / "a.txt").exists()


def test_symlinks_below_top_are_copied_as_links(ctx: Path, dst: Path) -> None:
    os.symlink("x", ctx / "dir" / "link")
    copy(SourceTree(ctx), dst, CopySpec(("dir",), "/d"))
    assert os.readlink(dst / "d" / "link") == "x"


def test_hardlinks_are_preserved(ctx: Path, dst: Path) -> None:
    os.link(ctx / "dir" / "x", ctx / "dir" / "x2")
    copy(SourceTree(ctx), dst, CopySpec(("dir",), "/d"))
    assert os.lstat(dst / "d" / "x").st_ino == os.lstat(dst / "d" / "x2").st_ino


def test_file_over_directory_fails(ctx: Path, dst: Path) -> None:
    (dst / "a" / "x").mkdir(parents=True)
    with pytest.raises(InputError, match="cannot replace to directory /a/x with file"):
        copy(SourceTree(ctx), dst, CopySpec(("dir/x",), "/a"))  # /a is a dir: lands on /a/x


def test_checksum_tracks_content_not_mtime(ctx: Path) -> None:
    tree = SourceTree(ctx)
    c1 = checksum(tree, ("dir",))
    os.utime(ctx / "dir" / "x", (1, 1))
    assert checksum(SourceTree(ctx), ("dir",)) == c1
    (ctx / "dir" / "x").write_text("changed")
    assert checksum(SourceTree(ctx), ("dir",)) != c1
    assert checksum(SourceTree(ctx), ("a.txt",)) == checksum(SourceTree(ctx), ("a.txt",))


def test_mkdir_creates_parents_once(dst: Path) -> None:
    assert mkdir(dst, "/a/b/c", (5, 6)) is True
    assert os.lstat(dst / "a" / "b").st_uid == 5
    assert mkdir(dst, "/a/b/c", None) is False


# -- context digests kept across builds ----------------------------------------------------------


def test_digest_cache_survives_builds_and_notices_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as _time

    from xarch.builder import fileop

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    f = ctx / "big.bin"
    f.write_bytes(b"a" * 10_000)
    cache_file = tmp_path / "digests.json"
    # ctime cannot be set back, so the "now" of the racy rule moves forward instead
    real_now = _time.time_ns
    monkeypatch.setattr(fileop.time, "time_ns", lambda: real_now() + 10 * 1_000_000_000)
    c1 = fileop.DigestCache(cache_file)
    first = checksum(SourceTree(ctx, cache=c1), ("big.bin",))
    c1.save()  # what the worker's close() does
    assert cache_file.is_file()

    hashed: list[int] = []
    real_sha = fileop.hashlib.sha256

    def counting_sha256(*a: object) -> object:
        hashed.append(1)
        return real_sha(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(fileop.hashlib, "sha256", counting_sha256)
    assert checksum(SourceTree(ctx, cache=fileop.DigestCache(cache_file)), ("big.bin",)) == first
    assert len(hashed) == 1  # the checksum's own hasher: the file was not read

    # same size, same mtime, other bytes: ctime moved, so the file is read again
    st = f.stat()
    f.write_bytes(b"b" * 10_000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed.clear()
    assert checksum(SourceTree(ctx, cache=fileop.DigestCache(cache_file)), ("big.bin",)) != first
    assert len(hashed) == 2


def test_digest_cache_racy_files_and_damaged_cache(tmp_path: Path) -> None:
    from xarch.builder import fileop

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "fresh.txt").write_bytes(b"just written")
    cache_file = tmp_path / "digests.json"
    c = fileop.DigestCache(cache_file)
    checksum(SourceTree(ctx, cache=c), ("fresh.txt",))
    c.save()
    assert not cache_file.exists()  # written this second: not remembered (racy)
    cache_file.write_bytes(b"{not json")
    damaged = fileop.DigestCache(cache_file)
    assert checksum(SourceTree(ctx, cache=damaged), ("fresh.txt",)).startswith("sha256:")


def test_concurrent_platforms_hash_a_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading


    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i in range(4):
        (ctx / f"f{i}").write_bytes(os.urandom(200_000))
    tree = SourceTree(ctx)
    reads: list[str] = []
    real_open = open

    def counting_open(path: object, mode: str = "r", *a: object, **kw: object) -> object:
        if mode == "rb" and str(path).startswith(str(ctx)):
            reads.append(str(path))
        return real_open(path, mode, *a, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", counting_open)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(checksum(tree, (".",))))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 5
    assert sorted(reads) == sorted(str(ctx / f"f{i}") for i in range(4))


def test_directories_a_copy_creates_take_the_build_time(
    tmp_path: Path,
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "f").write_text("x")
    os.chmod(ctx / "src", 0o750)
    os.utime(ctx / "src", (1_600_000_000, 1_600_000_000))
    root = tmp_path / "root"
    root.mkdir()
    tree = SourceTree(ctx)
    # dest ends in "/": it and its missing parents are made by the COPY, at the given time
    copy(tree, root, CopySpec(sources=("src",), dest="/a/b/", created_mtime=1_700_000_000))
    for d in ("a", "a/b"):
        assert os.lstat(root / d).st_mtime == 1_700_000_000, d
    assert (root / "a" / "b" / "f").read_text() == "x"
    # a directory onto a missing dest without "/": made like a parent (0755, BuildKit)
    copy(tree, root, CopySpec(sources=("src",), dest="/c/d", created_mtime=1_700_000_000))
    st = os.lstat(root / "c" / "d")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime == 1_700_000_000
    assert os.lstat(root / "c").st_mtime == 1_700_000_000
    # without a time: whenever it was written (BuildKit without SOURCE_DATE_EPOCH)
    copy(tree, root, CopySpec(sources=("src",), dest="/e/"))
    assert os.lstat(root / "e").st_mtime > 1_700_000_000


def test_chmod_applies_to_the_directories_a_copy_creates(ctx: Path, dst: Path) -> None:
    """BuildKit v0.32 gives every directory a COPY --chmod creates the --chmod mode: the
    destination's missing parents, a trailing-slash destination, a directory's new top and
    --parents' path (corpus cases copy-chown-parents, copy-chmod, copy-link); an existing
    directory keeps its mode, and without --chmod they are 0755."""

    def mode(rel: str) -> int:
        return stat.S_IMODE(os.lstat(dst / rel).st_mode)

    (dst / "existing").mkdir(mode=0o751)
    os.chmod(dst / "existing", 0o751)
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/existing/x/a", mode=0o700))
    assert (mode("existing"), mode("existing/x"), mode("existing/x/a")) == (0o751, 0o700, 0o700)
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/newdir/", mode=0o640))
    assert (mode("newdir"), mode("newdir/a.txt")) == (0o640, 0o640)
    copy(SourceTree(ctx), dst, CopySpec(("dir",), "/d", mode=0o600))
    assert (mode("d"), mode("d/sub"), mode("d/x")) == (0o600, 0o600, 0o600)
    copy(SourceTree(ctx), dst, CopySpec(("dir/sub/y",), "/p/", mode=0o750, parents=True))
    assert (mode("p"), mode("p/dir/sub/y")) == (0o750, 0o750)
    copy(SourceTree(ctx), dst, CopySpec(("a.txt",), "/plain/deep/a"))
    assert (mode("plain"), mode("plain/deep")) == (0o755, 0o755)


def test_hardlinks_are_kept_within_one_match_only(tmp_path: Path) -> None:
    """BuildKit v0.32 keeps a hardlink group inside what one source (match) copies, a
    directory's tree, and breaks it across two sources or two wildcard matches of a COPY."""
    src = tmp_path / "src"
    (src / "h").mkdir(parents=True)
    (src / "h" / "a").write_text("x")
    os.link(src / "h" / "a", src / "h" / "b")
    dst = tmp_path / "dst"
    dst.mkdir()

    def linked(x: str, y: str) -> bool:
        return os.lstat(dst / x).st_ino == os.lstat(dst / y).st_ino

    copy(SourceTree(src), dst, CopySpec(("h",), "/tree/"))
    assert linked("tree/a", "tree/b")
    copy(SourceTree(src), dst, CopySpec(("h/a", "h/b"), "/pair/"))
    assert not linked("pair/a", "pair/b")
    copy(SourceTree(src), dst, CopySpec(("h/[ab]",), "/wild/"))
    assert not linked("wild/a", "wild/b")


def test_exclude_with_parents_matches_the_kept_path(tmp_path: Path) -> None:
    """With --parents, --exclude patterns match the path kept under dest (BuildKit v0.32):
    "*.log" does not reach into src/a/, "**/*.log" does."""
    src = _tree(tmp_path / "ctx", {"src/a/keep.txt": "k", "src/a/drop.log": "d", "top.log": "t"})
    dst = tmp_path / "dst"
    dst.mkdir()
    copy(SourceTree(src), dst, CopySpec(("src/*/",), "/out/", parents=True, excludes=("*.log",)))
    assert _files(dst / "out") == {"src/a/keep.txt": "k", "src/a/drop.log": "d"}
    copy(
        SourceTree(src), dst, CopySpec(("src/*/",), "/deep/", parents=True, excludes=("**/*.log",))
    )
    assert _files(dst / "deep") == {"src/a/keep.txt": "k"}
    # without --parents the pattern matches below the copied directory
    copy(SourceTree(src), dst, CopySpec(("src/a",), "/flat/", excludes=("*.log",)))
    assert _files(dst / "flat") == {"keep.txt": "k"}
