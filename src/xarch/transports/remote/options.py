"""Options and progress events of the registry client (frozen, explicit, no globals)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from xarch import __version__

if TYPE_CHECKING:
    import httpx  # a test seam's type only: RegistryOptions must not import httpx

MiB = 1024 * 1024

EventKind = Literal["skip", "mount", "upload", "download", "retry"]


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to one registry.

    ``insecure`` allows plain HTTP and skips TLS verification for this registry. Loopback
    registries (localhost, 127.0.0.1, ::1) may fall back to plain HTTP without it, as docker
    does. ``transport``, ``sleep`` and ``clock`` are test seams.

    Transfers are bounded: a response body slower than ``min_rate`` bytes/s over any
    ``rate_window`` seconds is aborted (0 disables), and a blob (across its resumed requests)
    or any other body must be complete within ``transfer_deadline`` seconds (None disables).
    ``timeout`` bounds each connect/read/write on its own, which a trickle never trips.
    """

    insecure: bool = False
    ca_file: str | None = None
    # docker's per-registry CA directory: <certs_dir>/<host[:port]>/*.crt (used without ca_file).
    certs_dir: str | None = "/etc/docker/certs.d"
    parallelism: int = 4
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 60.0
    min_rate: float = 1024.0
    rate_window: float = 30.0
    transfer_deadline: float | None = 6 * 3600.0
    chunk_size: int = 16 * MiB
    user_agent: str = f"xarch/{__version__}"
    # Path to a docker config.json; None means $DOCKER_CONFIG/config.json or ~/.docker/config.json.
    auth_config: str | None = None
    # Explicit (username, password); wins over config.json and credential helpers.
    credentials: tuple[str, str] | None = None
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


_VERBS = {
    "skip": "exists",
    "mount": "mounted",
    "upload": "uploaded",
    "download": "downloaded",
    "retry": "retrying",
}


@dataclass(frozen=True)
class TransferEvent:
    """One progress fact, e.g. ``mounted sha256:0123456789ab… from library/foo``."""

    kind: EventKind
    digest: str | None
    size: int = 0
    detail: str = ""

    def __str__(self) -> str:
        parts = [_VERBS[self.kind]]
        if self.digest:
            parts.append(short_digest(self.digest))
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


EventCallback = Callable[[TransferEvent], None]


def short_digest(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}…" if len(hexpart) > 12 else digest
