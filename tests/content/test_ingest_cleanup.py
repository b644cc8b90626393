"""Issue 11: partial downloads do not stay in ``store/ingest`` forever, and a live one is never
taken for a leftover.

A writer holds an exclusive flock on its temp file until it renames it into ``blobs/``; the
kernel drops the lock when the writer dies. Cleanup removes temp files older than an hour that
nobody holds, and keeps everything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from xarch.content.store import STALE_INGEST_SECONDS, ContentStore
from xarch.oci.descriptor import Descriptor

TWO_HOURS_AGO = time.time() - 2 * 3600


def _age(p: Path, when: float = TWO_HOURS_AGO) -> None:
    os.utime(p, (when, when))


def _holder(path: Path) -> subprocess.Popen[str]:
    """Another process that holds ``path``'s flock (as a live ingest does) until killed."""
    code = textwrap.dedent(f"""
        import fcntl, sys, time
        f = open({str(path)!r}, "ab")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def _stop(p: subprocess.Popen[str]) -> None:
    p.kill()
    p.wait(10)


def test_threshold_is_an_hour() -> None:
    assert STALE_INGEST_SECONDS == 3600


def test_old_unheld_files_go_fresh_and_held_ones_stay(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    cs.init()
    cs.ingest_dir.mkdir()
    abandoned = cs.ingest_dir / "aaaa-1.part"  # a crashed pull's leftover, 2 h old
    abandoned.write_bytes(b"partial")
    _age(abandoned)
    ancient_live = cs.ingest_dir / "bbbb-2.part"  # a stalled but live download, 2 days old
    ancient_live.write_bytes(b"in progress")
    _age(ancient_live, time.time() - 2 * 86400)
    fresh = cs.ingest_dir / "cccc-3.part"  # just created, its writer not locked it yet
    fresh.write_bytes(b"new")
    holder = _holder(ancient_live)
    try:
        assert cs.cleanup_ingest() == 1
        assert not abandoned.exists()
        assert ancient_live.exists(), "a file a live writer holds was removed"
        assert fresh.exists()
    finally:
        _stop(holder)
    # its writer died: now it is a leftover like any other
    assert cs.cleanup_ingest() == 1
    assert not ancient_live.exists() and fresh.exists()


def test_a_live_ingest_survives_cleanup_even_when_old(tmp_path: Path) -> None:
    """Cleanup in the middle of an ingest (whose temp file looks old: a stalled download)
    leaves it alone; the ingest completes."""
    cs = ContentStore(tmp_path)
    data = b"x" * 100_000
    desc = Descriptor.of("application/octet-stream", data)
    removed: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield data[:50_000]
        (part,) = cs.ingest_dir.iterdir()
        _age(part, time.time() - 2 * 86400)
        removed.append(ContentStore(tmp_path).cleanup_ingest())
        yield data[50_000:]

    cs.ingest(desc, chunks())
    assert removed == [0]
    assert cs.read_bytes(desc) == data
    assert list(cs.ingest_dir.iterdir()) == []


def test_a_killed_writers_temp_file_is_removed_by_the_next_ingest(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    cs.init()
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from xarch.content.store import ContentStore
        from xarch.oci.digest import Digest

        def chunks():
            yield b"y" * 4096
            print("writing", flush=True)
            time.sleep(600)

        ContentStore(Path({str(tmp_path)!r})).ingest(Digest.from_bytes(b"never"), chunks())
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "writing"
        (part,) = cs.ingest_dir.iterdir()
        _age(part)
        assert cs.cleanup_ingest() == 0  # its writer is alive: kept, however old
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    assert part.exists()
    cs.ingest_bytes(b"another blob")  # a later ingest sweeps the leftover
    assert not part.exists()
    assert list(cs.ingest_dir.iterdir()) == []


def test_cleanup_ignores_directories_and_symlinks(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    cs.ingest_dir.mkdir(parents=True)
    long_ago = time.time() - 2 * 86400
    d = cs.ingest_dir / "odd-dir"
    d.mkdir()
    _age(d, long_ago)
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    _age(target, long_ago)
    link = cs.ingest_dir / "odd-link"
    link.symlink_to(target)
    os.utime(link, (long_ago, long_ago), follow_symlinks=False)
    assert cs.cleanup_ingest() == 0
    assert d.is_dir() and link.is_symlink() and target.read_bytes() == b"keep"
