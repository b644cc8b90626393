"""Benchmark: ``xarch build`` against buildah and Docker BuildKit, multi-platform.

    .venv/bin/python bench/build.py [--runs 3] [--contexts runheavy,crosscompile,copy400]
        [--platform-sets 2,5] [--tools xarch,buildah,docker] [--copy-mb 400] [--quick]
        [--work DIR] [--no-docs] [--profile] [--api]

Contexts (``bench/contexts/<name>``, copied into ``--work`` so the repository is never edited):

- ``runheavy``: CPU-bound busybox ``RUN`` steps, emulated (qemu-user via binfmt_misc) on every
  non-amd64 platform;
- ``crosscompile``: a ``FROM --platform=$BUILDPLATFORM`` build stage doing the heavy work
  natively and a small runtime stage with no ``RUN``;
- ``copy400``: ``COPY`` of ``--copy-mb`` MB (half random, half compressible text, generated at
  bench time into the work directory).

Platform sets: ``2`` = linux/amd64,linux/arm64; ``5`` = those plus linux/arm/v7, linux/ppc64le,
linux/s390x. For every (context, platform set, tool) and every run: a cold build (xarch: fresh
``XARCH_HOME``; buildah: fresh storage root; docker: ``docker builder prune -af`` and every image
removed), then a push to a freshly started registry; a no-change rebuild and its push; a
one-file change, its rebuild and its push. Build and push are timed separately, wall clock
of the commands users run (process start-up included); peak memory is the largest sum of RSS
over the tool's process tree (for docker: the CLI plus dockerd and everything under it, so the
daemon's resident baseline is included), sampled every 0.1 s from /proc.

Tools: xarch CLI (``xarch build`` then ``xarch copy`` to push; ``--api`` uses the Python API in a
subprocess instead); ``buildah build --layers --platform A,B --manifest`` then
``buildah manifest push --all``; BuildKit in a private dockerd 20.10: one
``DOCKER_BUILDKIT=1 docker build --platform P`` per platform, then ``docker push`` per platform
and ``docker manifest create/push`` for the list. Base images: ``xarch bootstrap`` (busybox,
cached in ``--work``), pushed by ``xarch copy`` to a local Debian ``docker-registry`` that all
three tools pull from (``--build-arg BASE=127.0.0.1:PORT/bench/busybox:bookworm``).

Also measured in-process on the copy400 data: sha256, gzip via isal, zstd and disk-write
throughput (the floors for a COPY layer). ``--profile`` runs xarch's cold and no-change builds of
each context through the Python API under cProfile (all threads) and writes the top functions
to ``--work``/profile-<context>.txt. Results replace the section between
``<!-- build-bench:start -->`` and ``<!-- build-bench:end -->`` in ``docs/benchmarks.md``.
"""

# ruff: noqa: E402  (sys.path must be fixed before the imports below)
from __future__ import annotations

import os
import sys

# bench/ holds copy.py: drop it from sys.path or the standard library's ``copy`` (which
# dataclasses imports) would resolve to that script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
REPO_DIR = os.path.dirname(_HERE)
sys.path.insert(0, os.path.join(REPO_DIR, "tests"))  # the registry fixture helper

import argparse
import contextlib
import cProfile
import hashlib
import io
import json
import platform as pyplatform
import pstats
import random
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import zstandard
from isal import isal_zlib

from helpers.registry import RunningRegistry, start_registry

REPO = Path(REPO_DIR)
CONTEXTS = REPO / "bench" / "contexts"
DOCS = REPO / "docs" / "benchmarks.md"
VENV_BIN = REPO / ".venv" / "bin"
XARCH = str(VENV_BIN / "xarch")
PYTHON = str(VENV_BIN / "python")
MARK_START, MARK_END = "<!-- build-bench:start -->", "<!-- build-bench:end -->"
BASE_NAME = "bench/busybox:bookworm"
PLATFORM_SETS = {
    "2": ("linux/amd64", "linux/arm64"),
    "5": ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"),
}
CONTEXT_NAMES = ("runheavy", "crosscompile", "copy400")
# the file the one-file-change scenario edits, per context
CHANGED_FILE = {"runheavy": "input.txt", "crosscompile": "src/main.c", "copy400": "small.txt"}
HEAVY_STEP = "RUN mkdir -p obj"  # crosscompile's build-stage step that must run once
SCENARIOS = ("cold", "nochange", "onefile")
# the Debian docker.io client (20.10): a newer /usr/local/bin/docker wants the buildx plugin
# for DOCKER_BUILDKIT=1, which dockerd 20.10's built-in BuildKit does not need
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- measuring


def _proc_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        pid = int(d)
        children.setdefault(int(fields[1]), []).append(pid)  # field 4: ppid
        rss[pid] = int(fields[21]) * PAGE  # field 24: rss in pages
    return children, rss


def tree_rss(roots: Sequence[int]) -> int:
    children, rss = _proc_table()
    seen: set[int] = set()
    todo = [r for r in roots if r in rss]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return sum(rss[p] for p in seen)


