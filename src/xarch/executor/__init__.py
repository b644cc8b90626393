"""Run build steps: OCI runtime specs, runc/crun, QEMU emulation, mounts.

``xarch.executor.doctor`` (rich tables) is imported on demand by the CLI.
"""

from xarch.executor.emulation import (
    EmulationState,
    EmulationStatus,
    Registered,
    ensure_runnable,
    qemu_arch,
    setup_emulation,
)
from xarch.executor.mounts import CacheStore, Mount, MountStubs, SecretStore, write_network_files
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
