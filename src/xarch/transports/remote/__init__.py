"""Registry transport: OCI distribution-spec v1.1 client, auth, and registry source/sink."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

# httpx imports its command-line tool (httpx._main: rich, pygments, ~50 ms) whenever click and
# rich are installed, as they are here. xarch never runs it: an import that fails makes httpx
# install its "install httpx[cli]" stub instead. Only before httpx's own first import.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

if TYPE_CHECKING:
    from xarch.transports.remote.client import RegistryClient
    from xarch.transports.remote.credentials import Credential
    from xarch.transports.remote.errors import RegistryAuthError, RegistryNotFoundError
    from xarch.transports.remote.login import login, logout
    from xarch.transports.remote.options import RegistryOptions, TransferEvent
    from xarch.transports.remote.referrers import referrers_tag
    from xarch.transports.remote.source import RemoteSink, RemoteSource

# The names load on first use (PEP 562): a build that pushes nothing needs RegistryOptions but
# not the client and httpx (~70 ms of imports).
_WHERE = {
    "RegistryClient": "client",
    "Credential": "credentials",
    "RegistryAuthError": "errors",
    "RegistryNotFoundError": "errors",
    "login": "login",
    "logout": "login",
    "RegistryOptions": "options",
    "TransferEvent": "options",
    "referrers_tag": "referrers",
    "RemoteSink": "source",
    "RemoteSource": "source",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    # cached, and it must win over the submodule of the same name (``login``)
    globals()[name] = value
    return value


__all__ = [
    "Credential",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryNotFoundError",
    "RegistryOptions",
    "RemoteSink",
    "RemoteSource",
    "TransferEvent",
    "login",
    "logout",
    "referrers_tag",
]