class PeakSampler:
    """Samples the RSS sum of a process tree every ``interval`` s in a thread."""

    def __init__(self, extra_roots: Sequence[int] = (), interval: float = 0.1) -> None:
        self.roots: list[int] = list(extra_roots)
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        if self.roots:
            self.peak = max(self.peak, tree_rss(self.roots))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Sample:
    seconds: float
    peak_rss: int


def run_timed(cmds: Sequence[Sequence[str]], *, env: dict[str, str] | None = None,
              extra_roots: Sequence[int] = (), log: Path | None = None,
              cwd: Path | None = None) -> tuple[Sample, str]:
    """Run ``cmds`` one after the other; wall time of all, peak tree RSS, combined output."""
    out = io.StringIO()
    t0 = time.monotonic()
    with PeakSampler(extra_roots) as sampler:
        for cmd in cmds:
            with tempfile.TemporaryFile() as buf:
                proc = subprocess.Popen(list(cmd), stdout=buf, stderr=subprocess.STDOUT, env=env,
                                        cwd=cwd)
                sampler.roots.append(proc.pid)
                sampler.sample()
                rc = proc.wait()
                sampler.roots.remove(proc.pid)
                buf.seek(0)
                text = buf.read().decode(errors="replace")
            out.write(f"$ {' '.join(cmd)}\n{text}")
            if rc != 0:
                if log:
                    log.write_text(out.getvalue())
                raise BenchError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed ({rc}):\n"
                                 + text[-3000:])
    elapsed = time.monotonic() - t0
    if log:
        log.write_text(out.getvalue())
    return Sample(elapsed, sampler.peak), out.getvalue()


