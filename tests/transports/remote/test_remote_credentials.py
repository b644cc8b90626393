"""docker config.json parsing, the credential-helper protocol, login/logout."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from fakeregistry import FakeRegistry
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import AuthError, InputError
from xarch.transports.remote import RegistryOptions, login, logout
from xarch.transports.remote import credentials as creds
from xarch.transports.remote.credentials import Credential
from xarch.transports.remote.errors import RegistryAuthError

HELPER = """#!{python}
import json, os, sys
store = os.environ["FAKE_HELPER_STORE"]
data = json.load(open(store)) if os.path.exists(store) else {{}}
action = sys.argv[1]
payload = sys.stdin.read()
with open(store + ".log", "a") as log:
    log.write(action + " " + payload.replace("\\n", " ") + "\\n")
if action == "get":
    key = payload.strip()
    if key not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = data[key]
    print(json.dumps({{"ServerURL": key, "Username": user, "Secret": secret}}))
elif action == "store":
    rec = json.loads(payload)
    data[rec["ServerURL"]] = [rec["Username"], rec["Secret"]]
    json.dump(data, open(store, "w"))
elif action == "erase":
    key = payload.strip()
    if key not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[key]
    json.dump(data, open(store, "w"))
elif action == "broken":
    pass
else:
    sys.exit(2)
