"""Render progress events for ``--progress auto|plain|tty|json|quiet``.

A renderer is a callable taking events (anything with ``kind``, ``id``, ``total``,
``current`` and ``detail`` attributes, e.g. :class:`xarch.api.ProgressEvent`) plus
``message()`` for summary lines and ``close()``. Renderers are thread-safe: the copy engine
calls them from worker threads. Everything goes to stderr so stdout stays machine-readable.

- ``plain``: one line per finished item (``copy sha256:… 1234 bytes``); byte-level ``begin``
  and ``progress`` events are dropped.
- ``json``: every event as one JSON object per line.
- ``tty``: rich progress bars, one per transfer, finished lines printed above the bars.
- ``quiet``: nothing (errors are still printed by the CLI).
- ``auto``: ``tty`` when stderr is a terminal, else ``plain``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Protocol, TextIO


class Event(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def current(self) -> int: ...
    @property
    def detail(self) -> str: ...


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_plain(e: Event) -> str | None:
    """One line for a finished item, or None for byte-level events plain output skips."""
    k = e.kind
    if k in ("begin", "progress"):
        return None
    if k == "copy":
        return f"copy {e.id} {e.total} bytes"
    if k == "skip":
        return f"skip {e.id} {e.total} bytes (exists)"
    if k == "mount":
        return f"mount {e.id} {e.detail}".rstrip()
    if k == "manifest":
        return f"manifest {e.id} {e.detail}".rstrip()
    parts = [k]
    if e.id:
        parts.append(e.id)
    if e.detail:
        parts.append(e.detail)
    return " ".join(parts)


class Renderer:
    """Base: thread-safe, writes nothing."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QuietRenderer(Renderer):
    pass


class PlainRenderer(Renderer):
    def __call__(self, event: Event) -> None:
        line = format_plain(event)
        if line is not None:
            self._write(line)

    def message(self, text: str) -> None:
        self._write(text)

    def _write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def event_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"time": round(time.time(), 3), "kind": event.kind, "id": event.id}
    if event.total:
        out["total"] = event.total
    if event.current:
        out["current"] = event.current
    if event.detail:
        out["detail"] = event.detail
    return out


class JsonRenderer(Renderer):
    def __call__(self, event: Event) -> None:
        self._write(event_json(event))

    def message(self, text: str) -> None:
        self._write({"time": round(time.time(), 3), "kind": "message", "detail": text})

    def _write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":"))
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class TtyRenderer(Renderer):
    """rich bars for transfers in flight; finished items scroll above them."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=self.stream, stderr=stream is None)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._start()
            k = event.kind
            if k == "begin":
                if event.id not in self.tasks:
                    self.tasks[event.id] = self.progress.add_task(
                        short_id(event.id), total=event.total or None
                    )
                return
            if k == "progress":
                task = self.tasks.get(event.id)
                if task is not None:
                    self.progress.update(task, completed=event.current)
                return
            task = self.tasks.pop(event.id, None)
            if task is not None:
                self.progress.remove_task(task)
            line = format_plain(event)
            if line is not None and k != "manifest":
                self.progress.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def message(self, text: str) -> None:
        with self.lock:
            if self.started:
                self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
            else:
                self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        with self.lock:
            if self.started:
                self.progress.stop()
                self.started = False


def short_id(s: str) -> str:
    algo, colon, hexpart = s.partition(":")
    if colon and len(hexpart) > 12:
        return f"{algo}:{hexpart[:12]}"
    return s


def resolve_mode(mode: str, stream: TextIO | None = None) -> str:
    """``auto`` → ``tty`` when the stream is a terminal, else ``plain``."""
    if mode != "auto":
        return mode
    s = stream if stream is not None else sys.stderr
    try:
        return "tty" if s.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def make_renderer(mode: str, stream: TextIO | None = None) -> Renderer:
    mode = resolve_mode(mode, stream)
    if mode == "plain":
        return PlainRenderer(stream)
    if mode == "json":
        return JsonRenderer(stream)
    if mode == "tty":
        return TtyRenderer(stream)
    if mode == "quiet":
        return QuietRenderer(stream)
    raise ValueError(f"unknown progress mode {mode!r}")
