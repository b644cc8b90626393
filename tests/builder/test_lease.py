"""The worker's lease on its state: a dead owner's leftovers are cleaned at the next start, a
live owner's are never touched, and a cancelled or closed worker behaves (no runtime needed:
copy-mode snapshots, processes that hold or drop a lease)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xarch.builder.worker import BuildWorker, Lease, WorkerOptions, clean_owner, recover_leftovers
from xarch.content.store import ContentStore
from xarch.executor.mounts import SecretStore, remove_owned_secrets
from xarch.executor.runtime import Cancelled, Interrupted, RuntimeInfo
from xarch.snapshot.overlay import Snapshotter

REPO = Path(__file__).resolve().parents[2]

# Takes a lease, leaves a snapshot, a step dir and a runtime root behind, then dies the way
# kill -9 does (no cleanup at all) or, with "hold", waits until killed.
OWNER = textwrap.dedent(
    """\
    import os, sys, time
    from pathlib import Path
    from xarch.builder.worker import Lease
    from xarch.snapshot.overlay import Snapshotter
    home, mode = Path(sys.argv[1]), sys.argv[2]
    lease = Lease(home / "owners")
    (home / "lower").mkdir(exist_ok=True)
    Snapshotter(home / "snapshots", mode="copy", owner=lease.id).prepare("k-" + lease.id, [home / "lower"])
    (lease.dir / "tmp" / "step-x").mkdir(parents=True)
    (lease.runtime_root("runc")).mkdir(parents=True)
    print(lease.id, flush=True)
    if mode == "hold":
        time.sleep(60)
    os._exit(0)
    """
)


def _owner(home: Path, mode: str) -> tuple[str, subprocess.Popen[str]]:
    p = subprocess.Popen([sys.executable, "-c", OWNER, str(home), mode], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert p.stdout is not None
    oid = p.stdout.readline().strip()
    assert oid, "the owner process failed"
    return oid, p


def test_lease_lock_is_held_and_published_locked(tmp_path: Path) -> None:
    owners = tmp_path / "owners"
    snaps = Snapshotter(tmp_path / "snapshots", mode="copy")
    lease = Lease(owners)
    assert lease.lock_path.exists() and lease.dir.is_dir()
    assert lease.id.startswith(f"{os.getpid()}-")
    # even from this very process, a held lease is live: nothing is cleaned
    assert recover_leftovers(owners, snaps) == []
    assert lease.dir.is_dir()
    assert lease.release(snaps)
    assert not lease.lock_path.exists() and not lease.dir.exists()
    assert lease.release(snaps)  # once is enough


def test_dead_owner_is_cleaned_and_live_one_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead, p = _owner(home, "exit")
    p.wait()
    live, holder = _owner(home, "hold")
    try:
        snaps = Snapshotter(home / "snapshots", mode="copy")
        assert snaps.owners() == {dead, live}
        assert recover_leftovers(home / "owners", snaps) == [dead]
        assert snaps.owners() == {live}
        assert not (home / "owners" / dead).exists()
        assert not (home / "owners" / f"{dead}.lock").exists()
        assert (home / "owners" / live / "tmp" / "step-x").is_dir()
        assert recover_leftovers(home / "owners", snaps) == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # now it is dead too: the next start takes its leftovers
    assert recover_leftovers(home / "owners", snaps) == [live]
    assert snaps.owners() == set() and os.listdir(home / "owners") == []


def test_snapshots_of_an_owner_without_a_lock_are_leftovers(tmp_path: Path) -> None:
    (tmp_path / "lower").mkdir()
    snaps = Snapshotter(tmp_path / "snapshots", mode="copy", owner="999-gone")
    snaps.prepare("k", [tmp_path / "lower"])
    (tmp_path / "owners").mkdir()
    assert recover_leftovers(tmp_path / "owners", snaps) == ["999-gone"]
    assert snaps.list() == []


def test_clean_owner_keeps_state_of_a_runtime_it_cannot_run(tmp_path: Path) -> None:
    owners = tmp_path / "owners"
    (owners / "1-a" / "rt" / "no-such-runtime" / "xarch-c1").mkdir(parents=True)
    assert not clean_owner(owners, "1-a", Snapshotter(tmp_path / "s", mode="copy"))
    assert (owners / "1-a" / "rt" / "no-such-runtime" / "xarch-c1").is_dir()


def test_secret_dirs_carry_the_owner(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, require_tmpfs=False, owner="12-ab")
    store.add("tok", b"s3cret")
    other = SecretStore(tmp_path, require_tmpfs=False, owner="34-cd")
    assert remove_owned_secrets("12-ab", [tmp_path]) == [store.dir]
    assert not store.dir.exists() and other.dir.exists()
    other.close()


def _worker(tmp_path: Path) -> BuildWorker:
    def no_runtime() -> RuntimeInfo:
        raise AssertionError("no container in these tests")

    return BuildWorker(ContentStore(tmp_path / "store"), tmp_path / "home", no_runtime,
                       WorkerOptions(context_dir=tmp_path))


def test_worker_start_recovers_and_close_releases(tmp_path: Path) -> None:
    dead, p = _owner(tmp_path / "home", "exit")
    p.wait()
    w = _worker(tmp_path)
    assert w.recovered == [dead]
    assert w.tmp_dir.is_dir() and w.tmp_dir.is_relative_to(w.lease.dir)
    assert w.state_root(RuntimeInfo("runc", "/x", "1")) == w.lease.dir / "rt" / "runc"
    w.close()
    assert not w.lease.dir.exists() and not w.lease.lock_path.exists()


def test_cancelled_worker_starts_no_work(tmp_path: Path) -> None:
    w = _worker(tmp_path)
    e = Interrupted(signal.SIGTERM)
    assert w.cancel(e) == 0
    with pytest.raises(Cancelled), w._busy():
        pass
    w.close()


def test_close_while_steps_unwind_releases_after_the_last(tmp_path: Path) -> None:
    w = _worker(tmp_path)
    with w._busy():
        w.close()
        assert w.lease.dir.exists()  # a straggler still uses it
        assert not w.wait_idle(0.05)
    assert w.wait_idle(0.05)
    assert not w.lease.dir.exists() and not w.lease.lock_path.exists()


def test_a_killed_worker_process_leaves_a_lock_anyone_can_take(tmp_path: Path) -> None:
    """The premise of it all: the kernel drops the lease's flock with the process."""
    home = tmp_path / "home"
    oid, holder = _owner(home, "hold")
    lock = home / "owners" / f"{oid}.lock"
    probe = [sys.executable, "-c",
             "import fcntl, sys; f = open(sys.argv[1], 'a');"
             "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(lock)]
    assert subprocess.run(probe, capture_output=True, check=False).returncode != 0
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 5
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
