"""Build cache (hits, misses, --no-cache, speed) and reproducible digests."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from tests.builder.conftest import BuildEnv, write_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATS = ("linux/amd64", "linux/arm64", "linux/arm/v7")


def _hello_like(base: str, nonce: str) -> str:
    """The shape of examples/hello: a $BUILDPLATFORM stage, per-target output, an emulated RUN."""
    return f"""FROM --platform=$BUILDPLATFORM {base} AS build
WORKDIR /src
COPY app.in ./
RUN sed -e 's/@X@/{nonce}/' app.in > app && chmod 0755 app
ARG TARGETARCH
RUN mkdir -p /out && cp app /out/app-$TARGETARCH && echo $TARGETARCH > /out/arch
FROM {base}
COPY --from=build /out/ /usr/local/bin/
RUN uname -m > /etc/machine && cat /usr/local/bin/arch
LABEL x=y
"""


def test_no_change_rebuild_runs_nothing_and_is_fast(benv: BuildEnv, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", _hello_like(benv.base, uuid.uuid4().hex), {"app.in": "echo @X@\n"})
    t0 = time.monotonic()
    cold = benv.build(tmp_path, "", context=ctx, platforms=PLATS)
    cold_s = time.monotonic() - t0
    t0 = time.monotonic()
    warm = benv.build(tmp_path, "", context=ctx, platforms=PLATS)
    warm_s = time.monotonic() - t0
    print(f"\ncold build {cold_s:.3f}s ({cold.runs} RUN), no-change rebuild {warm_s:.3f}s "
          f"({warm.runs} RUN): {cold_s / warm_s:.1f}x")
    assert cold.runs == 1 + 3 + 3
    assert warm.runs == 0 and warm.executed == 0
    # byte-identical, without SOURCE_DATE_EPOCH: history and "created" carry the time each
    # cached step was made (as BuildKit), not the rebuild's
    assert warm.root.digest == cold.root.digest
    for p in PLATS:
        cfg = benv.manifests(cold.root)[p][1]
        assert cfg["created"] == cfg["history"][-1]["created"]
        assert all("created" in h for h in cfg["history"])
    assert all(n == 0 for n in warm.vertex_runs.values()), warm.vertex_runs
    assert cold_s / warm_s >= 5, f"rebuild only {cold_s / warm_s:.1f}x faster"


def test_rebuild_after_a_change_gets_a_new_time_only_where_it_changed(
        benv: BuildEnv, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    df = f"FROM {benv.base}\nRUN echo {nonce} > /a\nCOPY f /f\n"
    ctx = write_context(tmp_path / "ctx", df, {"f": "1"})
    first = benv.build(tmp_path, "", context=ctx)
    time.sleep(0.01)
    (ctx / "f").write_text("2")
    second = benv.build(tmp_path, "", context=ctx)
    assert second.root.digest != first.root.digest
    h1 = benv.config(first)["history"]
    h2 = benv.config(second)["history"]
    assert h1[-2]["created"] == h2[-2]["created"]  # the cached RUN keeps its time
    assert h2[-1]["created"] > h1[-1]["created"]  # the re-run COPY is new
    assert benv.config(second)["created"] == h2[-1]["created"]


def test_changed_file_reruns_only_later_steps(benv: BuildEnv, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    df = f"""FROM {benv.base} AS other
RUN echo other-{nonce} > /other
FROM {benv.base}
RUN echo before-{nonce} > /before
COPY a.txt /a.txt
RUN cat /a.txt > /after-a-{nonce}
COPY b.txt /b.txt
COPY --from=other /other /other
"""
    ctx = write_context(tmp_path / "ctx", df, {"a.txt": "one", "b.txt": "b", "unrelated": "u"})
    r1 = benv.build(tmp_path, "", context=ctx)
    assert r1.runs == 3
    # unrelated context change, and an mtime-only change of a copied file: all cached
    (ctx / "unrelated").write_text("changed")
    os.utime(ctx / "a.txt", (1, 1))
    r2 = benv.build(tmp_path, "", context=ctx)
    assert (r2.runs, r2.executed) == (0, 0)
    (ctx / "a.txt").write_text("two")
    r3 = benv.build(tmp_path, "", context=ctx)
    ran = sorted(e.name.split("] ", 1)[1] for e in benv.events if e.kind == "done" and "] " in e.name)
    assert ran == sorted([
        "COPY a.txt /a.txt", f"RUN cat /a.txt > /after-a-{nonce}", "COPY b.txt /b.txt",
        "COPY --from=other /other /other",
    ]), ran
    assert r3.runs == 1
    fs = benv.rootfs(r3, tmp_path / "fs")
    assert (fs / f"after-a-{nonce}").read_text() == "two"


def test_no_cache_reruns_everything(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"FROM {benv.base}\nRUN echo {uuid.uuid4().hex} > /a\nCOPY f /f\nRUN cat /f > /g\n"
    ctx = write_context(tmp_path / "ctx", df, {"f": "F"})
    r1 = benv.build(tmp_path, "", context=ctx)
    r2 = benv.build(tmp_path, "", context=ctx, no_cache=True)
    assert (r1.runs, r2.runs) == (2, 2)
    assert r2.executed == 3 and r2.cached == 0


def test_reproducible_no_cache_builds(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base} AS build
WORKDIR /w
COPY . /ctx/
RUN echo built > /built && echo data > /w/file && touch /w/now && mkdir /w/d
FROM {benv.base}
COPY --from=build /w /w
RUN mkdir -p /var/x && echo x > /var/x/y && ln -s y /var/x/z && ln /var/x/y /var/x/h
ENV A=1
"""
    ctx = write_context(tmp_path / "ctx", df, {"f": "F", "sub/g": "G"})
    digests = []
    for _ in range(2):
        r = benv.build(tmp_path, "", context=ctx, platforms=("linux/amd64", "linux/arm64"),
                       no_cache=True, build_args={"SOURCE_DATE_EPOCH": "1700000000"})
        digests.append(str(r.root.digest))
        for _p, (man, cfg, _raw) in benv.manifests(r.root).items():
            assert cfg["created"] == "2023-11-14T22:13:20Z"
            assert all(h["created"] == "2023-11-14T22:13:20Z" for h in cfg["history"][1:])
            for layer in man.layers[1:]:
                with tarfile.open(fileobj=io.BytesIO(benv.layer_tar(layer))) as tf:
                    assert all(m.mtime <= 1700000000 for m in tf.getmembers())
    assert digests[0] == digests[1], digests
    r3 = benv.build(tmp_path, "", context=ctx, platforms=("linux/amd64", "linux/arm64"),
                    no_cache=True, build_args={"SOURCE_DATE_EPOCH": "1700000001"})
    assert str(r3.root.digest) != digests[0]  # the epoch really is what pins the digests


