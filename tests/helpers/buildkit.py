"""The reference BuildKit (v0.32, ``<repo>/../shared/tools/buildkit``: buildkitd, buildctl,
start.sh; never copied into the repo) for the differential tier.

* ``tools()``: that directory; missing, the test fails in CI and skips elsewhere
  (helpers.system's rule).
* ``write_config(dir)``: the ``buildkitd.toml`` the tier needs, written before ``start.sh``
  (which keeps an existing one). scripts/test.sh writes it through
  ``python -m helpers.buildkit config``, so there is one copy of it.
* ``start(dir)`` / ``Daemon.stop()``: a buildkitd of our own when scripts/test.sh did not
  start one (``$XARCH_TEST_BUILDKIT_HOST``).
* ``start_registry(tmp)``: a docker-registry on one of the ports the config allows plain HTTP
  for, so buildkitd pulls the tier's bases from it (and pushes parent images to it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from helpers import registry
from helpers.system import missing, umount_below

HOST_ENV = "XARCH_TEST_BUILDKIT_HOST"
# start.sh's own default: plain HTTP for 127.0.0.1:5000-5009 only
REGISTRY_PORTS = range(5000, 5010)


def location() -> Path:
    """Where the tools should be (not checked)."""
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "tools" / "buildkit").resolve()


def tools() -> Path:
    d = location()
    if not all((d / n).is_file() for n in ("buildkitd", "buildctl", "start.sh")):
        missing(f"BuildKit v0.32 (buildkitd, buildctl, start.sh in {d})")
    return d


def buildctl() -> str:
    return str(tools() / "buildctl")


def config() -> str:
    """start.sh's registry entries, plus the entitlement ``RUN --network=host`` needs (the
    tier's builds pass ``--allow network.host``; without it in the daemon they fail)."""
    lines = ['insecure-entitlements = ["network.host"]', ""]
    for p in REGISTRY_PORTS:
        lines += [f'[registry."127.0.0.1:{p}"]', "  http = true", "  insecure = true"]
    return "\n".join(lines) + "\n"


def write_config(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "buildkitd.toml").write_text(config())


@dataclass(frozen=True)
class Daemon:
    addr: str  # unix://…/buildkitd.sock
    state: Path
    pid: int

    def stop(self) -> None:
        """Stop it as the README says: kill, then unmount what is left under its root."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        umount_below(self.state / "root")


def _alive(pid: int) -> bool:
    # start.sh setsid's the daemon, so it is not our child: a zombie counts as gone
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start(state: Path) -> Daemon:
    """buildkitd with its state under ``state`` (keep the path short: the socket path is
    limited to 108 bytes)."""
    write_config(state)
    r = subprocess.run([str(tools() / "start.sh"), str(state)], capture_output=True, text=True,
                       timeout=60)
    pid_file = state / "buildkitd.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else 0
    if r.returncode != 0:
        if pid:
            Daemon("", state, pid).stop()
        raise RuntimeError(f"buildkitd did not start:\n{r.stderr.strip()}")
    return Daemon(r.stdout.strip().splitlines()[-1], state, pid)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_registry(tmp: Path) -> registry.RunningRegistry:
    """helpers.registry's docker-registry, on the first free port of ``REGISTRY_PORTS``."""
    errors = []
    for port in REGISTRY_PORTS:
        if not _port_free(port):
            continue
        # start_registry picks its port through free_port(); another session may take this
        # one between our check and its bind, then the next port is tried
        with mock.patch.object(registry, "free_port", lambda port=port: port):
            try:
                return registry.start_registry(tmp / str(port))
            except RuntimeError as e:
                errors.append(f"{port}: {str(e).splitlines()[0]}")
    raise RuntimeError("no free port for the reference registry in 127.0.0.1:"
                       f"{REGISTRY_PORTS[0]}-{REGISTRY_PORTS[-1]} ({'; '.join(errors) or 'all in use'})")


if __name__ == "__main__":
    # scripts/test.sh: `python -m helpers.buildkit config > DIR/buildkitd.toml`
    if sys.argv[1:] != ["config"]:
        sys.exit("usage: python -m helpers.buildkit config")
    sys.stdout.write(config())
