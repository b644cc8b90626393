"""Benchmark: parse a generated 5,000-line Dockerfile; prints the median of several runs.

    .venv/bin/python bench/parse.py [--lines N] [--runs R]

Target: < 50 ms for 5,000 lines.
"""

# ruff: noqa: E402  (sys.path must be fixed before the standard library imports below)
from __future__ import annotations

import os
import sys

# bench/copy.py (the name issue #2 gives it) would shadow the standard library's ``copy``
# when this runs as a script: drop the script's directory from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import gc
import statistics
import time

from xarch.frontend.dockerfile.parser import dump, parse

_BLOCK = [
    "# syntax=docker/dockerfile:1",
    "FROM --platform=$BUILDPLATFORM golang:1.22 AS build{n}",
    "ARG VERSION=1.{n} COMMIT",
    'ENV GOFLAGS="-mod=vendor" CGO_ENABLED=0 \\',
    "    PATH=/go/bin:$PATH",
    "LABEL org.opencontainers.image.title=app{n} maintainer=me@example.com",
    "WORKDIR /src/{n}",
    "COPY --chown=1000:1000 go.mod go.sum ./",
    "RUN --mount=type=cache,target=/root/.cache/go-build \\",
    "    --mount=type=cache,target=/go/pkg/mod \\",
    "    go build -trimpath -ldflags '-s -w' -o /out/app{n} ./cmd/app && \\",
    "    echo done",
    "# a comment before the heredoc",
    "RUN <<EOF",
    "set -e",
    "echo building {n}",
    "EOF",
    'CMD ["/out/app{n}", "--serve"]',
    "HEALTHCHECK --interval=5s CMD curl -f http://localhost/ || exit 1",
    "EXPOSE 8080 9090",
]


def generate(lines: int) -> str:
    out: list[str] = []
    n = 0
    while len(out) < lines:
        out.extend(line.replace("{n}", str(n)) for line in _BLOCK[1 if out else 0 :])
        n += 1
    # Never cut a continuation or a heredoc in half: end on a complete instruction.
    out = out[:lines]
    while out and (out[-1].endswith("\\") or out[-1] in ("RUN <<EOF", "set -e")
                   or out[-1].startswith("echo building")):  # fmt: skip
        out.pop()
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=15)
    ns = ap.parse_args()
    text = generate(ns.lines).encode()
    parse(text)  # warm-up (regex compilation, imports)
    times = []
    result = None
    for _ in range(ns.runs):
        # Each run starts as a fresh `xarch` process would: no previous AST alive, nothing
        # left for the collector (else a full collection walking the last runs' trees lands
        # inside some runs and measures them, not the parser). GC stays on while timing.
        del result
        gc.collect()
        t0 = time.perf_counter()
        result = parse(text)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    dump(result)
    dump_ms = (time.perf_counter() - t0) * 1000
    lines = text.count(b"\n")
    print(
        f"parse {lines} lines ({len(result.ast.children)} instructions): "
        f"median {statistics.median(times):.1f} ms, min {min(times):.1f} ms "
        f"over {ns.runs} runs; dump {dump_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