_BUILD_SCRIPT = """
import sys
from pathlib import Path
from xarch.builder.api import BuildOptions, build
from xarch.oci.platform import Platform
from xarch.transports.store import LocalStore
store = LocalStore(Path(sys.argv[1]))
plats = tuple(Platform.parse(p) for p in sys.argv[3].split(","))
r = build(BuildOptions(context=Path(sys.argv[2]), platforms=plats, tags=(sys.argv[4],),
                       source_date_epoch=1700000000), store=store)
print(r.root.digest)
"""


def test_two_processes_share_a_store(benv: BuildEnv, tmp_path: Path) -> None:
    """Two builds of the same Dockerfile at once, in two processes, on one store: both
    succeed with the same digest (layer dirs are created under a cross-process lock)."""
    import subprocess
    import sys

    files: dict[str, str | bytes] = {f"d/f{i}": os.urandom(4096) for i in range(300)}
    nonce = uuid.uuid4().hex
    df = f"""FROM {benv.base}
COPY d/ /d/
RUN ls /d | wc -l > /n-{nonce}
COPY d/ /e/
RUN cat /n-{nonce} > /m
"""
    ctx = write_context(tmp_path / "ctx", df, files)
    plats = "linux/amd64,linux/arm64"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_SCRIPT, str(benv.store.root), str(ctx), plats, f"xarch-test/par:{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert outs[0][0].strip() == outs[1][0].strip()
