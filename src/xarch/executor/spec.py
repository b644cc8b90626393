"""OCI runtime-spec ``config.json`` for one build step (pure: no I/O).

Defaults follow Docker's/containerd's for a non-privileged container: own mount, pid, ipc and
uts namespaces; Docker's default capability set; Docker's masked and read-only paths; a tmpfs
``/dev`` with the standard device nodes; ``/sys`` read-only.

Networking: BuildKit's default ``RUN`` network is a sandboxed namespace wired up through CNI.
xarch has no CNI, so ``"sandbox"`` (the default) shares the host's network namespace, exactly
like ``buildkitd --oci-worker-net=host``; the step still gets its own hostname, /etc/hosts and
/etc/resolv.conf. ``"none"`` is a new network namespace with only ``lo``. ``"host"`` is the host
namespace too, and exists separately because the solver gates it behind the
``network.host`` entitlement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from xarch.errors import UsageError
from xarch.executor.mounts import Mount, to_spec_mounts
from xarch.oci.platform import Platform

OCI_VERSION = "1.0.2"
NetworkMode = Literal["sandbox", "none", "host"]

# moby/oci/caps/defaults.go (Docker's default bounding set).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Docker's defaults (moby oci/defaults.go): hide kernel interfaces that leak host data or allow
# host-wide effects, and make the rest of /proc's knobs read-only.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# (path, major, minor): what runc/containerd create in a fresh /dev.
STANDARD_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)

NOFILE_LIMIT = 1048576

# The runtime's own filesystems whose mount points stay in the layer: on a base that lacks them,
# BuildKit v0.32 (runc) leaves /dev, /proc and /sys (0755, root) in the first RUN's layer and
# removes only the other mount stubs (/etc/hosts, RUN --mount targets). The RUN step creates
# them before the runtime does, so they are never recorded as stubs; the other default mounts
# (/dev/pts, /sys/fs/cgroup, ...) lie inside these filesystems, never in the root.
KEPT_MOUNT_POINTS: tuple[str, ...] = ("/dev", "/proc", "/sys")


# 32-bit user space on a 64-bit kernel of the same family runs natively; LINUX32 makes
# `uname -m` say i686/armv8l as a real 32-bit machine would (honoured by crun and runc >= 1.2).
_COMPAT32 = {("amd64", "386"), ("arm64", "arm")}


def _default_mounts(*, readonly_sys: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro" if readonly_sys else "rw"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def _check_env(env: Sequence[str]) -> list[str]:
    out = []
    for e in env:
        if "=" not in e or e.startswith("=") or "\x00" in e:
            raise UsageError(f"invalid environment entry {e!r}: expected NAME=value")
        out.append(e)
    return out


def runtime_spec(
    *,
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    user: tuple[int, int, Sequence[int]],
    hostname: str,
    rootfs: str,
    readonly_rootfs: bool = False,
    mounts: Sequence[Mount] = (),
    network: NetworkMode = "sandbox",
    platform: Platform,
    host: Platform | None = None,
    tty: bool = False,
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
    resolv_conf: str | None = None,
    hosts_file: str | None = None,
    seccomp: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete OCI runtime-spec document for one process.

    ``platform`` is the step's target platform; it only matters when it is the 32-bit
    compatible sibling of ``host`` (then the spec asks for the LINUX32 personality). Foreign
    architectures need no spec changes: binfmt_misc with the fix-binary flag runs them.
    ``resolv_conf``/``hosts_file`` are host paths of generated files (see
    :func:`xarch.executor.mounts.write_network_files`), bind-mounted read-only. ``seccomp``
    is the ``linux.seccomp`` filter (:func:`xarch.executor.seccomp.default_profile`; None:
    unconfined).
    """
    if not args or any(not isinstance(a, str) or "\x00" in a for a in args):
        raise UsageError("a build step needs a non-empty command without NUL bytes")
    if not cwd.startswith("/"):
        raise UsageError(f"working directory {cwd!r} must be absolute")
    if network not in ("sandbox", "none", "host"):
        raise UsageError(f"unknown network mode {network!r} (expected sandbox, none or host)")
    uid, gid, extra_gids = user
    if uid < 0 or gid < 0 or any(g < 0 for g in extra_gids):
        raise UsageError(f"invalid user {uid}:{gid}")
    caps = list(dict.fromkeys(capabilities))
    for c in caps:
        if not c.startswith("CAP_") or not c[4:].replace("_", "").isalnum() or c.upper() != c:
            raise UsageError(f"invalid capability {c!r} (expected e.g. CAP_CHOWN)")

    spec_mounts = _default_mounts()
    if resolv_conf:
        spec_mounts.append(
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": resolv_conf,
                "options": ["rbind", "ro"],
            }
        )
    if hosts_file:
        spec_mounts.append(
            {
                "destination": "/etc/hosts",
                "type": "bind",
                "source": hosts_file,
                "options": ["rbind", "ro"],
            }
        )
    spec_mounts += to_spec_mounts(mounts)

    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})

    linux: dict[str, Any] = {
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                *(
                    {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
                    for _, ma, mi in STANDARD_DEVICES
                ),
                # /dev/pts/* and /dev/ptmx
                {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            ]
        },
        "devices": [
            {
                "path": p,
                "type": "c",
                "major": ma,
                "minor": mi,
                "fileMode": 0o666,
                "uid": 0,
                "gid": 0,
            }
            for p, ma, mi in STANDARD_DEVICES
        ],
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if seccomp is not None:
        linux["seccomp"] = dict(seccomp)
    if host is not None and (host.architecture, platform.architecture) in _COMPAT32:
        linux["personality"] = {"domain": "LINUX32"}

    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": tty,
            "user": {
                "uid": uid,
                "gid": gid,
                **({"additionalGids": list(extra_gids)} if extra_gids else {}),
            },
            "args": list(args),
            "env": _check_env(env),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": NOFILE_LIMIT, "soft": NOFILE_LIMIT}],
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": spec_mounts,
        "linux": linux,
    }
