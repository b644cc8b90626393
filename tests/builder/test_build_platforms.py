"""Multi-platform builds: automatic platform ARGs, emulated RUN, multi-stage, shared stages."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.builder.conftest import PLATFORMS, BuildEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNAME = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/arm/v7": "armv7l",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
}


def test_emulated_run_every_platform(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"FROM {benv.base}\nRUN uname -m > /m && echo {uuid.uuid4().hex} > /nonce\n"
    r = benv.build(tmp_path, df, platforms=PLATFORMS)
    mans = benv.manifests(r.root)
    assert sorted(mans) == sorted(PLATFORMS)
    for p in PLATFORMS:
        fs = benv.rootfs(r, tmp_path / p.replace("/", "_"), p)
        assert (fs / "m").read_text() == UNAME[p] + "\n", p
        cfg = mans[p][1]
        assert f"{cfg['os']}/{cfg['architecture']}" + (f"/{cfg['variant']}" if cfg.get("variant") else "") == p
    assert r.runs == len(PLATFORMS)


def test_emulated_run_riscv64(benv: BuildEnv, tmp_path: Path) -> None:
    if benv.riscv_base is None:
        pytest.skip("no riscv64 busybox base (Debian trixie riscv64 not reachable)")
    df = f"FROM {benv.riscv_base}\nRUN uname -m > /m\n"
    r = benv.build(tmp_path, df, platforms=("linux/riscv64",))
    fs = benv.rootfs(r, tmp_path / "fs", "linux/riscv64")
    assert (fs / "m").read_text() == "riscv64\n"


def test_automatic_platform_args(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM --platform=$BUILDPLATFORM {benv.base} AS probe
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT
RUN echo "$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDOS|$BUILDARCH|$BUILDVARIANT" > /args
FROM {benv.base}
RUN echo "undeclared:$TARGETARCH:" > /undeclared
ARG TARGETARCH
COPY --from=probe /args /args
"""
    r = benv.build(tmp_path, df, platforms=PLATFORMS)
    for p in PLATFORMS:
        os_, arch, *rest = p.split("/")
        variant = rest[0] if rest else ""
        fs = benv.rootfs(r, tmp_path / p.replace("/", "_"), p)
        want = f"{p}|{os_}|{arch}|{variant}|linux/amd64|linux|amd64|"
        assert (fs / "args").read_text() == want + "\n", p
        # platform ARGs are only in scope in a stage once declared there (BuildKit)
        assert (fs / "undeclared").read_text() == "undeclared::\n"


def test_buildplatform_stage_runs_once_for_all_targets(benv: BuildEnv, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    df = f"""FROM --platform=$BUILDPLATFORM {benv.base} AS build
RUN echo shared-{nonce} > /shared && uname -m >> /shared
ARG TARGETARCH
RUN echo "$TARGETARCH" > /per-target
FROM {benv.base}
COPY --from=build /shared /per-target /out/
RUN cat /out/per-target > /arch-seen && uname -m >> /arch-seen
"""
    plats = ("linux/amd64", "linux/arm64", "linux/arm/v7")
    r = benv.build(tmp_path, df, platforms=plats)
    done = [e for e in benv.events if e.kind == "done"]
    shared_runs = [e for e in done if f"shared-{nonce}" in e.name]
    assert len(shared_runs) == 1, [e.name for e in done]
    per_target = [e for e in done if 'echo "$TARGETARCH"' in e.name]
    assert len(per_target) == 3
    assert r.runs == 1 + 3 + 3
    for p in plats:
        fs = benv.rootfs(r, tmp_path / p.replace("/", "_"), p)
        assert (fs / "out" / "shared").read_text() == f"shared-{nonce}\nx86_64\n"  # built natively
        arch = p.split("/")[1]
        assert (fs / "arch-seen").read_text() == f"{arch}\n{UNAME[p]}\n"


def test_multi_stage_target_and_unused_stages(benv: BuildEnv, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    df = f"""FROM {benv.base} AS base
RUN echo base > /base
FROM base AS unused
RUN echo never-{nonce} > /never
FROM base AS dev
RUN echo dev > /dev-stage
FROM base AS final
COPY --from=dev /dev-stage /copied
RUN echo final > /final
"""
    r = benv.build(tmp_path, df, target="dev")
    fs = benv.rootfs(r, tmp_path / "dev")
    assert (fs / "dev-stage").exists() and not (fs / "final").exists()
    assert not any(f"never-{nonce}" in e.name for e in benv.events if e.kind == "start")
    r2 = benv.build(tmp_path, df)
    fs2 = benv.rootfs(r2, tmp_path / "final")
    assert (fs2 / "copied").read_text() == "dev\n" and (fs2 / "final").read_text() == "final\n"
    assert not (fs2 / "never").exists()
    assert not any(f"never-{nonce}" in e.name for e in benv.events if e.kind == "start")
