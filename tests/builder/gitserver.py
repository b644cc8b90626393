"""Test git repositories and a ``git daemon`` on 127.0.0.1 serving them (git://).

Used by the builder tests and by the differential tier (both builders fetch from it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
}


def run_git(*args: str, cwd: Path) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV},
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def make_repo(path: Path, files: Mapping[str, str], *, branch: str = "main",
              modes: Mapping[str, int] | None = None) -> str:
    """A work-tree repository at ``path`` with one commit of ``files``; returns the commit."""
    path.mkdir(parents=True, exist_ok=True)
    run_git("init", "-q", "-b", branch, cwd=path)
    return commit(path, files, modes=modes)


def commit(path: Path, files: Mapping[str, str], *, modes: Mapping[str, int] | None = None,
           message: str = "c") -> str:
    for rel, data in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    for rel, mode in (modes or {}).items():
        os.chmod(path / rel, mode)
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", message, cwd=path)
    return run_git("rev-parse", "HEAD", cwd=path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git daemon`` exporting every repository under ``base``; yields ``git://127.0.0.1:P``."""
    if shutil.which("git") is None:
        raise RuntimeError("git is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
         f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # "git daemon" runs git-daemon as a child: stop the group
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
