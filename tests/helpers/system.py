"""What the integration tests share about the machine: whether a missing tool fails (CI) or
skips (a developer's laptop), finding tools, running commands, leftover mounts."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> NoReturn:
    """``what`` is not here: fail in CI (it can never pass silently there), else skip."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} not available")


def need(tool: str) -> str:
    """The path of ``tool`` (a name on PATH, or an absolute path that must exist)."""
    path = shutil.which(tool) if not tool.startswith("/") else (tool if Path(tool).exists() else None)
    if path is None:
        missing(tool)
    return path


@dataclass(frozen=True)
class Run:
    """A finished command: exit code and text output."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def umount_below(root: Path) -> None:
    """Lazily unmount everything mounted under ``root`` (overlays a crashed step left), deepest
    first, so the directory can be removed."""
    prefix = str(root.resolve())
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        mp = line.split()[1]
        if mp.startswith(prefix):
            subprocess.run(["umount", "-l", mp], check=False)
