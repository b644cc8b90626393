"""Fixtures for the registry client tests: an in-process fake registry and a real one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeregistry import FakeRegistry

from helpers.registry import RunningRegistry, registry_available, start_registry
from xarch.transports.remote import RegistryClient, RegistryOptions, TransferEvent


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def events() -> list[TransferEvent]:
    return []


@pytest.fixture
def tmp_config(tmp_path: Path) -> Path:
    """An empty docker config location so the user's real ~/.docker never leaks in."""
    return tmp_path / "docker" / "config.json"


@pytest.fixture
def make_client(
    sleeps: list[float], events: list[TransferEvent], tmp_config: Path
) -> Iterator[Callable[..., RegistryClient]]:
    clients: list[RegistryClient] = []

    def make(fake: FakeRegistry, **kw: Any) -> RegistryClient:
        opts: dict[str, Any] = {
            "transport": fake.transport,
            "sleep": sleeps.append,
            "auth_config": str(tmp_config),
        }
        opts.update(kw)
        client = RegistryClient(fake.host, RegistryOptions(**opts), on_event=events.append)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A real distribution 2.8 registry on 127.0.0.1 (plain HTTP), torn down after the test."""
    if not registry_available():
        pytest.skip("/usr/bin/docker-registry is not installed")
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def secure_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A real registry with TLS (throwaway CA) and htpasswd basic auth (user xarch / pass hunter2)."""
    if not registry_available():
        pytest.skip("/usr/bin/docker-registry is not installed")
    reg = start_registry(tmp_path, htpasswd=("xarch", "hunter2"), tls=True)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(autouse=True)
def _no_user_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests must never read or write the developer's credentials.
    monkeypatch.setenv("DOCKER_CONFIG", os.fspath(tmp_path / "docker-env"))
