"""RUN steps run under the default seccomp filter, as BuildKit's do (emulated ones too: QEMU's
own syscalls are the host's and pass the host's filter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.builder.conftest import BuildEnv

from xarch.executor import seccomp

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64", "linux/arm/v7"])
def test_run_is_filtered(benv: BuildEnv, tmp_path: Path, platform: str) -> None:
    if seccomp.profile_path() is None:
        pytest.skip(f"no seccomp profile ({seccomp.DEFAULT_PROFILE})")
    df = (f"FROM {benv.base}\n"
          "RUN grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status > /status\n")
    r = benv.build(tmp_path, df, platforms=(platform,))
    fs = benv.rootfs(r, tmp_path / "fs", platform)
    status = (fs / "status").read_text()
    assert "Seccomp:\t2" in status, status  # mode 2: a filter is installed
    assert "NoNewPrivs:\t0" in status  # as BuildKit: setuid binaries still work