"""


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``docker-credential-test`` on PATH backed by a JSON file; returns the store path."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "docker-credential-test"
    exe.write_text(HELPER.format(python=sys.executable))
    exe.chmod(0o755)
    broken = bindir / "docker-credential-broken"
    broken.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("FAKE_HELPER_STORE", str(store))
    return store


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# -- config.json ------------------------------------------------------------------------------


def test_auth_field(tmp_config: Path) -> None:
    write_config(tmp_config, {"auths": {"registry.test:5000": {"auth": b64("bob:pa:ss")}}})
    assert creds.lookup("registry.test:5000", tmp_config) == Credential("bob", "pa:ss")


def test_username_password_fields_and_url_keys(tmp_config: Path) -> None:
    write_config(
        tmp_config, {"auths": {"https://registry.test/v2/": {"username": "u", "password": "p"}}}
    )
    assert creds.lookup("registry.test", tmp_config) == Credential("u", "p")
    assert creds.lookup("other.test", tmp_config) is None


def test_docker_hub_key(tmp_config: Path) -> None:
    write_config(tmp_config, {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}})
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert creds.lookup(name, tmp_config) == Credential("hub", "pw")
    assert creds.server_key("docker.io") == "https://index.docker.io/v1/"
    assert creds.server_key("ghcr.io") == "ghcr.io"


def test_identity_token(tmp_config: Path) -> None:
    write_config(tmp_config, {"auths": {"r.test": {"auth": b64("u:"), "identitytoken": "refresh"}}})
    cred = creds.lookup("r.test", tmp_config)
    assert cred is not None and cred.identity_token == "refresh"
    assert "refresh" not in repr(cred)


def test_missing_and_empty_config(tmp_path: Path) -> None:
    assert creds.lookup("r.test", tmp_path / "nope.json") is None
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert creds.lookup("r.test", empty) is None


def test_malformed_config(tmp_config: Path) -> None:
    write_config(tmp_config, {})
    tmp_config.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        creds.lookup("r.test", tmp_config)
    write_config(tmp_config, {"auths": {"r.test": {"auth": "!!!"}}})
    with pytest.raises(InputError, match="base64"):
        creds.lookup("r.test", tmp_config)
    write_config(tmp_config, {"auths": {"r.test": {"auth": b64("nocolon")}}})
    with pytest.raises(InputError, match="':'"):
        creds.lookup("r.test", tmp_config)


def test_default_config_path_honours_docker_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    assert creds.default_config_path() == tmp_path / "d" / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert creds.default_config_path() == tmp_path / "home" / ".docker" / "config.json"


@given(st.sampled_from(["", "https://", "http://"]), st.sampled_from(["", "/", "/v1/", "/v2/"]))
def test_normalize_host(prefix: str, suffix: str) -> None:
    assert creds.normalize_host(f"{prefix}Registry.Test:5000{suffix}") == "registry.test:5000"


# -- credential helpers --------------------------------------------------------------------------


def test_creds_store_helper(helper: Path, tmp_config: Path) -> None:
    helper.write_text(json.dumps({"r.test": ["helper-user", "helper-pass"]}))
    write_config(tmp_config, {"credsStore": "test"})
    assert creds.lookup("r.test", tmp_config) == Credential("helper-user", "helper-pass")
    # not found in the helper: anonymous (None), as docker does
    assert creds.lookup("other.test", tmp_config) is None
    assert "get r.test" in Path(str(helper) + ".log").read_text()


def test_cred_helpers_take_precedence(helper: Path, tmp_config: Path) -> None:
    helper.write_text(json.dumps({"https://index.docker.io/v1/": ["hubuser", "hubpass"]}))
    write_config(
        tmp_config,
        {
            "credsStore": "broken",
            "credHelpers": {"https://index.docker.io/v1/": "test"},
            "auths": {"https://index.docker.io/v1/": {"auth": b64("file:pw")}},
        },
    )
    assert creds.lookup("docker.io", tmp_config) == Credential("hubuser", "hubpass")
    with pytest.raises(AuthError, match="docker-credential-broken get failed: keychain locked"):
        creds.lookup("r.test", tmp_config)


def test_helper_identity_token(helper: Path, tmp_config: Path) -> None:
    helper.write_text(json.dumps({"r.test": ["<token>", "refresh-me"]}))
    write_config(tmp_config, {"credHelpers": {"r.test": "test"}})
    assert creds.lookup("r.test", tmp_config) == Credential(identity_token="refresh-me")


def test_helper_missing_from_path(tmp_config: Path) -> None:
    write_config(tmp_config, {"credsStore": "does-not-exist-xarch"})
    with pytest.raises(AuthError, match="docker-credential-does-not-exist-xarch not found in PATH"):
        creds.lookup("r.test", tmp_config)


def test_store_and_erase_in_file(tmp_config: Path) -> None:
    write_config(tmp_config, {"auths": {"other": {"auth": b64("o:p")}}, "psFormat": "table"})
    where = creds.store("r.test:5000", "me", "pw", tmp_config)
    assert where == str(tmp_config)
    data = json.loads(tmp_config.read_text())
    assert data["auths"]["r.test:5000"] == {"auth": b64("me:pw")}
    assert data["psFormat"] == "table" and "other" in data["auths"]
    assert stat.S_IMODE(tmp_config.stat().st_mode) == 0o600
    assert not [p for p in tmp_config.parent.iterdir() if p.name.startswith(".config.json.")]
    assert creds.erase("r.test:5000", tmp_config) is True
    assert "r.test:5000" not in json.loads(tmp_config.read_text())["auths"]
    assert creds.erase("r.test:5000", tmp_config) is False


def test_store_and_erase_via_helper(helper: Path, tmp_config: Path) -> None:
    write_config(tmp_config, {"credsStore": "test"})
    where = creds.store("r.test", "me", "pw", tmp_config)
    assert where == "credential helper docker-credential-test"
    assert json.loads(helper.read_text()) == {"r.test": ["me", "pw"]}
    config = json.loads(tmp_config.read_text())
    assert config["auths"] == {"r.test": {}}  # no secret in the file
    assert creds.lookup("r.test", tmp_config) == Credential("me", "pw")
    assert creds.erase("r.test", tmp_config) is True
    assert json.loads(helper.read_text()) == {}


# -- login / logout ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_login_verifies_then_stores(mode: str, tmp_config: Path, sleeps: list[float]) -> None:
    fake = FakeRegistry(auth=mode)  # type: ignore[arg-type]
    opts = RegistryOptions(
        transport=fake.transport, sleep=sleeps.append, auth_config=str(tmp_config)
    )
    login("registry.test", "alice", "s3cret", opts)
    assert json.loads(tmp_config.read_text())["auths"]["registry.test"] == {
        "auth": b64("alice:s3cret")
    }
    if mode == "token":
        assert fake.token_requests[-1]["account"] == "alice"
    assert logout("registry.test", opts) is True
    assert logout("registry.test", opts) is False


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_login_with_wrong_password_stores_nothing(mode: str, tmp_config: Path) -> None:
    fake = FakeRegistry(auth=mode)  # type: ignore[arg-type]
    opts = RegistryOptions(
        transport=fake.transport, sleep=lambda _: None, auth_config=str(tmp_config)
    )
    with pytest.raises(RegistryAuthError):
        login("registry.test", "alice", "wrong", opts)
    assert not tmp_config.exists()


def test_login_via_helper(helper: Path, tmp_config: Path) -> None:
    write_config(tmp_config, {"credsStore": "test"})
    fake = FakeRegistry(auth="token")
    opts = RegistryOptions(transport=fake.transport, auth_config=str(tmp_config))
    assert (
        login("registry.test", "alice", "s3cret", opts)
        == "credential helper docker-credential-test"
    )
    assert json.loads(helper.read_text()) == {"registry.test": ["alice", "s3cret"]}
