"""``xarch doctor``: what this machine can build, and why not.

Everything is probed for real (trial container, overlay mount, native 32-bit exec) rather than
inferred from installed packages, because the failures users hit are exactly the cases where a
package is installed but does not work (crun on hybrid cgroups, binfmt without fix-binary).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from xarch.executor.emulation import (
    BINFMT_DIR,
    EmulationState,
    EmulationStatus,
    binfmt_mounted,
    exec_probe,
    qemu_arch,
    tiny_elf,
)
from xarch.executor.runtime import DEFAULT_PREFERENCE, RuntimeCandidate, RuntimeProber, cgroup_mode
from xarch.oci.platform import Platform, host_platform
from xarch.snapshot.overlay import overlay_supported

DOCTOR_PLATFORMS: tuple[str, ...] = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/386",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DoctorReport:
    host: Platform
    platforms: tuple[EmulationStatus, ...]
    runtimes: tuple[RuntimeCandidate, ...]
    selected_runtime: str | None
    checks: tuple[Check, ...] = field(default=())
    cgroups: str = ""

    @property
    def ok(self) -> bool:
        """Can this machine run build steps for its own platform?"""
        return self.selected_runtime is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": str(self.host),
            "cgroups": self.cgroups,
            "runtime": self.selected_runtime,
            "runtimes": [
                {
                    "name": r.name,
                    "path": r.path,
                    "version": r.version,
                    "usable": r.usable,
                    "reason": r.reason,
                }
                for r in self.runtimes
            ],
            "platforms": [
                {
                    "platform": str(s.platform),
                    "status": s.state.value,
                    "reason": s.reason,
                    "handler": s.handler,
                }
                for s in self.platforms
            ],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def render(self) -> RenderableType:
        plat = Table(title=f"Platforms (host {self.host})")
        plat.add_column("platform")
        plat.add_column("status")
        plat.add_column("how / why")
        colour = {
            EmulationState.NATIVE: "green",
            EmulationState.EMULATED: "cyan",
            EmulationState.UNAVAILABLE: "red",
        }
        for s in self.platforms:
            plat.add_row(str(s.platform), f"[{colour[s.state]}]{s.state.value}[/]", s.reason)
        rt = Table(title="OCI runtimes")
        for col in ("runtime", "version", "path", "usable", "why"):
            rt.add_column(col)
        for r in self.runtimes:
            mark = "[green]yes[/]" if r.usable else "[red]no[/]"
            if r.name == self.selected_runtime:
                mark += " (selected)"
            rt.add_row(r.name, r.version or "-", r.path or "-", mark, r.reason)
        sys_t = Table(title="System")
        sys_t.add_column("check")
        sys_t.add_column("ok")
        sys_t.add_column("detail")
        sys_t.add_row(
            "cgroups", "[green]yes[/]" if self.cgroups != "none" else "[red]no[/]", self.cgroups
        )
        for c in self.checks:
            sys_t.add_row(c.name, "[green]yes[/]" if c.ok else "[yellow]no[/]", c.detail)
        return Group(plat, rt, sys_t)


def _userns_check() -> Check:
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        return Check("user namespaces", False, "kernel has no user namespaces")
    if limit == 0:
        return Check("user namespaces", False, "user.max_user_namespaces is 0")
    try:
        res = subprocess.run(
            ["unshare", "--user", "--map-root-user", "true"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return Check("user namespaces", False, f"cannot test with unshare: {e}")
    if res.returncode != 0:
        return Check("user namespaces", False, f"unshare --user failed: {res.stderr.strip()}")
    return Check("user namespaces", True, f"available (max {limit})")


def _seccomp_check() -> Check:
    from xarch.errors import XarchError
    from xarch.executor import seccomp
    from xarch.executor.spec import DEFAULT_CAPABILITIES

    path = seccomp.profile_path()
    if path is None:
        return Check("seccomp", False, f"no profile ({seccomp.DEFAULT_PROFILE} missing or "
                     f"{seccomp.PROFILE_ENV}=unconfined): RUN steps run without a filter")
    try:
        prof = seccomp.default_profile(DEFAULT_CAPABILITIES)
    except XarchError as e:
        return Check("seccomp", False, str(e))
    n = len(prof["syscalls"]) if prof else 0
    return Check("seccomp", True, f"RUN steps filtered by {path} ({n} rules for this host)")


def _verify(st: EmulationStatus) -> EmulationStatus:
    """Run a tiny exit(42) binary of that arch through the registered handler."""
    arch = qemu_arch(st.platform)
    if tiny_elf(arch) is None:
        return st
    if exec_probe(arch):
        return replace(st, reason=f"{st.reason}; verified by running a test binary")
    return replace(
        st, state=EmulationState.UNAVAILABLE, reason=f"{st.reason}, but a test binary failed to run"
    )


def doctor(
    *,
    platforms: Sequence[str] = DOCTOR_PLATFORMS,
    runtimes: Sequence[str] = DEFAULT_PREFERENCE,
    prober: RuntimeProber | None = None,
    binfmt_dir: Path = BINFMT_DIR,
    work_dir: Path | None = None,
) -> DoctorReport:
    host = host_platform()
    statuses = []
    for s in platforms:
        p = Platform.parse(s)
        try:
            qemu_arch(p)
            st = EmulationStatus.probe(p, host=host, binfmt_dir=binfmt_dir)
            statuses.append(_verify(st) if st.state is EmulationState.EMULATED else st)
        except Exception as e:  # an unknown platform is a row, not a crash
            statuses.append(EmulationStatus(p.normalize(), EmulationState.UNAVAILABLE, str(e)))
    prober = prober or RuntimeProber()
    cands = tuple(prober.candidates(runtimes))
    selected = next((c.name for c in cands if c.usable), None)
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="xarch-doctor-", dir=work_dir) as tmp:
        ok, why = overlay_supported(Path(tmp))
    checks.append(
        Check("overlayfs", ok, why if ok else f"{why} (the copy snapshotter will be used)")
    )
    checks.append(
        Check(
            "binfmt_misc",
            binfmt_mounted(binfmt_dir),
            f"mounted at {binfmt_dir}"
            if binfmt_mounted(binfmt_dir)
            else f"not mounted at {binfmt_dir}",
        )
    )
    checks.append(_userns_check())
    checks.append(_seccomp_check())
    checks.append(
        Check(
            "root",
            os.geteuid() == 0,
            "running as root" if os.geteuid() == 0 else "rootless mode is not supported yet",
        )
    )
    return DoctorReport(
        host=host,
        platforms=tuple(statuses),
        runtimes=cands,
        selected_runtime=selected,
        checks=tuple(checks),
        cgroups=cgroup_mode(),
    )
