"""ADD <git repository>: real builds against repositories served by ``git daemon``."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from builder.conftest import BuildEnv, GitServer
from builder.gitserver import commit, make_repo, run_git
from xarch.builder.api import BuildFailed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _repo(git_server: GitServer) -> tuple[str, Path]:
    name = f"r-{uuid.uuid4().hex[:8]}"
    path = git_server.base / name
    make_repo(path, {"a.txt": "A\n", "bin/run.sh": "#!/bin/sh\n", "sub/b.txt": "B\n"},
              modes={"bin/run.sh": 0o755})
    run_git("tag", "v1", cwd=path)
    return f"{git_server.url}/{name}", path


def test_add_git_forms(benv: BuildEnv, git_server: GitServer, tmp_path: Path) -> None:
    url, path = _repo(git_server)
    head = run_git("rev-parse", "HEAD", cwd=path)
    df = f"""FROM {benv.base}
ADD {url} /plain
ADD --chown=12:34 --chmod=0640 {url}#v1 /owned/
ADD {url}#main:sub /sub
ADD {url}?ref=main&subdir=bin /q
ADD --keep-git-dir=true {url}#main /kept
ADD --checksum={head[:10]} {url}#{head} /pinned
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert sorted(os.listdir(fs / "plain")) == ["a.txt", "bin", "sub"]
    st = os.lstat(fs / "plain/bin/run.sh")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
    assert stat.S_IMODE(os.lstat(fs / "plain/a.txt").st_mode) == 0o644
    st = os.lstat(fs / "owned/sub/b.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 12, 34)
    assert os.listdir(fs / "sub") == ["b.txt"]
    assert os.listdir(fs / "q") == ["run.sh"]
    assert (fs / "kept/.git/HEAD").read_text().strip() == head
    assert (fs / "pinned/a.txt").read_text() == "A\n"
    assert not (fs / "pinned/.git").exists()


def test_add_git_moving_branch(benv: BuildEnv, git_server: GitServer, tmp_path: Path) -> None:
    url, path = _repo(git_server)
    df = f"FROM {benv.base}\nADD {url}#main /src\n"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(df)
    first = benv.build(tmp_path, df, context=ctx)
    again = benv.build(tmp_path, df, context=ctx)
    assert again.executed == 0 and again.root == first.root  # same commit: cached
    commit(path, {"a.txt": "A2\n"})
    moved = benv.build(tmp_path, df, context=ctx)
    assert moved.executed >= 1
    assert (benv.rootfs(moved, tmp_path / "fs") / "src/a.txt").read_text() == "A2\n"


def test_add_git_errors(benv: BuildEnv, git_server: GitServer, tmp_path: Path) -> None:
    url, _ = _repo(git_server)
    with pytest.raises(BuildFailed, match="has no ref nope") as e:
        benv.build(tmp_path, f"FROM {benv.base}\nADD {url}#nope /x\n")
    assert f"{url}#nope" in str(e.value)  # which URL, what is wrong, how to fix: one line
    with pytest.raises(BuildFailed, match="expected checksum to match 0000"):
        benv.build(tmp_path, f"FROM {benv.base}\nADD --checksum=0000 {url} /x\n")
    with pytest.raises(BuildFailed, match="failed to fetch remote"):
        benv.build(tmp_path, f"FROM {benv.base}\nADD {git_server.url}/missing.git /x\n")
