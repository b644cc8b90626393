"""Issue 4 acceptance: images xarch builds run in docker and podman on five architectures,
and a failed build pushes nothing.

The docker daemon is the one scripts/test.sh starts (``XARCH_TEST_DOCKER_HOST``); podman runs
with private storage under tmp. Both are skipped locally when missing, and fail in CI
(``CI=true``). Images go through a real registry (tests/helpers/registry.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.builder.conftest import PLATFORMS, BuildEnv, make_build_env, usable
from tests.helpers.registry import RunningRegistry, registry_available, start_registry
from tests.helpers.system import missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNAME = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/arm/v7": "armv7l",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
}

# A held-back-style multi-stage Dockerfile: a $BUILDPLATFORM stage producing a per-target
# artefact, a runtime stage whose RUN executes on the target architecture (emulated).
DOCKERFILE = """# syntax=docker/dockerfile:1
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS build
WORKDIR /src
COPY greet.in .
ARG TARGETPLATFORM
RUN mkdir /out && sed -e "s|@TARGET@|$TARGETPLATFORM|" greet.in > /out/greet && chmod 0755 /out/greet
FROM ${BASE}
COPY --from=build /out/greet /usr/local/bin/greet
RUN uname -m > /etc/built-on && /usr/local/bin/greet > /dev/null
ENV GREETING=hi
ENTRYPOINT ["/usr/local/bin/greet"]
"""
GREET = '#!/bin/sh\necho "$GREETING from @TARGET@ running on $(uname -m), built on $(cat /etc/built-on)"\n'


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BuildEnv:
    why = usable()
    if why:
        missing(f"a real build environment ({why})")
    return make_build_env(tmp_path_factory.mktemp("accept-home"), PLATFORMS, riscv=False)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if not registry_available():
        missing("docker-registry")
    reg = start_registry(tmp_path_factory.mktemp("accept-registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def pushed(env: BuildEnv, registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The multi-stage image, built for five platforms and pushed: its reference."""
    ref = f"{registry.url}/xarch-accept/greet:{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("accept-build")
    r = env.build(tmp, DOCKERFILE, {"greet.in": GREET}, platforms=PLATFORMS, tag=ref, push=True,
                  build_args={"BASE": env.base})
    assert r.names == (ref,)
    shared = [e for e in env.events if e.kind == "done" and "mkdir /out" in e.name]
    assert len(shared) == len(PLATFORMS)  # per target (reads TARGETPLATFORM)...
    assert r.runs == 2 * len(PLATFORMS)
    return ref


def _expected(platform: str) -> str:
    return f"hi from {platform} running on {UNAME[platform]}, built on {UNAME[platform]}"


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_docker_run_every_platform(pushed: str, platform: str) -> None:
    host = os.environ.get("XARCH_TEST_DOCKER_HOST")
    if not host or shutil.which("docker") is None:
        missing("a docker daemon (XARCH_TEST_DOCKER_HOST, started by scripts/test.sh)")
    denv = dict(os.environ, DOCKER_HOST=str(host))
    base = ["docker", "run", "--rm", "--pull", "always", "--platform", platform, "--network", "host"]
    r = _run([*base, pushed, "uname", "-m"], denv)  # CMD replaced: ENTRYPOINT still runs
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == _expected(platform)
    r = _run([*base, "--entrypoint", "uname", pushed, "-m"], denv)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == UNAME[platform]


def _podman_base(tmp: Path) -> list[str]:
    # Private storage; cgroupfs and file events (no systemd here). runc refuses to *raise*
    # rlimits without CAP_SYS_RESOURCE, and podman's defaults are high: ask for modest ones.
    return [
        "podman", "--root", str(tmp / "root"), "--runroot", str(tmp / "run"),
        "--storage-driver", "overlay", "--cgroup-manager=cgroupfs", "--events-backend=file",
    ]


@pytest.fixture(scope="module")
def podman_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("podman") is None:
        missing("podman")
    d = Path(tmp_path_factory.mktemp("podman"))
    try:
        yield d
    finally:
        _run([*_podman_base(d), "system", "reset", "--force"], timeout=120)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_podman_run_every_platform(pushed: str, podman_dir: Path, platform: str) -> None:
    cmd = [
        *_podman_base(podman_dir), "run", "--rm", "--pull", "always", "--platform", platform,
        "--tls-verify=false", "--network", "host", "--runtime", "runc",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", pushed,
    ]
    r = _run(cmd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == _expected(platform)


def _tags(registry: RunningRegistry, repo: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{registry.url}/v2/{repo}/tags/list", timeout=10) as resp:
            doc: dict[str, Any] = json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise
    return list(doc.get("tags") or [])


def test_failed_build_pushes_nothing(env: BuildEnv, registry: RunningRegistry, tmp_path: Path) -> None:
    from xarch.errors import XarchError

    repo = f"xarch-accept/broken-{uuid.uuid4().hex[:8]}"
    ref = f"{registry.url}/{repo}:1"
    # fails on s390x only: the other four platforms build fine, and still nothing is pushed
    df = f'FROM {env.base}\nRUN [ "$(uname -m)" != s390x ] || {{ echo "no s390x today"; exit 42; }}\n'
    with pytest.raises(XarchError) as ei:
        env.build(tmp_path, df, platforms=PLATFORMS, tag=ref, push=True)
    msg = str(ei.value)
    assert "\n" not in msg
    assert "linux/s390x" in msg and "exit code: 42" in msg and "no s390x today" in msg
    assert _tags(registry, repo) == []


def test_single_platform_docker_archive_loads(env: BuildEnv, tmp_path: Path) -> None:
    """--output type=docker: a single-platform archive `docker load` accepts and runs."""
    host = os.environ.get("XARCH_TEST_DOCKER_HOST")
    if not host or shutil.which("docker") is None:
        missing("a docker daemon (XARCH_TEST_DOCKER_HOST, started by scripts/test.sh)")
    from xarch.builder.api import Output

    tag = f"xarch-accept/archive:{uuid.uuid4().hex[:8]}"
    dest = tmp_path / "img.tar"
    env.build(tmp_path, DOCKERFILE, {"greet.in": GREET}, platforms=("linux/arm64",), tag=tag,
              outputs=(Output("docker", str(dest)),), build_args={"BASE": env.base})
    denv = dict(os.environ, DOCKER_HOST=str(host))
    r = _run(["docker", "load", "-i", str(dest)], denv)
    assert r.returncode == 0, r.stderr
    r = _run(["docker", "run", "--rm", "--platform", "linux/arm64", "--network", "host",
              f"docker.io/{tag}"], denv)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == _expected("linux/arm64")
    _run(["docker", "rmi", "-f", f"docker.io/{tag}"], denv)
