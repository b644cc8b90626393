"""Issue 11: ``prune`` while a build or copy writes into the store.

A writer holds the store's writer lease from its first blob to its last name; what it has
written but not named yet is unreachable, so prune must not run meanwhile. Prune waits for the
lease (by default as long as it takes) instead of failing after 30 s, tells its caller once
that it is waiting, and removes the temp files of writers that are gone.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from helpers.images import single_image, write_image
from xarch.transports.store import LocalStore


def test_prune_waits_for_the_writer_lease_however_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    img = single_image()
    sink = store.sink("app:1")
    write_image(sink, img, commit=False)  # blobs in, name not yet: the lease is held
    # every clock reading jumps 1000 s ahead: any deadline a prune keeps passes at once
    real = time.monotonic
    jumps = iter(range(1, 1 << 30))
    monkeypatch.setattr("xarch.content.store.time.monotonic", lambda: real() + 1000 * next(jumps))
    waited: list[str] = []
    outcome: list[object] = []

    def prune() -> None:
        try:
            outcome.append(store.prune(on_wait=lambda: waited.append("waiting")))
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=prune)
    t.start()
    time.sleep(0.5)
    assert outcome == [], f"prune did not wait for the writer: {outcome}"
    assert t.is_alive() and waited == ["waiting"]
    sink.commit()  # the lease is released with the name
    t.join(10)
    assert not t.is_alive()
    (report,) = outcome
    assert getattr(report, "removed_blobs", None) == 0, report
    assert store.verify() == []
    assert waited == ["waiting"]


def test_prune_does_not_call_on_wait_when_nobody_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    write_image(store.sink("app:1"), single_image())
    store.content.ingest_bytes(b"garbage" * 10)
    waited: list[int] = []
    report = store.prune(on_wait=lambda: waited.append(1))
    assert waited == []
    assert report.removed_blobs == 1 and report.removed_sizes == (70,)


def test_prune_removes_abandoned_temp_files_and_keeps_live_ones(tmp_path: Path) -> None:
    import fcntl

    store = LocalStore(tmp_path)
    write_image(store.sink("app:1"), single_image())
    ingest = store.content.ingest_dir
    ingest.mkdir(exist_ok=True)
    two_hours_ago = time.time() - 2 * 3600
    abandoned = ingest / "dead-1.part"
    abandoned.write_bytes(b"partial download of a crashed pull")
    live = ingest / "live-2.part"
    live.write_bytes(b"a slow download")
    for p in (abandoned, live):
        os.utime(p, (two_hours_ago, two_hours_ago))
    with live.open("ab") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as its writer does until the rename
        store.prune()
        assert not abandoned.exists()
        assert live.exists()
    assert store.verify() == []