def run_quiet(cmd: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True) -> str:
    p = subprocess.run(list(cmd), capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout


# ---------------------------------------------------------------- contexts


def _text_block(rng: random.Random, size: int) -> bytes:
    words = [
        "alpha", "beta", "gamma", "delta", "layer", "image", "config", "manifest", "index",
        "digest", "platform", "registry", "builder", "cache", "mount", "stage", "export",
        "busybox", "kernel", "thread", "socket", "buffer", "stream", "vertex", "solver",
    ]
    lines = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + f" {rng.randint(0, 99999)}\n"
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


def make_copy_data(data_dir: Path, total_mb: int) -> None:
    """``total_mb`` MB in 8 files: 4 random (incompressible), 4 generated text (~4:1 gzip)."""
    marker = data_dir / ".complete"
    if marker.exists() and marker.read_text() == str(total_mb):
        return
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    per_file = total_mb * MiB // 8
    rng = random.Random(20261128)
    block = _text_block(rng, 4 * MiB)
    for i in range(4):
        (data_dir / f"random-{i}.bin").write_bytes(os.urandom(per_file))
        with open(data_dir / f"text-{i}.txt", "wb") as f:
            written = 0
            n = 0
            while written < per_file:
                # a different header every 4 MiB keeps the files from being identical
                chunk = (f"# file {i} block {n}\n".encode() + block)[: per_file - written]
                f.write(chunk)
                written += len(chunk)
                n += 1
    marker.write_text(str(total_mb))


def prepare_context(name: str, work: Path, copy_mb: int) -> Path:
    ctx = work / "ctx" / name
    if ctx.exists():
        for child in ctx.iterdir():
            if child.name != "data":  # copy400's generated data is kept between bench runs
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copytree(CONTEXTS / name, ctx, dirs_exist_ok=True)
    if name == "copy400":
        make_copy_data(ctx / "data", copy_mb)
    return ctx


def set_revision(ctx: Path, name: str, rev: str) -> None:
    path = ctx / CHANGED_FILE[name]
    original = (CONTEXTS / name / CHANGED_FILE[name]).read_text()
    path.write_text(original if rev == "0" else original + f"/* revision {rev} */\n")


# ---------------------------------------------------------------- tools


@dataclass
class Env:
    work: Path
    base_registry: RunningRegistry
    base_ref: str
    push_registry: RunningRegistry | None = None


class Tool:
    name = ""

    def __init__(self, env: Env) -> None:
        self.env = env

    def reset(self) -> None: ...
    def before_rebuild(self, ctx_name: str) -> None: ...
    def build(self, ctx: Path, ctx_name: str, platforms: Sequence[str], log: Path) -> tuple[Sample, str]:
        raise NotImplementedError
    def push(self, ctx_name: str, platforms: Sequence[str], log: Path) -> Sample:
        raise NotImplementedError
    def heavy_runs(self, output: str) -> int | None:
        return None
    def version(self) -> str:
        return ""
    def close(self) -> None: ...


class XarchTool(Tool):
    name = "xarch"

    def __init__(self, env: Env, *, use_api: bool = False) -> None:
        super().__init__(env)
        self.home = env.work / "xarch-home"
        self.use_api = use_api

    def _env(self) -> dict[str, str]:
        return {**os.environ, "XARCH_HOME": str(self.home)}

    def reset(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)

    def build(self, ctx: Path, ctx_name: str, platforms: Sequence[str], log: Path) -> tuple[Sample, str]:
        tag = f"bench/{ctx_name}:latest"
        if self.use_api:
            cmd = [PYTHON, __file__, "--api-build", str(ctx), ",".join(platforms), tag, self.env.base_ref]
        else:
            cmd = [XARCH, "--progress", "plain", "build", str(ctx), "--platform", ",".join(platforms),
                   "-t", tag, "--build-arg", f"BASE={self.env.base_ref}", "--insecure"]
        return run_timed([cmd], env=self._env(), log=log)

    def push(self, ctx_name: str, platforms: Sequence[str], log: Path) -> Sample:
        assert self.env.push_registry is not None
        dst = f"docker://{self.env.push_registry.url}/bench/{ctx_name}:xarch"
        return run_timed([[XARCH, "--progress", "quiet", "copy", "--insecure",
                           f"store:bench/{ctx_name}:latest", dst]], env=self._env(), log=log)[0]

    def heavy_runs(self, output: str) -> int | None:
        # plain progress: "#N [linux/amd64 build 3/6] RUN mkdir -p obj ..." then "#N DONE 1.2s"
        ids = {m.group(1) for m in re.finditer(r"^#(\d+) \[[^\]]*\] " + re.escape(HEAVY_STEP), output, re.M)}
        return sum(1 for i in ids if re.search(rf"^#{i} DONE", output, re.M))

    def version(self) -> str:
        return run_quiet([XARCH, "--version"]).strip()


class BuildahTool(Tool):
    name = "buildah"

    def __init__(self, env: Env, isolation: str | None) -> None:
        super().__init__(env)
        self.root = env.work / "buildah" / "root"
        self.runroot = Path(tempfile.mkdtemp(prefix="xbb-bh-"))  # short: it holds sockets
        self.isolation = isolation

    def _base(self) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", "overlay"]

    def _wipe(self) -> None:
        if self.root.exists():
            run_quiet([*self._base(), "rm", "--all"], check=False)
            run_quiet([*self._base(), "rmi", "--all", "--force"], check=False)
            for root in (self.root, self.runroot):
                mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                          if line.split()[1].startswith(str(root))]
                for m in sorted(mounts, key=len, reverse=True):
                    subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
        self.runroot.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        self._wipe()
        self.root.mkdir(parents=True)

    def before_rebuild(self, ctx_name: str) -> None:
        # --manifest adds to an existing list: start from an empty one, as scripts do
        run_quiet([*self._base(), "manifest", "rm", f"bench-{ctx_name}"], check=False)

    def build(self, ctx: Path, ctx_name: str, platforms: Sequence[str], log: Path) -> tuple[Sample, str]:
        cmd = [*self._base(), "build", "--layers", "--platform", ",".join(platforms),
               "--manifest", f"bench-{ctx_name}", "--tls-verify=false", "--runtime", "runc",
               "--build-arg", f"BASE={self.env.base_ref}"]
        if self.isolation:
            cmd += ["--isolation", self.isolation]
        return run_timed([[*cmd, str(ctx)]], log=log)

    def push(self, ctx_name: str, platforms: Sequence[str], log: Path) -> Sample:
        assert self.env.push_registry is not None
        dst = f"docker://{self.env.push_registry.url}/bench/{ctx_name}:buildah"
        return run_timed([[*self._base(), "manifest", "push", "--all", "--tls-verify=false",
                           f"bench-{ctx_name}", dst]], log=log)[0]

    def heavy_runs(self, output: str) -> int | None:
        # "STEP 4/7: RUN mkdir -p obj ..." followed by "--> Using cache" when it did not run;
        # platforms build concurrently, so count steps minus cache hits of that step's digest
        step = re.compile(r"STEP \d+/\d+: " + re.escape(HEAVY_STEP))
        steps = len(step.findall(output))
        lines = output.splitlines()
        cached = 0
        for i, line in enumerate(lines):
            if step.search(line):
                nxt = next((x for x in lines[i + 1 : i + 4] if x.startswith("-->")), "")
                cached += "Using cache" in nxt
        return steps - cached

    def version(self) -> str:
        return run_quiet(["buildah", "--version"]).strip()

    def close(self) -> None:
        self._wipe()
        shutil.rmtree(self.runroot, ignore_errors=True)


