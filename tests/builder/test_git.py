"""xarch.builder.git: which ADD sources are git refs (BuildKit's dfgitutil/gitutil cases),
ref resolution, the cache key, checkout. Local repositories only: fast, no network."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import pytest

from builder.gitserver import commit, make_repo, run_git
from xarch.builder import git as g
from xarch.builder.worker import _git_sources, _is_url
from xarch.errors import InputError, IntegrityError, NotFoundError
from xarch.graph.ops import CopyOp

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# (source, expected GitRef or None): BuildKit's TestParseGitRef table and gitutil's forms
PARSE_CASES: list[tuple[str, g.GitRef | None]] = [
    ("https://example.com/", None),
    ("https://example.com/foo", None),
    ("https://example.com/foo.git", g.GitRef("https://example.com/foo.git")),
    ("https://example.com/foo.git#deadbeef", g.GitRef("https://example.com/foo.git", ref="deadbeef")),
    ("https://example.com/foo.git#release/1.2",
     g.GitRef("https://example.com/foo.git", ref="release/1.2")),
    ("https://example.com/foo.git/", None),
    ("https://example.com/foo.git.bar", None),
    ("git://example.com/foo", g.GitRef("git://example.com/foo", unencrypted=True)),
    ("http://example.com/foo.git", g.GitRef("http://example.com/foo.git", unencrypted=True)),
    ("github.com/moby/buildkit", None),  # a git ref only as a build context: ADD reads a path
    ("github.com/moby/buildkit#master", None),
    ("custom.xyz/moby/buildkit.git", None),
    ("https://github.com/moby/buildkit", None),
    ("https://github.com/moby/buildkit.git", g.GitRef("https://github.com/moby/buildkit.git")),
    ("https://foo:bar@github.com/moby/buildkit.git",
     g.GitRef("https://foo:bar@github.com/moby/buildkit.git")),
    ("git@github.com:moby/buildkit", g.GitRef("git@github.com:moby/buildkit")),
    ("git@github.com:moby/buildkit.git", g.GitRef("git@github.com:moby/buildkit.git")),
    ("git@bitbucket.org:atlassianlabs/atlassian-docker.git",
     g.GitRef("git@bitbucket.org:atlassianlabs/atlassian-docker.git")),
    ("https://github.com/foo/bar.git#baz/qux:quux/quuz",
     g.GitRef("https://github.com/foo/bar.git", ref="baz/qux", subdir="quux/quuz")),
    ("http://github.com/docker/docker.git:#branch", None),
    ("https://github.com/docker/docker.git#:myfolder",
     g.GitRef("https://github.com/docker/docker.git", subdir="myfolder")),
    ("https://github.com/docker/docker.git#main:/a/../b/",
     g.GitRef("https://github.com/docker/docker.git", ref="main", subdir="b")),
    ("./.git", None),
    (".git", None),
    ("../x.git", None),
    ("ftp://example.com/foo.git", None),  # not a git protocol: a local path for ADD
    ("https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir",
     g.GitRef("https://github.com/docker/docker.git", ref="v1.0.0", subdir="/subdir")),
    ("https://github.com/moby/buildkit.git?subdir=/subdir#v1.0.0",
     g.GitRef("https://github.com/moby/buildkit.git", ref="v1.0.0", subdir="/subdir")),
    ("https://github.com/moby/buildkit.git?tag=v1.0.0",
     g.GitRef("https://github.com/moby/buildkit.git", ref="refs/tags/v1.0.0")),
    ("https://github.com/moby/buildkit.git?branch=v1.0",
     g.GitRef("https://github.com/moby/buildkit.git", ref="refs/heads/v1.0")),
    ("git@github.com:moby/buildkit.git?subdir=/subdir#v1.0.0",
     g.GitRef("git@github.com:moby/buildkit.git", ref="v1.0.0", subdir="/subdir")),
    ("https://github.com/moby/buildkit.git?mtime=commit",
     g.GitRef("https://github.com/moby/buildkit.git", mtime="commit")),
    ("https://github.com/moby/buildkit.git?fetch-by-commit=true&checksum=deadbeef#refs/heads/branch",
     g.GitRef("https://github.com/moby/buildkit.git", ref="refs/heads/branch", checksum="deadbeef",
              fetch_by_commit=True)),
    ("https://github.com/moby/buildkit.git?fetch-by-commit&checksum=deadbeef",
     g.GitRef("https://github.com/moby/buildkit.git", checksum="deadbeef", fetch_by_commit=True)),
    ("https://github.com/moby/buildkit.git?fetch-by-commit=false",
     g.GitRef("https://github.com/moby/buildkit.git")),
    ("https://github.com/moby/buildkit.git?keep-git-dir",
     g.GitRef("https://github.com/moby/buildkit.git", keep_git_dir=True)),
    ("https://github.com/moby/buildkit.git?submodules=false",
     g.GitRef("https://github.com/moby/buildkit.git", submodules=False)),
    ("ssh://git@example.com:2222/o/r.git#v1", g.GitRef("ssh://git@example.com:2222/o/r.git", ref="v1")),
]

ERROR_CASES = [
    ("https://github.com/moby/buildkit.git?ref=v1.0.0#v1.2.3", "ref conflicts"),
    ("https://github.com/moby/buildkit.git?ref=v1.0.0&tag=v1.2.3", "ref conflicts"),
    ("https://github.com/moby/buildkit.git?tag=v1.0.0&branch=v1.0", "branch conflicts with tag"),
    ("https://github.com/moby/buildkit.git?mtime=invalid", "invalid mtime value"),
    ("https://github.com/moby/buildkit.git?fetch-by-commit=invalid", "invalid fetch-by-commit value"),
    ("https://github.com/moby/buildkit.git?invalid=123", "unexpected query 'invalid'"),
    ("https://github.com/moby/buildkit.git?ref=a&ref=b", "has multiple values"),
    ("https://github.com/moby/buildkit.git?tag=", "has no value"),
]


@pytest.mark.parametrize(("src", "want"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_git_ref(src: str, want: g.GitRef | None) -> None:
    assert g.parse_git_ref(src) == want


@pytest.mark.parametrize(("src", "msg"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_parse_git_ref_errors(src: str, msg: str) -> None:
    with pytest.raises(InputError, match=msg) as e:
        g.parse_git_ref(src)
    assert "\n" not in str(e.value) and src in str(e.value)


def test_http_download_vs_git_repository() -> None:
    assert _is_url("https://example.com/file.tar.gz")
    assert _is_url("https://example.com/foo.git/")
    assert not _is_url("https://example.com/foo.git")
    assert not _is_url("https://example.com/foo.git#main:sub")
    assert not _is_url("git://example.com/foo")


def test_add_flags_merge_and_conflicts() -> None:
    base = g.GitRef("git://h/r")
    assert g.apply_add_flags(base, "s", keep_git_dir=True, checksum="").keep_git_dir is True
    assert g.apply_add_flags(base, "s", keep_git_dir=False, checksum="ABC1").checksum == "ABC1"
    with pytest.raises(InputError, match="inconsistent keep-git-dir"):
        g.apply_add_flags(g.GitRef("git://h/r", keep_git_dir=False), "s", keep_git_dir=True, checksum="")
    with pytest.raises(InputError, match="checksum mismatch"):
        g.apply_add_flags(g.GitRef("git://h/r", checksum="aa"), "s", keep_git_dir=False, checksum="bb")
    with pytest.raises(InputError, match="expected hex commit hash"):
        g.apply_add_flags(base, "s", keep_git_dir=False, checksum="sha256:abcd")


def test_copy_of_a_git_ref_is_refused() -> None:
    op = CopyOp(sources=("https://example.com/r.git",), dest="/x/")
    with pytest.raises(InputError, match="can't be a git ref for COPY"):
        _git_sources(op)
    add = CopyOp(sources=("https://example.com/r.git", "local"), dest="/x/", is_add=True)
    assert list(_git_sources(add)) == ["https://example.com/r.git"]
    with pytest.raises(InputError, match="multiple sources"):
        _git_sources(CopyOp(sources=("https://example.com/r.git", "l"), dest="/x/", is_add=True,
                            checksum="abc"))


# -- against a local repository ---------------------------------------------------------------

@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    make_repo(r, {"a.txt": "A\n", "run.sh": "#!/bin/sh\n", "sub/dir/b.txt": "B\n"},
              modes={"run.sh": 0o755})
    run_git("tag", "v1", cwd=r)
    run_git("tag", "-a", "-m", "annotated", "v1a", cwd=r)
    return r


@needs_git
def test_resolve_default_branch_names_tags(repo: Path) -> None:
    head = run_git("rev-parse", "HEAD", cwd=repo)
    remote = str(repo)
    assert g.resolve(g.GitRef(remote), "u") == g.Resolved(head, head, "refs/heads/main")
    assert g.resolve(g.GitRef(remote, ref="main"), "u").commit == head
    assert g.resolve(g.GitRef(remote, ref="v1"), "u") == g.Resolved(head, head, "refs/tags/v1")
    tag_obj = run_git("rev-parse", "v1a", cwd=repo)
    r = g.resolve(g.GitRef(remote, ref="v1a"), "u")
    assert (r.commit, r.sha, r.ref) == (head, tag_obj, "refs/tags/v1a")
    # a full commit hash needs no remote at all
    assert g.resolve(g.GitRef("git://127.0.0.1:1/nowhere", ref=head), "u").commit == head
    with pytest.raises(NotFoundError, match="has no ref nope") as e:
        g.resolve(g.GitRef(remote, ref="nope"), "ADD-URL")
    assert "ADD-URL" in str(e.value)


@needs_git
def test_checksum_must_prefix_the_commit(repo: Path) -> None:
    head = run_git("rev-parse", "HEAD", cwd=repo)
    assert g.resolve(g.GitRef(str(repo), checksum=head[:8]), "u").commit == head
    with pytest.raises(IntegrityError, match="expected checksum to match 0000"):
        g.resolve(g.GitRef(str(repo), checksum="0000"), "u")
    # an annotated tag: its own object or the commit it points at
    assert g.resolve(g.GitRef(str(repo), ref="v1a", checksum=head), "u").commit == head


@needs_git
def test_cache_key_follows_the_branch(repo: Path) -> None:
    ref = g.GitRef(str(repo), ref="main")
    before = g.cache_key(ref, g.resolve(ref, "u"))
    assert g.cache_key(ref, g.resolve(ref, "u")) == before
    commit(repo, {"a.txt": "A2\n"})
    after = g.cache_key(ref, g.resolve(ref, "u"))
    assert after != before
    assert run_git("rev-parse", "HEAD", cwd=repo) in after
    # what changes the files changes the key
    r = g.resolve(ref, "u")
    keys = {g.cache_key(x, r) for x in (ref, g.GitRef(str(repo), ref="main", subdir="sub"),
                                         g.GitRef(str(repo), ref="main", keep_git_dir=True),
                                         g.GitRef(str(repo), ref="main", submodules=False))}
    assert len(keys) == 4


@needs_git
def test_checkout_modes_subdir_and_git_dir(repo: Path, tmp_path: Path) -> None:
    ref = g.GitRef(str(repo), ref="main")
    r = g.resolve(ref, "u")
    work, top = g.checkout(ref, r, "u", tmp_path / "repos", tmp_path)
    assert sorted(os.listdir(top)) == ["a.txt", "run.sh", "sub"]  # no .git
    assert stat.S_IMODE(os.stat(top / "a.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(top / "run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(top / "sub").st_mode) == 0o755
    shutil.rmtree(work)

    sub = g.GitRef(str(repo), ref="main", subdir="sub/dir", keep_git_dir=True)
    work, top = g.checkout(sub, r, "u", tmp_path / "repos", tmp_path)
    assert os.listdir(top) == ["b.txt"]  # with a subdir, .git is never kept
    shutil.rmtree(work)
    with pytest.raises(NotFoundError, match=r"invalid subdir a\.txt"):
        g.checkout(g.GitRef(str(repo), subdir="a.txt"), r, "u", tmp_path / "repos", tmp_path)

    keep = g.GitRef(str(repo), ref="main", keep_git_dir=True)
    work, top = g.checkout(keep, r, "u", tmp_path / "repos", tmp_path)
    assert (top / ".git" / "HEAD").read_text().strip() == r.commit  # detached at the commit
    assert run_git("remote", "get-url", "origin", cwd=top) == str(repo)
    assert run_git("rev-parse", "refs/heads/main", cwd=top) == r.commit
    assert not (top / ".git" / "FETCH_HEAD").exists()
    shutil.rmtree(work)


@needs_git
def test_pinned_commit_checks_out_offline_once_fetched(repo: Path, tmp_path: Path) -> None:
    head = run_git("rev-parse", "HEAD", cwd=repo)
    ref = g.GitRef(str(repo), ref="main")
    work, _ = g.checkout(ref, g.resolve(ref, "u"), "u", tmp_path / "repos", tmp_path)
    shutil.rmtree(work)
    shutil.rmtree(repo)  # the remote is gone
    pinned = g.GitRef(str(repo), ref=head)
    work, top = g.checkout(pinned, g.resolve(pinned, "u"), "u", tmp_path / "repos", tmp_path)
    assert (top / "a.txt").read_text() == "A\n"
    shutil.rmtree(work)


@needs_git
def test_mtime_commit(repo: Path, tmp_path: Path) -> None:
    ref = g.GitRef(str(repo), mtime="commit")
    work, top = g.checkout(ref, g.resolve(ref, "u"), "u", tmp_path / "repos", tmp_path)
    assert {int(os.lstat(p).st_mtime) for p in [top / "a.txt", top / "sub", top / "sub/dir/b.txt"]} \
        == {1700000000}
    shutil.rmtree(work)


@needs_git
def test_fetch_by_commit_needs_no_ls_remote(repo: Path, tmp_path: Path) -> None:
    head = run_git("rev-parse", "HEAD", cwd=repo)
    ref = g.apply_add_flags(g.GitRef(str(repo), ref="main", checksum=head, fetch_by_commit=True),
                            "u", keep_git_dir=True, checksum="")
    r = g.resolve(dataclasses.replace(ref, remote="git://127.0.0.1:1/unreachable"), "u")
    assert (r.commit, r.ref) == (head, "refs/heads/main")
    work, top = g.checkout(ref, r, "u", tmp_path / "repos", tmp_path)
    assert run_git("rev-parse", "refs/heads/main", cwd=top) == head
    shutil.rmtree(work)
    with pytest.raises(InputError, match="fetch-by-commit requires a full commit SHA"):
        g.apply_add_flags(g.GitRef(str(repo), checksum="abc", fetch_by_commit=True), "u",
                          keep_git_dir=False, checksum="")


@needs_git
@pytest.mark.parametrize("form", ["file://{p}", "{p}"])
def test_a_submodule_cannot_pull_in_a_repository_of_this_machine(
    tmp_path: Path, form: str
) -> None:
    """CVE-2022-39253 class: a remote's .gitmodules naming a local path must not copy this
    machine's repository into the image (git's protocol.file.allow=user stays in force)."""
    secret = tmp_path / "host-secret"
    make_repo(secret, {"id_rsa": "PRIVATE KEY\n"})
    remote = tmp_path / "remote"
    make_repo(remote, {"a.txt": "A\n"})
    run_git("-c", "protocol.file.allow=always", "submodule", "add", "-q",
            form.format(p=secret), "leak", cwd=remote)  # fmt: skip
    run_git("commit", "-q", "-m", "with a submodule", cwd=remote)
    ref = g.GitRef(str(remote), ref="main")
    leaked = False
    try:
        _work, top = g.checkout(ref, g.resolve(ref, "u"), "u", tmp_path / "repos", tmp_path)
    except Exception as e:  # refusing the submodule is fine: one clear error
        assert "leak" in str(e) or "file" in str(e), e
    else:
        leaked = (top / "leak" / "id_rsa").exists()
    assert not leaked, "a submodule copied a repository of this machine into the checkout"
