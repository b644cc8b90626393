"""Issue 11 acceptance: ``xarch prune`` looped during builds and copies never breaks an image.

A build (or a copy into the store) holds the store's writer lease from its first blob to its
last name; prune waits for it instead of collecting what the writer has ingested but not named
yet. Here a second process runs ``xarch prune`` back to back while builds (new layers each
time, a RUN that takes a while, so prune lands inside the window) and copies (pulls from a
real registry on 127.0.0.1 into new store names) run; afterwards ``xarch store verify`` is
clean and every name the builds and copies made resolves to an image whose blobs are all here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builder.conftest import BASE, make_build_env, usable
from tests.helpers.registry import RunningRegistry, registry_available, start_registry
from tests.helpers.system import missing
from tests.integration.test_bases_acceptance import context, ok, xarch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = usable()
    if why:
        missing(why)
    h = tmp_path_factory.mktemp("prune-loop") / "home"
    make_build_env(h, ("linux/amd64",), riscv=False)
    return h


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if not registry_available():
        missing("docker-registry")
    reg = start_registry(tmp_path_factory.mktemp("prune-registry"))
    try:
        yield reg
    finally:
        reg.stop()


class PruneLoop:
    """``xarch prune`` run again and again in another process until stopped."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runs = 0
        self.freed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            r = xarch(self.home, "prune", "--format", "json", timeout=300)
            if r.code != 0:
                self.errors.append(r.err[-500:])
            else:
                self.runs += 1
                try:
                    self.freed += len(json.loads(r.out or "{}").get("removed") or [])
                except (ValueError, AttributeError):
                    pass

    def __enter__(self) -> PruneLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=300)


def test_prune_loop_during_builds_and_copies(
    home: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    ok(xarch(home, "copy", f"store:{BASE}", f"{registry.url}/xarch/base:1"), "push the base")
    names: list[str] = []
    with PruneLoop(home) as loop:
        for i in range(6):
            # new content every time (new layers to lose), and a RUN long enough that several
            # prunes fall between its first blob and its tag
            nonce = f"{time.time_ns()}-{i}"
            ctx = context(tmp_path / f"ctx{i}", (
                f"FROM {BASE}\n"
                "COPY data /data\n"
                f"RUN sleep 1 && echo {nonce} > /stamp && head -c 200000 /dev/urandom > /noise\n"
                "COPY data /data2\n"
            ), {"data": nonce * 1000})  # fmt: skip
            name = f"test/pruned:{i}"
            ok(xarch(home, "build", "--platform", "linux/amd64", "-t", name, str(ctx)), f"build {i}")
            names.append(name)
            # a copy into the store while prune runs: new names for pulled content
            pulled = f"test/pulled:{i}"
            ok(xarch(home, "copy", f"{registry.url}/xarch/base:1", f"store:{pulled}"), f"copy {i}")
            names.append(pulled)
            # and a name removed again: its blobs are fair game for the loop
            if i % 2:
                ok(xarch(home, "rm", f"test/pruned:{i - 1}"), "rm")
                names.remove(f"test/pruned:{i - 1}")
    assert not loop.errors, loop.errors
    assert loop.runs >= 6, f"prune ran only {loop.runs} times during the builds"
    v = xarch(home, "store", "verify")
    assert v.code == 0, f"store verify after the prune loop:\n{v.out}\n{v.err}"
    for name in names:
        # every image the loop raced with is whole: exported layer by layer, config included
        out = tmp_path / f"{name.replace('/', '_').replace(':', '_')}.tar"
        ok(xarch(home, "copy", f"store:{name}", f"oci-archive:{out}"), f"export {name}")
        assert out.stat().st_size > 0


def test_prune_after_the_loop_still_collects(home: Path) -> None:
    """Waiting for writers must not make prune a no-op: with no writer, garbage goes."""
    r = xarch(home, "prune", "--dry-run", "--format", "json")
    ok(r, "prune --dry-run")
    ok(xarch(home, "prune"), "prune")
    r2 = xarch(home, "prune", "--dry-run", "--format", "json")
    assert json.loads(r2.out or "{}").get("removed", []) == [], r2.out
