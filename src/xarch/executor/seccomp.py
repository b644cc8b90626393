"""The default seccomp filter of RUN steps and ``xarch run``, as BuildKit and Docker apply one.

BuildKit v0.32 runs every RUN under containerd's default profile (``/proc/self/status``:
``Seccomp: 2``). xarch does not ship its own copy of that allow-list: it reads the one the
distribution maintains for its container engines (Debian's ``golang-github-containers-common``
installs ``/usr/share/containers/seccomp.json``, the profile podman and buildah apply, in
Docker's profile format) and converts it for the OCI runtime spec the way Docker does:

- ``archMap``: the host's architecture and its sub-architectures (an emulated step's syscalls
  are the host's: QEMU translates them, so the host's filter is the one that applies);
- a rule with ``includes``/``excludes`` applies only when the host architecture, the
  process's capabilities (all of ``includes.caps``, none of ``excludes.caps``) and the
  running kernel (``includes.minKernel``) say so;
- ``defaultAction``/``defaultErrnoRet`` and each rule's ``errnoRet`` as written.

With no profile on the machine, steps run without a filter and :func:`default_profile`
returns None (``xarch doctor`` says so); ``XARCH_SECCOMP_PROFILE`` names another file, or
``unconfined`` for none.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xarch.errors import InputError

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")
PROFILE_ENV = "XARCH_SECCOMP_PROFILE"

# Go's GOARCH (what Docker's profiles name in includes.arches) -> libseccomp's name
_SCMP_ARCH = {
    "amd64": "SCMP_ARCH_X86_64",
    "386": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "ppc64": "SCMP_ARCH_PPC64",
    "s390x": "SCMP_ARCH_S390X",
    "s390": "SCMP_ARCH_S390",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64le": "SCMP_ARCH_MIPSEL64",
    "mips64": "SCMP_ARCH_MIPS64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}
_ARG_KEYS = ("index", "value", "valueTwo", "op")


def _kernel(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _applies(rule: Mapping[str, Any], arch: str, caps: frozenset[str],
             kernel: tuple[int, int]) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return not (inc.get("minKernel") and kernel < _kernel(str(inc["minKernel"])))


def convert(profile: Mapping[str, Any], *, arch: str, capabilities: Iterable[str],
            kernel_release: str) -> dict[str, Any]:
    """A Docker-format profile -> the OCI runtime spec's ``linux.seccomp`` for a process on
    a host of Go architecture ``arch`` with ``capabilities``, under ``kernel_release``."""
    default = profile.get("defaultAction")
    if not isinstance(default, str) or not default.startswith("SCMP_ACT_"):
        raise InputError(f"seccomp profile: defaultAction {default!r} is not an SCMP_ACT_ value")
    caps = frozenset(capabilities)
    kernel = _kernel(kernel_release)
    out: dict[str, Any] = {"defaultAction": default}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    scmp = _SCMP_ARCH.get(arch)
    if scmp is not None:
        arches = [scmp]
        for entry in profile.get("archMap") or []:
            if entry.get("architecture") == scmp:
                arches += list(entry.get("subArchitectures") or [])
        out["architectures"] = arches
    rules: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, arch, caps, kernel):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        action = rule.get("action")
        if not names or not isinstance(action, str):
            raise InputError(f"seccomp profile: rule {rule!r} needs names and an action")
        r: dict[str, Any] = {"names": names, "action": action}
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = int(rule["errnoRet"])
        args = [{k: a[k] for k in _ARG_KEYS if k in a} for a in rule.get("args") or []]
        if args:
            r["args"] = args
        rules.append(r)
    out["syscalls"] = rules
    return out


@functools.cache
def _load(path: str) -> Mapping[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read seccomp profile {path}: {e.strerror}",
                         hint=f"install golang-github-containers-common, or set {PROFILE_ENV}") from e
    except ValueError as e:
        raise InputError(f"seccomp profile {path} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise InputError(f"seccomp profile {path}: expected a JSON object")
    return data


def profile_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The profile file RUN steps use (None: run unconfined)."""
    env = os.environ if env is None else env
    chosen = env.get(PROFILE_ENV)
    if chosen == "unconfined":
        return None
    if chosen:
        return Path(chosen)
    return DEFAULT_PROFILE if DEFAULT_PROFILE.is_file() else None


def default_profile(capabilities: Sequence[str], *, arch: str | None = None,
                    env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """``linux.seccomp`` for a step with ``capabilities`` on this host (None: no filter)."""
    path = profile_path(env)
    if path is None:
        return None
    if arch is None:
        from xarch.oci.platform import host_platform

        arch = host_platform().architecture
    return convert(_load(str(path)), arch=arch, capabilities=capabilities,
                   kernel_release=os.uname().release)
