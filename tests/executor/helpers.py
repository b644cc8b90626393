"""Helpers for executor tests: busybox root filesystems, fake runtimes, fake binfmt entries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xarch.executor.emulation import ELF_MAGIC

APPLETS = (
    "sh",
    "echo",
    "uname",
    "cat",
    "ls",
    "hostname",
    "id",
    "stat",
    "rm",
    "mkdir",
    "touch",
    "sleep",
    "true",
    "false",
)
CACHE = Path.home() / ".cache" / "xarch-test"

# OCI platform -> (Debian architecture, what `uname -m` prints under QEMU)
FOREIGN: dict[str, tuple[str, str]] = {
    "linux/arm64": ("arm64", "aarch64"),
    "linux/arm/v7": ("armhf", "armv7l"),
    "linux/ppc64le": ("ppc64el", "ppc64le"),
    "linux/s390x": ("s390x", "s390x"),
    "linux/riscv64": ("riscv64", "riscv64"),
}


def make_busybox_rootfs(busybox: Path, rootfs: Path) -> Path:
    (rootfs / "bin").mkdir(parents=True)
    for d in ("etc", "tmp", "proc", "sys", "dev", "root"):
        (rootfs / d).mkdir()
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    for a in APPLETS:
        (rootfs / "bin" / a).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return rootfs


def need_root_runc() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run containers")
    if shutil.which("runc") is None and shutil.which("crun") is None:
        pytest.skip("no OCI runtime installed (apt-get install runc)")


_apt_updated: set[str] = set()


def fetch_busybox_deb(debarch: str) -> Path | None:
    """busybox-static for ``debarch`` from the Debian archive, cached under ~/.cache/xarch-test."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = sorted(CACHE.glob(f"busybox-static_*_{debarch}.deb"))
    if cached:
        return cached[-1]
    marker = CACHE / f".unavailable-{debarch}"
    if marker.exists() and time.time() - marker.stat().st_mtime < 86400:
        return None  # looked yesterday at the latest; don't hit the archive on every run
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=False
    ).stdout.split()
    if debarch not in foreign and debarch not in _apt_updated:
        subprocess.run(["dpkg", "--add-architecture", debarch], check=False, capture_output=True)
        # Partial index failures (a mirror mid-sync) are fine as long as the package resolves.
        subprocess.run(["apt-get", "update"], check=False, capture_output=True, timeout=600)
        _apt_updated.add(debarch)
    subprocess.run(
        ["apt-get", "download", f"busybox-static:{debarch}"],
        cwd=CACHE,
        check=False,
        capture_output=True,
        timeout=600,
    )
    cached = sorted(CACHE.glob(f"busybox-static_*_{debarch}.deb"))
    if not cached:
        marker.touch()
        return None
    return cached[-1]


# A fake OCI runtime: logs its argv, and for `run` executes process.args on the host.
FAKE_RUNTIME = textwrap.dedent(
    """\
    #!{python}
    import json, os, signal, subprocess, sys
    log = os.environ.get("FAKE_LOG") or os.path.join(os.path.dirname(sys.argv[0]), "calls.log")
    args = sys.argv[1:]
    with open(log, "a") as f:
        f.write(os.path.basename(sys.argv[0]) + " " + " ".join(args) + "\\n")
    if args and args[0] == "--root":
        args = args[2:]
    if args == ["--version"]:
        print("{name} version {version}")
        sys.exit(0)
    if args[0] == "run":
        if {hybrid_fail}:
            sys.stderr.write("cgroups in hybrid mode not supported, drop all controllers from cgroupv2\\n")
            sys.exit(1)
        bundle = args[args.index("--bundle") + 1]
        spec = json.load(open(os.path.join(bundle, "config.json")))
        p = subprocess.Popen(spec["process"]["args"])
        open(os.path.join(os.path.dirname(sys.argv[0]), args[-1] + ".pid"), "w").write(str(p.pid))
        sys.exit(p.wait())
    if args[0] == "kill":
        pid = int(open(os.path.join(os.path.dirname(sys.argv[0]), args[1] + ".pid")).read())
        os.kill(pid, signal.SIGKILL)
        sys.exit(0)
    if args[0] == "delete":
        sys.exit(0)
    sys.exit(2)
    """
)


def write_fake(directory: Path, name: str, *, version: str, hybrid_fail: bool) -> Path:
    p = directory / name
    p.write_text(
        FAKE_RUNTIME.format(
            python=sys.executable, name=name, version=version, hybrid_fail=hybrid_fail
        )
    )
    p.chmod(0o755)
    return p


def hybrid_cgroups(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    for c in ("memory", "cpu", "pids"):
        (root / c).mkdir(parents=True)
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("")
    return root


def entry_text(arch: str, interp: str, flags: str, enabled: bool = True) -> str:
    magic, mask = ELF_MAGIC[arch]
    return (
        "enabled\n" if enabled else "disabled\n"
    ) + f"interpreter {interp}\nflags: {flags}\noffset 0\nmagic {magic.hex()}\nmask {mask.hex()}\n"
