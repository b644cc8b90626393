"""Solver.cancel(): no vertex starts once a build is cancelled, waiting steps give up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from xarch.executor.runtime import Cancelled
from xarch.graph.ops import ExecOp, Vertex
from xarch.solver.cache import CacheIndex
from xarch.solver.solver import LayerRef, Result, SolveEvent, Solver

from .test_solver import AMD64, ARM64, FakeWorker, _image, _run


class BlockingWorker(FakeWorker):
    """RUN steps named ``block*`` wait until released (or the worker is stopped)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.running = threading.Semaphore(0)
        self.release = threading.Event()
        self.stopped = threading.Event()

    def run_exec(self, op: ExecOp, inputs: list[Result], log: Callable[[str], None]) -> LayerRef | None:
        if op.args[-1].startswith("block"):
            with self.lock:
                self.calls.append("start " + op.args[-1])
            self.running.release()
            while not self.release.wait(0.01):
                if self.stopped.is_set():
                    raise Cancelled(f"{op.args[-1]} was stopped")  # what the executor does
        return super().run_exec(op, inputs, log)


def _solve_in_thread(solver: Solver, v: Vertex) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            solver.solve(v)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=go)
    t.start()
    return t, errors


def test_cancel_starts_no_later_step(tmp_path: Path) -> None:
    worker = BlockingWorker(tmp_path)
    events: list[SolveEvent] = []
    solver = Solver(worker, CacheIndex(tmp_path / "c.db"), on_event=events.append)
    v = _run("after", _run("block", _image(AMD64)))
    t, errors = _solve_in_thread(solver, v)
    assert worker.running.acquire(timeout=5)
    solver.cancel()
    worker.stopped.set()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert worker.calls == ["start block"]  # "after" never ran
    assert solver.cancelled
    # a step stopped on purpose is no step error
    assert not [e for e in events if e.kind == "error"]
    with pytest.raises(Cancelled):
        solver.solve(_run("fresh", _image(ARM64)))


def test_cancel_while_waiting_for_a_slot(tmp_path: Path) -> None:
    worker = BlockingWorker(tmp_path)
    solver = Solver(worker, CacheIndex(tmp_path / "c.db"), jobs=1)
    first, _ = _solve_in_thread(solver, _run("block-1", _image(AMD64)))
    assert worker.running.acquire(timeout=5)
    second, errors = _solve_in_thread(solver, _run("queued", _image(ARM64)))
    time.sleep(0.3)  # "queued" waits for the one slot "block-1" holds
    t0 = time.monotonic()
    solver.cancel()
    second.join(5)
    assert not second.is_alive() and time.monotonic() - t0 < 1
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    worker.release.set()  # the running step still finishes on its own terms
    first.join(5)
    assert worker.calls == ["start block-1", "exec block-1 linux/amd64"]


def test_waiters_on_a_shared_vertex_get_the_cancel(tmp_path: Path) -> None:
    worker = BlockingWorker(tmp_path)
    solver = Solver(worker, CacheIndex(tmp_path / "c.db"))
    shared = _run("block-shared", _image(AMD64))
    a, errors_a = _solve_in_thread(solver, _run("a", shared))
    assert worker.running.acquire(timeout=5)
    b, errors_b = _solve_in_thread(solver, _run("b", shared))
    time.sleep(0.1)
    solver.cancel()
    worker.stopped.set()
    a.join(5)
    b.join(5)
    assert [type(e) for e in errors_a + errors_b] == [Cancelled, Cancelled]
    assert worker.calls == ["start block-shared"]
