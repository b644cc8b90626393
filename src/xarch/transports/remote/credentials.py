"""Docker-compatible credential lookup and storage.

Sources, in docker's order: ``credHelpers[<server>]``, then ``credsStore``, then the
``auths`` section of config.json (``auth`` = base64 "user:pass", or username/password, or an
``identitytoken`` used as an OAuth2 refresh token). Docker Hub's key is
``https://index.docker.io/v1/``; other registries use ``host[:port]``.

Credential helpers speak the docker-credential-helpers protocol: ``docker-credential-<name>
get|store|erase`` with the server URL (or a JSON record for store) on stdin, JSON on stdout.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.errors import AuthError, InputError, StoreError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
# The username docker-credential-helpers use to mark an identity (refresh) token.
_TOKEN_USERNAME = "<token>"
_HELPER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Credential:
    """What we may present to a registry. Secrets are kept out of ``repr``."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # OAuth2 refresh token
    registry_token: str = field(default="", repr=False)  # bearer token used as-is

    @property
    def has_password(self) -> bool:
        return bool(self.username) and bool(self.password)


def same_server(a: str, b: str) -> bool:
    """Do two config keys name the same registry (all Docker Hub aliases are one)?"""
    ha, hb = normalize_host(a), normalize_host(b)
    if ha in _DOCKER_HUB_HOSTS and hb in _DOCKER_HUB_HOSTS:
        return True
    return ha == hb


def server_key(registry: str) -> str:
    """The config.json / credential-helper key docker uses for ``registry``."""
    host = normalize_host(registry)
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_HOSTS else host


def normalize_host(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000`` (docker's ConvertToHostname)."""
    s = key.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix) :]
            break
    return s.split("/", 1)[0].lower()


def default_config_path() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    base = Path(env) if env else Path.home() / ".docker"
    return base / "config.json"


def config_path(auth_config: str | os.PathLike[str] | None) -> Path:
    return Path(auth_config) if auth_config else default_config_path()


def read_config(path: Path) -> dict[str, Any]:
    """The parsed config.json, {} when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StoreError(f"cannot read docker config {path}: {exc.strerror}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(
            f"docker config {path} is not valid JSON: {exc}", hint="fix or remove the file"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            f"docker config {path} is not a JSON object", hint="fix or remove the file"
        )
    return data


def _helper_for(config: dict[str, Any], key: str) -> str | None:
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for k, v in helpers.items():
            if isinstance(v, str) and v and same_server(k, key):
                return v
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _auth_entry(config: dict[str, Any], key: str) -> tuple[str, dict[str, Any]] | None:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    if isinstance(auths.get(key), dict):
        return key, auths[key]
    for k, v in auths.items():
        if isinstance(v, dict) and same_server(k, key):
            return k, v
    return None


def _parse_entry(path: Path, key: str, entry: dict[str, Any]) -> Credential | None:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise InputError(
                f"docker config {path}: 'auth' for {key} is not base64 of user:password",
                hint=f"run `xarch login {normalize_host(key)}` again",
            ) from exc
        user, sep, pw = decoded.partition(":")
        if not sep:
            raise InputError(
                f"docker config {path}: 'auth' for {key} lacks the ':' between user and password",
                hint=f"run `xarch login {normalize_host(key)}` again",
            )
        username, password = user, pw
    identity = str(entry.get("identitytoken") or "")
    registry_token = str(entry.get("registrytoken") or "")
    if not (username or identity or registry_token):
        return None
    return Credential(username, password, identity, registry_token)


def run_helper(helper: str, action: str, payload: str) -> str:
    """Run ``docker-credential-<helper> <action>`` with ``payload`` on stdin; stdout on success."""
    exe = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [exe, action],
            input=payload.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise AuthError(
            f"credential helper {exe} not found in PATH",
            hint="install it or remove it from credsStore/credHelpers in your docker config",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise AuthError(
            f"credential helper {exe} {action} timed out after {_HELPER_TIMEOUT:.0f}s"
        ) from exc
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = (out.strip() or proc.stderr.decode("utf-8", "replace").strip()).splitlines()
        raise _HelperFailed(exe, action, err[0] if err else f"exit status {proc.returncode}")
    return out


class _HelperFailed(AuthError):
    def __init__(self, exe: str, action: str, detail: str) -> None:
        super().__init__(f"credential helper {exe} {action} failed: {detail}")
        self.detail = detail

    @property
    def not_found(self) -> bool:
        return "credentials not found" in self.detail.lower()


def helper_get(helper: str, key: str) -> Credential | None:
    try:
        out = run_helper(helper, "get", key)
    except _HelperFailed as exc:
        if exc.not_found:
            return None  # not logged in: anonymous access, like docker
        raise
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise AuthError(
            f"credential helper docker-credential-{helper} printed invalid JSON"
        ) from exc
    if not isinstance(data, dict):
        raise AuthError(f"credential helper docker-credential-{helper} printed invalid JSON")
    user = str(data.get("Username") or "")
    secret = str(data.get("Secret") or "")
    if not secret:
        return None
    if user == _TOKEN_USERNAME:
        return Credential(identity_token=secret)
    return Credential(user, secret)


def lookup(registry: str, auth_config: str | os.PathLike[str] | None = None) -> Credential | None:
    """Credentials for ``registry`` from docker config / helpers; None means anonymous."""
    path = config_path(auth_config)
    config = read_config(path)
    key = server_key(registry)
    helper = _helper_for(config, key)
    if helper:
        cred = helper_get(helper, key)
        if cred is not None:
            return cred
    found = _auth_entry(config, key)
    if found is None:
        return None
    return _parse_entry(path, *found)


def write_config_atomic(path: Path, config: dict[str, Any]) -> None:
    """Replace config.json atomically (temp file + fsync + rename) with mode 0600."""
    if path.is_symlink():
        path = path.resolve()  # keep a dotfile-managed symlink pointing at the real file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (json.dumps(config, indent="\t") + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def store(
    registry: str, username: str, password: str, auth_config: str | os.PathLike[str] | None = None
) -> str:
    """Save credentials for ``registry``; returns where (the helper name or the config path)."""
    path = config_path(auth_config)
    config = read_config(path)
    key = server_key(registry)
    helper = _helper_for(config, key)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
        config["auths"] = auths
    existing = _auth_entry(config, key)
    if existing is not None and existing[0] != key:
        del auths[existing[0]]
    if helper:
        record = json.dumps({"ServerURL": key, "Username": username, "Secret": password})
        run_helper(helper, "store", record)
        # docker keeps an empty entry so `docker info`/logout know about the login.
        auths[key] = {}
        write_config_atomic(path, config)
        return f"credential helper docker-credential-{helper}"
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths[key] = {"auth": token}
    write_config_atomic(path, config)
    return str(path)


def erase(registry: str, auth_config: str | os.PathLike[str] | None = None) -> bool:
    """Forget credentials for ``registry``; True if there was something to forget."""
    path = config_path(auth_config)
    config = read_config(path)
    key = server_key(registry)
    removed = False
    helper = _helper_for(config, key)
    if helper:
        try:
            run_helper(helper, "erase", key)
            removed = True
        except _HelperFailed as exc:
            if not exc.not_found:
                raise
    auths = config.get("auths")
    if isinstance(auths, dict):
        stale = [k for k in auths if same_server(k, key)]
        for k in stale:
            del auths[k]
        if stale:
            removed = True
            write_config_atomic(path, config)
    return removed