class DockerTool(Tool):
    name = "docker"

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.dir = Path(tempfile.mkdtemp(prefix="xbb-dk-"))  # short: sockets live here
        self.data_root = env.work / "docker-root"
        self.config = self.dir / "config"
        self.config.mkdir()
        shutil.rmtree(self.data_root, ignore_errors=True)
        self.data_root.mkdir(parents=True)
        self.host = f"unix://{self.dir}/docker.sock"
        self._log = open(self.dir / "dockerd.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
             "--data-root", str(self.data_root), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "dockerd.pid"), "-H", self.host,
             "--insecure-registry", "127.0.0.0/8"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run([DOCKER, "version"], env=self._env(), capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("dockerd did not start:\n" + (self.dir / "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1",
                "DOCKER_CONFIG": str(self.config)}

    def reset(self) -> None:
        run_quiet([DOCKER, "builder", "prune", "-af"], env=self._env())
        ids = run_quiet([DOCKER, "images", "-aq"], env=self._env()).split()
        if ids:
            run_quiet([DOCKER, "rmi", "-f", *sorted(set(ids))], env=self._env())
        shutil.rmtree(self.config / "manifests", ignore_errors=True)

    @staticmethod
    def _suffix(p: str) -> str:
        return p.split("/", 1)[1].replace("/", "")

    def build(self, ctx: Path, ctx_name: str, platforms: Sequence[str], log: Path) -> tuple[Sample, str]:
        cmds = [[DOCKER, "build", "--progress", "plain", "--network", "host", "--platform", p,
                 "--build-arg", f"BASE={self.env.base_ref}",
                 "-t", f"bench/{ctx_name}:{self._suffix(p)}", str(ctx)] for p in platforms]
        return run_timed(cmds, env=self._env(), extra_roots=[self.proc.pid], log=log)

    def push(self, ctx_name: str, platforms: Sequence[str], log: Path) -> Sample:
        assert self.env.push_registry is not None
        repo = f"{self.env.push_registry.url}/bench/{ctx_name}"
        cmds: list[list[str]] = []
        for p in platforms:
            cmds.append([DOCKER, "tag", f"bench/{ctx_name}:{self._suffix(p)}", f"{repo}:docker-{self._suffix(p)}"])
            cmds.append([DOCKER, "push", "-q", f"{repo}:docker-{self._suffix(p)}"])
        cmds.append([DOCKER, "manifest", "create", "--insecure", "--amend", f"{repo}:docker",
                     *(f"{repo}:docker-{self._suffix(p)}" for p in platforms)])
        cmds.append([DOCKER, "manifest", "push", "--insecure", f"{repo}:docker"])
        return run_timed(cmds, env=self._env(), extra_roots=[self.proc.pid], log=log)[0]

    def heavy_runs(self, output: str) -> int | None:
        # "#7 [build 3/6] RUN mkdir -p obj ..." then "#7 CACHED" or "#7 DONE 1.2s", per build
        runs = 0
        for block in output.split("\n$ ")[0:]:
            ids = {m.group(1) for m in re.finditer(r"^#(\d+) \[[^\]]*\] " + re.escape(HEAVY_STEP), block, re.M)}
            runs += sum(1 for i in ids if re.search(rf"^#{i} DONE", block, re.M))
        return runs

    def version(self) -> str:
        server = run_quiet([DOCKER, "version", "--format", "{{.Server.Version}}"], env=self._env()).strip()
        return f"dockerd {server} (BuildKit built in)"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reset()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        for line in Path("/proc/mounts").read_text().splitlines():
            mnt = line.split()[1]
            if mnt.startswith(str(self.data_root)) or mnt.startswith(str(self.dir)):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def probe_buildah_isolation(env: Env) -> str | None:
    """``oci`` (the default, with runc) if a RUN works under it, else ``chroot``."""
    ctx = env.work / "ctx" / "_probe"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo ok > /ok\n")
    for isolation in (None, "chroot"):
        tool = BuildahTool(env, isolation)
        try:
            tool.reset()
            tool.build(ctx, "probe", ["linux/amd64"], env.work / "probe-buildah.log")
            return isolation
        except BenchError as e:
            print(f"buildah isolation {isolation or 'oci'} failed: {str(e)[-500:]}", file=sys.stderr)
        finally:
            tool.close()
    raise BenchError("buildah cannot run a RUN step with oci or chroot isolation")


# ---------------------------------------------------------------- the benchmark


@dataclass
class Results:
    # (context, platform set, tool, scenario, phase) -> samples; phase build|push
    samples: dict[tuple[str, str, str, str, str], list[Sample]] = field(default_factory=dict)
    heavy: dict[tuple[str, str, str], list[int | None]] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, key: tuple[str, str, str, str, str], s: Sample) -> None:
        self.samples.setdefault(key, []).append(s)


def bench_one(tool: Tool, env: Env, ctx_name: str, ctx: Path, pset: str, run: int,
              results: Results, logs: Path) -> None:
    platforms = PLATFORM_SETS[pset]
    key = (ctx_name, pset, tool.name)
    set_revision(ctx, ctx_name, "0")
    tool.reset()
    push_reg = start_registry(Path(tempfile.mkdtemp(prefix="push-", dir=env.work)))
    env.push_registry = push_reg
    try:
        for scenario in SCENARIOS:
            if scenario == "onefile":
                set_revision(ctx, ctx_name, f"{run + 1}")
            if scenario != "cold":
                tool.before_rebuild(ctx_name)
            stem = f"{ctx_name}-{pset}-{tool.name}-{run}-{scenario}"
            s, out = tool.build(ctx, ctx_name, platforms, logs / f"{stem}-build.log")
            results.add((*key, scenario, "build"), s)
            if ctx_name == "crosscompile" and scenario == "cold":
                results.heavy.setdefault(key, []).append(tool.heavy_runs(out))
            p = tool.push(ctx_name, platforms, logs / f"{stem}-push.log")
            results.add((*key, scenario, "push"), p)
            print(f"  {stem}: build {s.seconds:.2f}s ({s.peak_rss / MiB:.0f} MiB), "
                  f"push {p.seconds:.2f}s", flush=True)
    finally:
        env.push_registry = None
        push_reg.stop()
        shutil.rmtree(Path(push_reg.log_path).parent.parent, ignore_errors=True)
        set_revision(ctx, ctx_name, "0")


def setup_base(work: Path, base_registry: RunningRegistry) -> str:
    home = work / "base-home"
    env = {**os.environ, "XARCH_HOME": str(home)}
    have = subprocess.run([XARCH, "inspect", f"store:{BASE_NAME}"], env=env, capture_output=True, text=True)
    if have.returncode != 0 or "s390x" not in have.stdout:
        print("bootstrapping the busybox base image (5 platforms)...", flush=True)
        run_quiet([XARCH, "bootstrap", "debian", "--variant", "extract", "--include", "busybox-static",
                   "--busybox-links", "--source-date-epoch", "1700000000", "--platform",
                   ",".join(PLATFORM_SETS["5"]), "-t", BASE_NAME], env=env)
    ref = f"{base_registry.url}/{BASE_NAME}"
    run_quiet([XARCH, "--progress", "quiet", "copy", "--insecure", f"store:{BASE_NAME}", f"docker://{ref}"], env=env)
    return ref


# ---------------------------------------------------------------- raw limits


def raw_limits(data_dir: Path, work: Path) -> dict[str, tuple[float, float]]:
    """MB/s (input) and output/input ratio on the copy400 data, in-process, single thread."""
    files = sorted(p for p in data_dir.iterdir() if not p.name.startswith("."))
    blobs = [p.read_bytes() for p in files]
    total = sum(len(b) for b in blobs)
    out: dict[str, tuple[float, float]] = {}

    def timed(name: str, fn: Callable[[memoryview], int]) -> None:
        best, size = float("inf"), 0
        for _ in range(2):
            t = time.perf_counter()
            size = 0
            for b in blobs:
                mv = memoryview(b)
                for i in range(0, len(mv), MiB):
                    size += fn(mv[i : i + MiB])
            best = min(best, time.perf_counter() - t)
        out[name] = (total / 1e6 / best, size / total)

    h = hashlib.sha256()
    def sha_chunk(c: memoryview) -> int:
        h.update(c)
        return 0

    timed("sha256 (hashlib)", sha_chunk)
    gz = isal_zlib.compressobj(isal_zlib.ISAL_DEFAULT_COMPRESSION, isal_zlib.DEFLATED, -15)
    crc = [0]

    def gzip_chunk(c: memoryview) -> int:
        crc[0] = isal_zlib.crc32(c, crc[0])
        return len(gz.compress(c))

    timed("gzip (isal, default level)", gzip_chunk)
    zc = zstandard.ZstdCompressor(level=3).compressobj()
    timed("zstd (level 3)", lambda c: len(zc.compress(c)))
    target = work / "write-test.bin"
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        with open(target, "wb") as f:
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        best = min(best, time.perf_counter() - t)
        target.unlink()
    out["disk write + fsync"] = (total / 1e6 / best, 1.0)
    return out


# ---------------------------------------------------------------- profiling (Python API)


def api_build(ctx: Path, platforms: Sequence[str], tag: str, base: str, *, no_cache: bool = False,
              on_event: Callable[[object], None] | None = None) -> object:
    from xarch.builder.api import BuildOptions, build
    from xarch.builder.bootstrap import parse_platforms
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.store import LocalStore, xarch_home

    store = LocalStore(xarch_home() / "store")
    return build(BuildOptions(context=ctx, platforms=parse_platforms([",".join(platforms)]), tags=(tag,),
                              build_args={"BASE": base}, no_cache=no_cache,
                              registry_options=RegistryOptions(insecure=True)),
                 store=store, on_event=on_event)


@contextlib.contextmanager
def profile_all_threads() -> Iterator[list[cProfile.Profile]]:
    """cProfile every thread (Python 3.11 has no setprofile_all_threads): wrap Thread.run."""
    profiles: list[cProfile.Profile] = []
    orig = threading.Thread.run

    def run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            orig(self)
        finally:
            prof.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.Thread.run = orig  # type: ignore[method-assign]


def profile_context(env: Env, ctx_name: str, ctx: Path, platforms: Sequence[str]) -> dict[str, object]:
    home = env.work / "profile-home"
    shutil.rmtree(home, ignore_errors=True)
    os.environ["XARCH_HOME"] = str(home)
    steps: list[tuple[str, float]] = []

    def ev(e: object) -> None:
        if getattr(e, "kind", "") == "done":
            steps.append((e.name, e.duration))  # type: ignore[attr-defined]

    ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with profile_all_threads() as profiles:
        t = time.monotonic()
        res = api_build(ctx, platforms, f"bench/{ctx_name}:profile", env.base_ref, on_event=ev)
        cold = time.monotonic() - t
    ru_self2, ru_kids2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of xarch's own process (profiler overhead included) vs the RUN containers
    cpu_self = ru_self2.ru_utime + ru_self2.ru_stime - ru_self.ru_utime - ru_self.ru_stime
    cpu_kids = ru_kids2.ru_utime + ru_kids2.ru_stime - ru_kids.ru_utime - ru_kids.ru_stime
    text = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=text)
    for p in profiles[1:]:
        with contextlib.suppress(TypeError):  # a profile of a thread that never ran
            stats.add(p)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    t = time.monotonic()
    with profile_all_threads() as profiles2:
        api_build(ctx, platforms, f"bench/{ctx_name}:profile", env.base_ref)
    nochange = time.monotonic() - t
    s2 = pstats.Stats(profiles2[0], stream=text)
    for p in profiles2[1:]:
        with contextlib.suppress(TypeError):
            s2.add(p)
    text.write("\n\n==== no-change rebuild ====\n")
    s2.sort_stats("cumulative").print_stats(30)
    # the same two builds again without the profiler: the in-process times to compare
    shutil.rmtree(home, ignore_errors=True)
    t = time.monotonic()
    api_build(ctx, platforms, f"bench/{ctx_name}:profile", env.base_ref)
    cold_plain = time.monotonic() - t
    t = time.monotonic()
    res2 = api_build(ctx, platforms, f"bench/{ctx_name}:profile", env.base_ref)
    nochange_plain = time.monotonic() - t
    out = env.work / f"profile-{ctx_name}.txt"
    slow = sorted(steps, key=lambda s: -s[1])[:12]
    out.write_text("steps (slowest):\n" + "\n".join(f"{d:7.2f}s {n}" for n, d in slow)
                   + f"\ncold {cold:.2f}s (profiled), no-change {nochange:.2f}s (profiled); CPU: xarch process "
                   f"{cpu_self:.2f}s, children (runc/qemu/RUN) {cpu_kids:.2f}s\n\n" + text.getvalue())
    del os.environ["XARCH_HOME"]
    return {"cpu_self": cpu_self, "cpu_children": cpu_kids, "cold_profiled": cold, "nochange_profiled": nochange, "cold_api": cold_plain,
            "nochange_api": nochange_plain, "vertex_runs": dict(res.vertex_runs),  # type: ignore[attr-defined]
            "nochange_runs": res2.runs, "file": str(out), "slow_steps": slow}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, Linux {pyplatform.release()}"


