"""Bad inputs: each fails with one clear line, and nothing is tagged."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.builder.conftest import BuildEnv

from xarch.errors import NotFoundError, XarchError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _fails(benv: BuildEnv, tmp_path: Path, df: str, files: dict[str, str | bytes] | None = None,
           **kw: Any) -> str:
    tag = f"xarch-test/must-not-exist-{uuid.uuid4().hex[:8]}:1"
    with pytest.raises(XarchError) as ei:
        benv.build(tmp_path, df, files, tag=tag, **kw)
    msg = str(ei.value)
    assert msg and "\n" not in msg, msg
    assert "Traceback" not in msg
    with pytest.raises(NotFoundError):
        benv.store.resolve(tag)  # nothing tagged
    return msg


def test_missing_base_image(benv: BuildEnv, tmp_path: Path) -> None:
    # a registry that refuses connections: the store lookup fails, then the pull does
    msg = _fails(benv, tmp_path, "FROM 127.0.0.1:9/xarch-test/nope:1\nRUN true\n")
    assert "127.0.0.1:9/xarch-test/nope:1" in msg


def test_base_image_without_the_platform(benv: BuildEnv, tmp_path: Path) -> None:
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\n", platforms=("linux/386",))
    assert "linux/386" in msg
    assert "not in the local store" not in msg  # it is there, only without linux/386
    assert "no image for platform linux/386 (available: linux/amd64, linux/arm/v7" in msg


def test_failing_run_names_platform_line_exit_code_and_output(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN echo fine
RUN echo first-line; echo "last words on $(uname -m)"; [ "$(uname -m)" != aarch64 ] || exit 3
"""
    msg = _fails(benv, tmp_path, df, platforms=("linux/amd64", "linux/arm64"))
    assert "linux/arm64" in msg and "linux/amd64:" not in msg
    assert "Dockerfile:3" in msg
    assert "exit code: 3" in msg
    assert "first-line | last words on aarch64" in msg


def test_unknown_target_stage(benv: BuildEnv, tmp_path: Path) -> None:
    msg = _fails(benv, tmp_path, f"FROM {benv.base} AS build\nRUN true\n", target="nope")
    assert "nope" in msg


def test_copy_from_unknown_stage_index(benv: BuildEnv, tmp_path: Path) -> None:
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\nCOPY --from=7 /x /x\n")
    assert "7" in msg


def test_missing_copy_source(benv: BuildEnv, tmp_path: Path) -> None:
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\nCOPY missing.txt /x\n", {"other": "o"})
    assert "missing.txt" in msg and "Dockerfile:2" in msg


def test_missing_copy_source_in_stage(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"FROM {benv.base} AS a\nFROM {benv.base}\nCOPY --from=a /no/such/file /x\n"
    msg = _fails(benv, tmp_path, df)
    assert "/no/such/file" in msg


def test_platform_without_emulation(benv: BuildEnv, tmp_path: Path) -> None:
    # xarch has no QEMU emulator for linux/mips: the RUN cannot run, said before any work.
    df = f"""FROM --platform=linux/amd64 {benv.base} AS bb
FROM scratch
COPY --from=bb /bin/busybox /bin/sh
RUN ["/bin/sh", "-c", "true"]
"""
    events: list[Any] = []
    msg = _fails(benv, tmp_path, df, platforms=("linux/mips",), on_event=events.append)
    assert "linux/mips" in msg and "cannot run" in msg
    assert not [e for e in events if e.kind == "start"]  # before any work


def test_platform_without_emulation_simulated(benv: BuildEnv, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from xarch.executor.emulation import EmulationState, EmulationStatus
    from xarch.oci.platform import Platform

    real = EmulationStatus.probe

    def probe(platform: Platform, **kw: Any) -> EmulationStatus:
        if platform.architecture == "s390x":
            return EmulationStatus(platform, EmulationState.UNAVAILABLE, "no binfmt_misc handler for s390x")
        return real(platform, **kw)

    monkeypatch.setattr(EmulationStatus, "probe", staticmethod(probe))
    events: list[Any] = []
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\nRUN true\n", platforms=("linux/amd64", "linux/s390x"),
                 on_event=events.append)
    assert "linux/s390x" in msg and "xarch setup emulation" in msg
    assert not [e for e in events if e.kind == "start"]


def test_missing_secret_file(benv: BuildEnv, tmp_path: Path) -> None:
    from xarch.builder.api import Secret

    missing = tmp_path / "no-such-secret"
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\nRUN --mount=type=secret,id=tok true\n",
                 secrets=(Secret("tok", src=str(missing)),))
    assert "tok" in msg and str(missing) in msg


def test_bad_dockerfile_syntax(benv: BuildEnv, tmp_path: Path) -> None:
    msg = _fails(benv, tmp_path, f"FROM {benv.base}\nFROBNICATE now\n")
    assert "FROBNICATE" in msg.upper() and "2" in msg
