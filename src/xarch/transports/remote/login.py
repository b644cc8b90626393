"""``xarch login`` / ``xarch logout``: verify credentials against the registry, then store them."""

from __future__ import annotations

from dataclasses import replace

from xarch.transports.remote import credentials
from xarch.transports.remote.client import RegistryClient
from xarch.transports.remote.options import RegistryOptions


def login(
    registry: str, username: str, password: str, options: RegistryOptions | None = None
) -> str:
    """Check ``username``/``password`` with a ping + token round trip and store them in the
    docker config (or its credential helper). Returns where they were stored."""
    opts = replace(options or RegistryOptions(), credentials=(username, password))
    with RegistryClient(registry, opts) as client:
        client.verify_login()
    return credentials.store(registry, username, password, opts.auth_config)


def logout(registry: str, options: RegistryOptions | None = None) -> bool:
    """Forget stored credentials; False when there were none."""
    return credentials.erase(registry, (options or RegistryOptions()).auth_config)