def _stat(samples: list[Sample]) -> tuple[float, float, float, int]:
    secs = [s.seconds for s in samples]
    return statistics.median(secs), min(secs), max(secs), max(s.peak_rss for s in samples)


def render(results: Results, args: argparse.Namespace, versions: dict[str, str],
           limits: dict[str, tuple[float, float]], profiles: dict[str, dict[str, object]],
           isolation: str | None, started: datetime, elapsed: float, startup: Sequence[float]) -> str:
    tools = args.tools
    lines = [
        MARK_START,
        "## build: xarch vs buildah vs Docker BuildKit",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; "
        + "; ".join(f"{versions[t]}" for t in tools if t in versions)
        + f"; Python {pyplatform.python_version()}. Bench wall time {elapsed / 60:.1f} min.",
        "",
        "How: `.venv/bin/python bench/build.py` (contexts in `bench/contexts/`). Base image: "
        "busybox (Debian bookworm, `xarch bootstrap`), pulled by every tool from a local Debian "
        "`docker-registry` on 127.0.0.1; every push goes to a freshly started registry "
        "(cold) and then to the same one (rebuilds). Wall clock of the commands users run, "
        f"process start-up included; median of {args.runs} runs (min–max). Peak memory: the "
        "largest sum of RSS over the tool's process tree, sampled every 0.1 s (docker: the CLI "
        "plus dockerd and everything under it, daemon baseline included). Cold = empty cache "
        "and store (xarch: fresh `XARCH_HOME`; buildah: fresh storage root; docker: "
        "`docker builder prune -af` and all images removed), base image pull included. "
        "Commands: `xarch build --platform A,B,… -t NAME` then `xarch copy NAME docker://…`"
        + (" (Python API for the build)" if args.api else "")
        + "; `buildah build --layers --platform A,B,… --manifest NAME --runtime runc"
        + (f" --isolation {isolation}" if isolation else "")
        + "` then `buildah manifest push --all`; one `DOCKER_BUILDKIT=1 docker build --platform P` "
        "per platform (dockerd 20.10 builds one platform per build), then `docker push` per "
        "platform and `docker manifest create/push`. Foreign RUN steps run under the host's "
        "qemu-user binfmt_misc handlers for all three. The machine is shared with other "
        "engineers' test runs: expect ±30 % noise, compare ratios within a row.",
        "",
        "Platform sets: **2** = linux/amd64, linux/arm64; **5** = + linux/arm/v7, linux/ppc64le, "
        "linux/s390x.",
        "",
    ]
    titles = {
        "runheavy": "RUN-heavy under emulation (`bench/contexts/runheavy`)",
        "crosscompile": "cross-compile, `$BUILDPLATFORM` build stage (`bench/contexts/crosscompile`)",
        "copy400": f"{args.copy_mb} MB COPY, half incompressible (`bench/contexts/copy400`)",
    }
    verdicts: list[str] = []
    for ctx in args.contexts:
        lines += [f"### {titles[ctx]}", "",
                  "| platforms | scenario | " + " | ".join(f"{t} build" for t in tools) + " | "
                  + " | ".join(f"{t} push" for t in tools) + " | xarch / best other (build) | "
                  + " | ".join(f"{t} peak MiB" for t in tools) + " |",
                  "|---|---|" + "---:|" * (3 * len(tools) + 1)]
        for pset in args.platform_sets:
            for sc in SCENARIOS:
                cells_b, cells_p, cells_m = [], [], []
                med: dict[str, float] = {}
                for t in tools:
                    b = results.samples.get((ctx, pset, t, sc, "build"))
                    p = results.samples.get((ctx, pset, t, sc, "push"))
                    if b:
                        m, lo, hi, peak = _stat(b)
                        med[t] = m
                        cells_b.append(f"{m:.2f} s ({lo:.2f}–{hi:.2f})")
                        cells_m.append(f"{peak / MiB:.0f}")
                    else:
                        err = results.errors.get((ctx, pset, t))
                        cells_b.append("failed" if err else "–")
                        cells_m.append("–")
                    if p:
                        m, lo, hi, _ = _stat(p)
                        cells_p.append(f"{m:.2f} s ({lo:.2f}–{hi:.2f})")
                    else:
                        cells_p.append("–")
                others = [v for t, v in med.items() if t != "xarch"]
                ratio = f"{med['xarch'] / min(others):.2f}" if "xarch" in med and others else "–"
                lines.append(f"| {pset} | {sc} | " + " | ".join(cells_b) + " | " + " | ".join(cells_p)
                             + f" | {ratio} | " + " | ".join(cells_m) + " |")
                if sc == "cold" and "xarch" in med and others:
                    r = med["xarch"] / min(others)
                    verdicts.append(f"cold {ctx}, {pset} platforms: xarch/best = {r:.2f} → "
                                    + ("**met** (≤ 0.8)" if r <= 0.8 else "**missed** (> 0.8)"))
                if sc == "nochange" and "xarch" in med:
                    verdicts.append(f"no-change rebuild {ctx}, {pset} platforms: {med['xarch']:.2f} s (CLI) → "
                                    + ("**met** (< 0.5 s)" if med["xarch"] < 0.5 else "**missed** (≥ 0.5 s)"))
        lines.append("")
        if ctx == "crosscompile":
            heavy = []
            for pset in args.platform_sets:
                for t in tools:
                    v = results.heavy.get((ctx, pset, t))
                    if v:
                        heavy.append(f"{t} {pset}p: {', '.join('?' if x is None else str(x) for x in v)}")
            if heavy:
                lines += ["Times the build stage's heavy `RUN` executed in a cold build, per run "
                          "(from each tool's progress output): " + "; ".join(heavy) + ".", ""]
    errs = [f"- {c} {p}p {t}: {e.splitlines()[0][:300]}" for (c, p, t), e in results.errors.items()]
    if errs:
        lines += ["Failures:", "", *errs, ""]
    if limits:
        lines += [f"### Raw limits on the copy400 data ({args.copy_mb} MB, in-process, one thread)", "",
                  "| operation | MB/s | output / input | time for the data |", "|---|---:|---:|---:|"]
        for name, (mbs, out_ratio) in limits.items():
            ratio_s = f"{out_ratio:.2f}" if name.startswith(("gzip", "zstd")) else "–"
            lines.append(f"| {name} | {mbs:.0f} | {ratio_s} | {args.copy_mb * MiB / 1e6 / mbs:.2f} s |")
        lines.append("")
    if profiles:
        lines += ["### xarch in-process (Python API, 2 platforms)", "",
                  "| context | cold | no-change rebuild | CPU in xarch's process (cold, profiled) "
                  "| CPU in children: runc, qemu, RUN (cold) | heavy step runs (cold) |",
                  "|---|---:|---:|---:|---:|---|"]
        for ctx, pr in profiles.items():
            vr = pr["vertex_runs"]
            assert isinstance(vr, dict)
            heavy_runs = {k: v for k, v in vr.items() if HEAVY_STEP in k}
            shown = ", ".join(f"`{k[:60]}`: {v}" for k, v in heavy_runs.items()) or f"{sum(vr.values())} executed"
            lines.append(f"| {ctx} | {pr['cold_api']:.2f} s | {pr['nochange_api']:.2f} s | "
                         f"{pr['cpu_self']:.2f} s | {pr['cpu_children']:.2f} s | {shown} |")
        lines.append("")
    if startup:
        lines += [f"`xarch --version` (Python start-up and CLI imports, part of every xarch number "
                  f"above): median {statistics.median(startup):.2f} s of {len(startup)}.", ""]
    lines += ["### Targets", "", *(f"- {v}" for v in verdicts), ""]
    lines += ["<!-- build-bench:notes -->", MARK_END]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace our marked section (keeping any hand-written notes block), else append it."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    notes = ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        old, tail = rest.split(MARK_END, 1)
        if "<!-- build-bench:notes -->" in old:
            notes = old.split("<!-- build-bench:notes -->", 1)[1].rstrip("\n")
        section = section.replace("<!-- build-bench:notes -->", "<!-- build-bench:notes -->" + notes)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--contexts", default=",".join(CONTEXT_NAMES))
    ap.add_argument("--platform-sets", default="2,5")
    ap.add_argument("--tools", default="xarch,buildah,docker")
    ap.add_argument("--copy-mb", type=int, default=400)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xarch-build-bench")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 run, 2 platforms, 40 MB copy, no docs")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also cProfile xarch's API builds (2 platforms)")
    ap.add_argument("--api", action="store_true", help="time xarch through the Python API, not the CLI")
    ap.add_argument("--no-limits", action="store_true")
    ap.add_argument("--api-build", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.api_build:  # child process of --api: one build, like the CLI would do it
        ctx, plats, tag, base = args.api_build
        res = api_build(Path(ctx), plats.split(","), tag, base)
        print(json.dumps({"runs": res.runs, "vertex_runs": res.vertex_runs}))  # type: ignore[attr-defined]
        return 0
    if args.quick:
        args.runs, args.platform_sets, args.copy_mb, args.no_docs = 1, "2", 40, True
    args.contexts = [c for c in args.contexts.split(",") if c]
    args.platform_sets = [p for p in args.platform_sets.split(",") if p]
    args.tools = [t for t in args.tools.split(",") if t]
    for c in args.contexts:
        if c not in CONTEXT_NAMES:
            ap.error(f"unknown context {c}")
    for p in args.platform_sets:
        if p not in PLATFORM_SETS:
            ap.error(f"unknown platform set {p} (2 or 5)")
    started = datetime.now(UTC)
    t_start = time.monotonic()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    base_reg = start_registry(Path(tempfile.mkdtemp(prefix="base-", dir=work)))
    tools: list[Tool] = []
    results = Results()
    versions: dict[str, str] = {}
    limits: dict[str, tuple[float, float]] = {}
    profiles: dict[str, dict[str, object]] = {}
    isolation: str | None = None
    startup: list[float] = []
    try:
        base_ref = setup_base(work, base_reg)
        env = Env(work, base_reg, base_ref)
        ctxs = {c: prepare_context(c, work, args.copy_mb) for c in args.contexts}
        for t in args.tools:
            if t == "xarch":
                tools.append(XarchTool(env, use_api=args.api))
            elif t == "buildah":
                isolation = probe_buildah_isolation(env)
                tools.append(BuildahTool(env, isolation))
            elif t == "docker":
                tools.append(DockerTool(env))
            else:
                ap.error(f"unknown tool {t}")
        versions = {t.name: t.version() for t in tools}
        if any(t.name == "xarch" for t in tools):
            startup = [run_timed([[XARCH, "--version"]])[0].seconds for _ in range(5)]
        print(f"{machine()}\n" + "\n".join(versions.values()), flush=True)
        for ctx_name, ctx in ctxs.items():
            for pset in args.platform_sets:
                for run in range(args.runs):
                    for tool in tools:  # interleaved, so background load spreads over all tools
                        if (ctx_name, pset, tool.name) in results.errors:
                            continue
                        try:
                            bench_one(tool, env, ctx_name, ctx, pset, run, results, logs)
                        except BenchError as e:
                            print(f"  {ctx_name} {pset} {tool.name}: FAILED {e}", flush=True)
                            results.errors[(ctx_name, pset, tool.name)] = str(e)
        if "copy400" in ctxs and not args.no_limits:
            limits = raw_limits(ctxs["copy400"] / "data", work)
            print("raw limits:", {k: f"{v[0]:.0f} MB/s" for k, v in limits.items()}, flush=True)
        if args.profile:
            for ctx_name, ctx in ctxs.items():
                profiles[ctx_name] = profile_context(env, ctx_name, ctx, PLATFORM_SETS["2"])
                pr = profiles[ctx_name]
                print(f"profile {ctx_name}: cold {pr['cold_api']:.2f}s, no-change {pr['nochange_api']:.2f}s, "
                      f"written to {pr['file']}", flush=True)
    finally:
        for tool in tools:
            with contextlib.suppress(Exception):
                tool.close()
        base_reg.stop()
        shutil.rmtree(Path(base_reg.log_path).parent.parent, ignore_errors=True)
    section = render(results, args, versions, limits, profiles, isolation, started, time.monotonic() - t_start,
                     startup)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print(f"wrote {DOCS}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
