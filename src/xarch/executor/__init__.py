"""Run build steps: OCI runtime specs, runc/crun, QEMU emulation, mounts.

``xarch.executor.doctor`` (rich tables) is imported on demand by the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xarch.executor.emulation import (
        EmulationState,
        EmulationStatus,
        Registered,
        ensure_runnable,
        qemu_arch,
        setup_emulation,
    )
    from xarch.executor.mounts import (
        CacheStore,
        Mount,
        MountStubs,
        SecretStore,
        write_network_files,
    )
    from xarch.executor.runtime import (
        ContainerExitError,
        ContainerTimeout,
        RunResult,
        RuntimeInfo,
        RuntimeProber,
        detect_runtime,
        run,
    )
    from xarch.executor.spec import DEFAULT_CAPABILITIES, NetworkMode, runtime_spec

# The names load on first use (PEP 562): whoever imports one submodule (the builder imports
# mounts, the CLI errors) does not pay for mounts, spec, emulation and runtime all at once.
_WHERE = {
    **dict.fromkeys(("EmulationState", "EmulationStatus", "Registered", "ensure_runnable", "qemu_arch",
                     "setup_emulation"), "emulation"),
    **dict.fromkeys(("CacheStore", "Mount", "MountStubs", "SecretStore", "write_network_files"), "mounts"),
    **dict.fromkeys(("ContainerExitError", "ContainerTimeout", "RunResult", "RuntimeInfo", "RuntimeProber",
                     "detect_runtime", "run"), "runtime"),
    **dict.fromkeys(("DEFAULT_CAPABILITIES", "NetworkMode", "runtime_spec"), "spec"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cached: the next access is a plain attribute
    return value


__all__ = [
    "DEFAULT_CAPABILITIES",
    "CacheStore",
    "ContainerExitError",
    "ContainerTimeout",
    "EmulationState",
    "EmulationStatus",
    "Mount",
    "MountStubs",
    "NetworkMode",
    "Registered",
    "RunResult",
    "RuntimeInfo",
    "RuntimeProber",
    "SecretStore",
    "detect_runtime",
    "ensure_runnable",
    "qemu_arch",
    "run",
    "runtime_spec",
    "setup_emulation",
    "write_network_files",
]
