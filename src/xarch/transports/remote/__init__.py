"""Registry transport: OCI distribution-spec v1.1 client, auth, and registry source/sink."""

from xarch.transports.remote.client import RegistryClient
from xarch.transports.remote.credentials import Credential
from xarch.transports.remote.errors import RegistryAuthError, RegistryNotFoundError
from xarch.transports.remote.login import login, logout
from xarch.transports.remote.options import RegistryOptions, TransferEvent
from xarch.transports.remote.referrers import referrers_tag
from xarch.transports.remote.source import RemoteSink, RemoteSource

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
