"""Solver: cache keys, single-flight dedupe across threads, persistence, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from xarch.errors import RuntimeFailure
from xarch.graph.ops import SCRATCH, ContextOp, CopyOp, ExecOp, ImageOp, MkdirOp, Vertex
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform
from xarch.solver.cache import CacheIndex
from xarch.solver.solver import LayerRef, Result, SolveEvent, Solver, StepError

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")


def _layer(tag: str) -> LayerRef:
    d = Digest.from_bytes(tag.encode())
    return LayerRef(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", d, 10), d)


class FakeWorker:
    def __init__(self, tmp: Path) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.blobs: set[str] = set()
        self.fail: set[str] = set()
        self.checksums: dict[str, str] = {}
        self.tmp = tmp
        self.delay = 0.0

    def _record(self, what: str) -> LayerRef:
        with self.lock:
            self.calls.append(what)
        time.sleep(self.delay)
        layer = _layer(what)
        self.blobs.add(str(layer.descriptor.digest))
        return layer

    def resolve_image(self, op: ImageOp) -> tuple[LayerRef, ...]:
        return (_layer("base-" + str(op.platform)),)

    def context_dir(self, op: ContextOp) -> Path:
        return self.tmp

    def copy_checksum(self, op: CopyOp, source: Result) -> str:
        return self.checksums.get(op.sources[0], "") if source.local_dir else ""

    def has_blob(self, desc: Descriptor) -> bool:
        return str(desc.digest) in self.blobs

    def run_exec(self, op: ExecOp, inputs: list[Result], log: Callable[[str], None]) -> LayerRef | None:
        if op.args[-1] in self.fail:
            raise RuntimeFailure(f"exit code: 1 ({op.args[-1]})")
        log("running " + op.args[-1])
        if op.args[-1] == "true":
            with self.lock:
                self.calls.append("true")
            return None
        return self._record("exec " + op.args[-1] + " " + str(op.platform))

    def run_copy(self, op: CopyOp, inputs: list[Result]) -> LayerRef | None:
        return self._record("copy " + op.sources[0])

    def run_mkdir(self, op: MkdirOp, inputs: list[Result]) -> LayerRef | None:
        return self._record("mkdir " + op.path)


def _run(cmd: str, base: Vertex, platform: Platform = AMD64) -> Vertex:
    return Vertex(ExecOp(args=("/bin/sh", "-c", cmd), env=(), cwd="/", user="", platform=platform), (base,))


def _image(p: Platform) -> Vertex:
    return Vertex(ImageOp("base", "sha256:" + "a" * 64, p))


@pytest.fixture
def worker(tmp_path: Path) -> FakeWorker:
    return FakeWorker(tmp_path)


def test_chain_and_layers(worker: FakeWorker, tmp_path: Path) -> None:
    v = _run("b", _run("a", _image(AMD64)))
    res = Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    assert [str(x.diff_id) for x in res.layers][1:] == [str(_layer(f"exec {c} linux/amd64").diff_id) for c in "ab"]


def test_identical_vertices_run_once_across_threads(worker: FakeWorker, tmp_path: Path) -> None:
    worker.delay = 0.2
    shared = _run("build-once", _image(AMD64))
    tops = [_run(f"per-{p}", shared, p) for p in (AMD64, ARM64, Platform.parse("linux/arm/v7"))]
    solver = Solver(worker, CacheIndex(tmp_path / "c.db"), jobs=4)
    threads = [threading.Thread(target=solver.solve, args=(t,)) for t in tops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert worker.calls.count("exec build-once linux/amd64") == 1
    assert solver.stats.exec_runs == 4


def test_persistent_cache_skips_everything(worker: FakeWorker, tmp_path: Path) -> None:
    v = _run("b", _run("a", _image(AMD64)))
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    worker.calls.clear()
    events: list[SolveEvent] = []
    s2 = Solver(worker, CacheIndex(tmp_path / "c.db"), on_event=events.append)
    res = s2.solve(v)
    assert worker.calls == []
    assert s2.stats.cached == 2 and s2.stats.exec_runs == 0
    assert len(res.layers) == 3
    assert [e.kind for e in events if e.vertex.op.kind == "exec"] == ["cached", "cached"]


def test_no_cache_reruns(worker: FakeWorker, tmp_path: Path) -> None:
    v = _run("a", _image(AMD64))
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    Solver(worker, CacheIndex(tmp_path / "c.db"), no_cache=True).solve(v)
    assert worker.calls.count("exec a linux/amd64") == 2


def test_missing_blob_is_a_cache_miss(worker: FakeWorker, tmp_path: Path) -> None:
    v = _run("a", _image(AMD64))
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    worker.blobs.clear()  # e.g. pruned
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    assert worker.calls.count("exec a linux/amd64") == 2


def test_context_checksum_changes_key(worker: FakeWorker, tmp_path: Path) -> None:
    ctx = Vertex(ContextOp())
    copy = Vertex(CopyOp(sources=("app.py",), dest="/app/"), (_image(AMD64), ctx))
    after = _run("after-copy", copy)
    unrelated = Vertex(CopyOp(sources=("other",), dest="/o/"), (after, ctx))
    worker.checksums = {"app.py": "v1", "other": "x"}
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(unrelated)
    worker.calls.clear()
    worker.checksums = {"app.py": "v2", "other": "x"}  # one copied file changed
    Solver(worker, CacheIndex(tmp_path / "c.db")).solve(unrelated)
    assert worker.calls == ["copy app.py", "exec after-copy linux/amd64", "copy other"]


def test_empty_diff_adds_no_layer(worker: FakeWorker, tmp_path: Path) -> None:
    v = _run("true", _image(AMD64))
    s = Solver(worker, CacheIndex(tmp_path / "c.db"))
    res = s.solve(v)
    assert len(res.layers) == 1 and res.empty
    assert s.result(v) is res
    res2 = Solver(worker, CacheIndex(tmp_path / "c.db")).solve(v)
    assert res2.empty and len(res2.layers) == 1


def test_failure_carries_vertex_and_is_shared(worker: FakeWorker, tmp_path: Path) -> None:
    worker.fail = {"boom"}
    v = _run("boom", SCRATCH)
    s = Solver(worker, None)
    with pytest.raises(StepError) as e:
        s.solve(v)
    assert e.value.vertex is v and "exit code: 1" in str(e.value)
    with pytest.raises(StepError):  # a second asker gets the same failure, no re-run
        s.solve(v)
    assert s.result(v) is None
