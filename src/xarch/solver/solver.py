"""Solve a build graph: content-addressed cache keys, single-flight dedupe, bounded work.

``Solver.solve(vertex)`` returns the vertex's filesystem as a chain of layers. Each vertex is
computed at most once per solver, however many target platforms ask for it concurrently
(a ``FROM --platform=$BUILDPLATFORM`` stage shared by N targets has the same digest for all
of them, so it runs once). Results persist in the ``CacheIndex``: a rebuild with nothing
changed runs no step at all.

The solver knows nothing about overlayfs, runc or tar: a ``Worker`` does the I/O.
``Solver.cancel()`` (a build being interrupted) makes it start no new vertex: every solve
and every step still waiting for a slot raises ``Cancelled``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xarch.errors import XarchError
from xarch.executor.runtime import Cancelled
from xarch.graph.ops import ContextOp, CopyOp, ExecOp, ImageOp, MkdirOp, ScratchOp, Vertex
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.solver.cache import CacheIndex


@dataclass(frozen=True)
class LayerRef:
    descriptor: Descriptor  # the compressed blob, present in the content store
    diff_id: Digest  # digest of the uncompressed tar


@dataclass(frozen=True)
class Result:
    """A solved vertex: its full layer chain (bottom first), or a local directory."""

    cache_key: str
    layers: tuple[LayerRef, ...] = ()
    local_dir: Path | None = None
    # The vertex added no layer (a metadata-only step; steps with an empty diff keep an
    # empty layer, as BuildKit does).
    empty: bool = False
    # When this step's result was made (its cache record's time; UNIX seconds): the image
    # history records it, so a rebuild served from the cache is byte-identical (as BuildKit's
    # buildkit/createdat). None for sources (images, contexts).
    created: float | None = None


@dataclass(frozen=True)
class SolveEvent:
    kind: str  # start | cached | done | error | log
    vertex: Vertex
    detail: str = ""
    duration: float = 0.0


class Worker(Protocol):
    """Does the I/O for each kind of op. Every method is called at most once per vertex."""

    def resolve_image(self, op: ImageOp) -> tuple[LayerRef, ...]: ...

    def context_dir(self, op: ContextOp) -> Path: ...

    def copy_checksum(self, op: CopyOp, source: Result) -> str:
        """Checksum of exactly the source files ``op`` reads (for the cache key)."""
        ...

    def exec_checksum(self, op: ExecOp, inputs: list[Result]) -> str:
        """Checksum of the context files ``op`` bind-mounts (for the cache key)."""
        ...

    def has_blob(self, desc: Descriptor) -> bool: ...

    def run_exec(self, op: ExecOp, inputs: list[Result], log: Callable[[str], None]) -> LayerRef | None: ...

    def run_copy(self, op: CopyOp, inputs: list[Result]) -> LayerRef | None: ...

    def run_mkdir(self, op: MkdirOp, inputs: list[Result]) -> LayerRef | None: ...


class StepError(XarchError):
    """A step failed; carries the vertex so the caller can name platform and line."""

    def __init__(self, vertex: Vertex, cause: XarchError) -> None:
        super().__init__(str(cause), hint=cause.hint)
        self.vertex = vertex
        self.cause = cause
        self.category = cause.category
        self.exit_code = cause.exit_code


@dataclass
class SolveStats:
    executed: int = 0
    cached: int = 0
    exec_runs: int = 0  # RUN steps actually executed
    by_vertex: dict[str, str] = field(default_factory=dict)  # digest -> "run" | "cached"


# Part of every step's cache key. Bump it when what a step records changes meaning, so
# records an older xarch wrote are misses rather than wrong results (v2: a step that changes
# nothing keeps an empty layer, as BuildKit v0.32; COPY --link --chmod is a plain copy).
CACHE_VERSION = "xarch-cache-v2"


def _h(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


class Solver:
    def __init__(
        self,
        worker: Worker,
        cache: CacheIndex | None,
        *,
        no_cache: bool = False,
        jobs: int = 4,
        on_event: Callable[[SolveEvent], None] | None = None,
    ) -> None:
        self._worker = worker
        self._cache = cache
        self._no_cache = no_cache
        self._on_event = on_event or (lambda e: None)
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Result]] = {}
        # Bounds concurrent RUN/COPY work; image pulls and cache lookups are not bounded here.
        self._work = threading.BoundedSemaphore(max(1, jobs))
        self._cancelled = threading.Event()
        self.stats = SolveStats()

    def cancel(self) -> None:
        """Start no new vertex from now on (the steps already running are the worker's to
        stop); waiting solves raise Cancelled."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _check(self, v: Vertex) -> None:
        if self._cancelled.is_set():
            raise Cancelled(f"not starting {v.name or v.op.kind}: the build was cancelled")

    @contextlib.contextmanager
    def _slot(self, v: Vertex) -> Iterator[None]:
        """One of the ``jobs`` work slots; gives up waiting once cancelled."""
        while not self._work.acquire(timeout=0.1):
            self._check(v)
        try:
            self._check(v)
            yield
        finally:
            self._work.release()

    def solve(self, vertex: Vertex) -> Result:
        with self._lock:
            fut = self._futures.get(vertex.digest)
            owner = fut is None
            if owner:
                fut = Future()
                self._futures[vertex.digest] = fut
        assert fut is not None
        if not owner:
            return fut.result()  # someone else (another platform) is computing it
        try:
            self._check(vertex)
            res = self._compute(vertex)
        except BaseException as e:
            fut.set_exception(e)
            raise
        fut.set_result(res)
        return res

    def result(self, vertex: Vertex) -> Result | None:
        """The result of a vertex this solver computed (None if it was never solved)."""
        with self._lock:
            fut = self._futures.get(vertex.digest)
        if fut is None or not fut.done() or fut.exception() is not None:
            return None
        return fut.result()

    # -- internals -----------------------------------------------------------------------

    def _compute(self, v: Vertex) -> Result:
        op = v.op
        if isinstance(op, ScratchOp):
            return Result(cache_key=_h("scratch"), empty=True)
        if isinstance(op, ContextOp):
            return Result(cache_key=_h("context", op.name), local_dir=self._worker.context_dir(op))
        if isinstance(op, ImageOp):
            self._check(v)
            t0 = time.monotonic()
            self._emit(SolveEvent("start", v))
            layers = self._worker.resolve_image(op)
            self._emit(SolveEvent("done", v, duration=time.monotonic() - t0))
            return Result(cache_key=_h("image", op.manifest_digest, str(op.platform)), layers=layers)

        inputs = [self.solve(i) for i in v.inputs]
        extra = ""
        if isinstance(op, CopyOp) and len(inputs) > 1 and not op.inline_files:
            extra = self._worker.copy_checksum(op, inputs[1])
        elif isinstance(op, ExecOp) and any(i.local_dir is not None for i in inputs):
            extra = self._worker.exec_checksum(op, inputs)
        key = _h(CACHE_VERSION, v.op.kind, _stable_op_json(v), *[i.cache_key for i in inputs], extra)
        base_layers = inputs[0].layers if inputs else ()

        if not self._no_cache and self._cache is not None:
            rec = self._cache.get(key)
            if rec is not None and (rec.layer is None or self._worker.has_blob(rec.layer)):
                with self._lock:
                    self.stats.cached += 1
                    self.stats.by_vertex[v.digest] = "cached"
                self._emit(SolveEvent("cached", v))
                if rec.layer is None or rec.diff_id is None:
                    return Result(cache_key=key, layers=base_layers, empty=True, created=rec.created)
                return Result(cache_key=key, layers=(*base_layers, LayerRef(rec.layer, rec.diff_id)),
                              created=rec.created)

        t0 = time.monotonic()
        with self._slot(v):
            self._emit(SolveEvent("start", v))
            try:
                if isinstance(op, ExecOp):
                    layer = self._worker.run_exec(op, inputs, lambda line: self._emit(SolveEvent("log", v, line)))
                elif isinstance(op, CopyOp):
                    layer = self._worker.run_copy(op, inputs)
                elif isinstance(op, MkdirOp):
                    layer = self._worker.run_mkdir(op, inputs)
                else:  # pragma: no cover - a new op kind without a worker method
                    raise XarchError(f"no worker for op {op.kind}")
            except Cancelled:
                raise  # stopped on purpose: no step error to report
            except XarchError as e:
                self._emit(SolveEvent("error", v, str(e), time.monotonic() - t0))
                raise e if isinstance(e, StepError) else StepError(v, e) from e
        with self._lock:
            self.stats.executed += 1
            self.stats.exec_runs += isinstance(op, ExecOp)
            self.stats.by_vertex[v.digest] = "run"
        self._emit(SolveEvent("done", v, duration=time.monotonic() - t0))
        created = time.time()
        if self._cache is not None:
            self._cache.put(key, layer.descriptor if layer else None, layer.diff_id if layer else None,
                            created=created)
        if layer is None:
            return Result(cache_key=key, layers=base_layers, empty=True, created=created)
        return Result(cache_key=key, layers=(*base_layers, layer), created=created)

    def _emit(self, e: SolveEvent) -> None:
        self._on_event(e)


def _stable_op_json(v: Vertex) -> str:
    import json

    return json.dumps(v.op.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
