"""login/logout argument handling and credential storage (offline: the registry parts are in
the integration suite)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from xarch.api import normalize_registry
from xarch.errors import UsageError

from .conftest import Runner, assert_one_error


def test_logout_when_not_logged_in(xarch: Runner) -> None:
    r = xarch("logout", "127.0.0.1:5999")
    assert r.code == 0 and "Not logged in" in r.out


def test_logout_removes_stored_entry(xarch: Runner, tmp_path: Path) -> None:
    cfg = tmp_path / "docker-config" / "config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        json.dumps({"auths": {"127.0.0.1:5999": {"auth": "dTpw"}, "other.io": {"auth": "eDp5"}}})
    )
    r = xarch("logout", "http://127.0.0.1:5999/")
    assert r.code == 0 and "Removed" in r.out
    assert json.loads(cfg.read_text())["auths"] == {"other.io": {"auth": "eDp5"}}


def test_login_needs_username_without_tty(xarch: Runner) -> None:
    r = xarch("login", "127.0.0.1:5999", "--password-stdin")
    assert r.code == 2 and r.err_lines[0].startswith("error: ")


def test_login_registry_down(xarch: Runner, monkeypatch: object) -> None:
    import io
    import sys

    from helpers.registry import free_port

    port = free_port()
    sys_stdin = sys.stdin
    sys.stdin = io.StringIO("secret\n")
    try:
        r = xarch("login", f"127.0.0.1:{port}", "-u", "me", "--password-stdin")
    finally:
        sys.stdin = sys_stdin
    assert_one_error(r)
    assert "connection refused" in r.err


def test_normalize_registry() -> None:
    assert normalize_registry("https://ghcr.io/") == "ghcr.io"
    assert normalize_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry("localhost:5000") == "localhost:5000"


@given(st.text(max_size=40))
def test_normalize_registry_is_a_bare_host_or_a_usage_error(s: str) -> None:
    try:
        host = normalize_registry(s)
    except UsageError:
        return
    assert host and "/" not in host and not any(c.isspace() for c in host)
    assert normalize_registry(host) == host
    assert normalize_registry(f"https://{host}/v2/") == host
