"""One root error with categories.

Every user-facing failure is an ``XarchError`` (or subclass). Its ``str()`` is one clear line:
what went wrong, where, and how to fix it. The CLI prints that line and exits with
``exit_code``; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import collections
import signal
from enum import StrEnum


class Category(StrEnum):
    USAGE = "usage"  # bad flags, bad references, bad platform strings
    INPUT = "input"  # bad Dockerfile, bad manifest, bad file
    NOT_FOUND = "not-found"  # unknown tag, missing blob, missing stage
    AUTH = "auth"  # 401/403, wrong password
    NETWORK = "network"  # registry down, timeouts
    INTEGRITY = "integrity"  # digest or size mismatch, unsafe tar entry
    REGISTRY = "registry"  # registry answered with an error code
    RUNTIME = "runtime"  # runc/crun/qemu failures, RUN exit codes
    STORE = "store"  # local store / filesystem problems
    SECURITY = "security"  # signature verification failures
    INTERNAL = "internal"


class XarchError(Exception):
    """Root of every error xarch raises on purpose."""

    category: Category = Category.INTERNAL
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(XarchError):
    category = Category.USAGE
    exit_code = 2


class InputError(XarchError):
    category = Category.INPUT


class NotFoundError(XarchError):
    category = Category.NOT_FOUND


class AuthError(XarchError):
    category = Category.AUTH


class NetworkError(XarchError):
    category = Category.NETWORK


class IntegrityError(XarchError):
    category = Category.INTEGRITY


class RegistryError(XarchError):
    category = Category.REGISTRY

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status


class RuntimeFailure(XarchError):
    category = Category.RUNTIME


class StoreError(XarchError):
    category = Category.STORE


class VerificationError(XarchError):
    category = Category.SECURITY


def human_bytes(n: float) -> str:
    """A size for a message, in binary units: ``512 B``, ``1.5 KiB``, ``3.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Interrupted(BaseException):
    """A signal asked xarch to stop; the CLI's handler raises it in the main thread.

    Deliberately a ``BaseException`` like ``KeyboardInterrupt`` (it is no error): no ``except
    Exception`` or ``except XarchError`` on the way out swallows it, and every ``finally``
    runs, so containers are stopped and mounts undone. Whoever stops something on its
    behalf counts it in ``stopped`` (kind -> count) for the one line the CLI prints.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.stopped: collections.Counter[str] = collections.Counter()

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal

    def __str__(self) -> str:
        done = ", ".join(
            f"{n} running {kind}{'' if n == 1 else 's'}" for kind, n in sorted(self.stopped.items())
        )
        return f"interrupted ({self.signal_name})" + (f": stopped {done}" if done else "")
