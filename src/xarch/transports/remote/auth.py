"""Registry authentication: WWW-Authenticate parsing, bearer tokens with scope caching, basic.

Flow (docker/distribution token auth): a request answered 401 carries a challenge
``Bearer realm="…",service="…",scope="…"``; we fetch a token from the realm for the scopes
the operation needs (all of them in one request, e.g. push on the target and pull on the
mount source) and replay the request. Tokens are cached per scope set until shortly before
they expire; a cached token whose scopes are a superset serves narrower requests too.

``Authenticator`` is the client's one ``httpx.Auth`` and the one home of the rule that
credentials go nowhere else: it answers only for the registry's own origin (scheme, host and
port, as pinged), learns challenges only from that origin's answers (so a token realm is
always the one the registry itself named), and strips any Authorization from a request to
anywhere else, e.g. a blob redirect to a CDN or an upload Location on another host.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from xarch.transports.remote.credentials import Credential

_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# token68 ends at whitespace, a comma or the end; "=" only as trailing padding.
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=\s*(?:,|$))")
SCOPES = "xarch.scopes"  # request extension: the token scopes the request needs
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin_of(url: httpx.URL) -> Origin:
    """(scheme, host, port) with the default port filled in: what "the same server" means."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "bearer", "basic", ...
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> list[str]:
        return [s for s in self.params.get("scope", "").split(" ") if s]


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse an RFC 7235 ``WWW-Authenticate`` value into its challenges.

    Handles several challenges in one header, quoted values containing commas and escaped
    quotes, and token68 credentials (skipped). Garbage ends parsing with what was understood.
    """
    s = header
    n = len(s)

    def skip(j: int, chars: str) -> int:
        while j < n and s[j] in chars:
            j += 1
        return j

    def read_token(j: int) -> tuple[str, int]:
        k = j
        while k < n and s[k] in _TCHAR:
            k += 1
        return s[j:k], k

    out: list[Challenge] = []
    i = 0
    while True:
        i = skip(i, " \t,")
        if i >= n:
            break
        scheme, i = read_token(i)
        if not scheme:
            break
        params: dict[str, str] = {}
        m = _TOKEN68_RE.match(s, skip(i, " \t"))
        if m and skip(i, " \t") > i:
            i = m.end()  # token68 credentials carry no parameters we use
        while True:
            j = skip(i, " \t,")
            name, k = read_token(j)
            eq = skip(k, " \t")
            if not name or eq >= n or s[eq] != "=":
                i = j  # a bare token starts the next challenge
                break
            v = skip(eq + 1, " \t")
            if v < n and s[v] == '"':
                buf: list[str] = []
                p = v + 1
                while p < n and s[p] != '"':
                    if s[p] == "\\" and p + 1 < n:
                        p += 1
                    buf.append(s[p])
                    p += 1
                value = "".join(buf)
                i = min(p + 1, n)
            else:
                value, i = read_token(v)
            params[name.lower()] = value
        out.append(Challenge(scheme.lower(), params))
    return out


def repository_scope(repo: str, actions: Iterable[str]) -> str:
    return f"repository:{repo}:{','.join(actions)}"


def pull_scope(repo: str) -> str:
    return repository_scope(repo, ("pull",))


def push_scope(repo: str) -> str:
    return repository_scope(repo, ("pull", "push"))


def _scope_actions(scopes: Iterable[str]) -> dict[tuple[str, str], frozenset[str]]:
    """``{(type, name): actions}``; names may contain ':' (e.g. ports are not, but be safe)."""
    out: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        typ, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        out.setdefault((typ, name), set()).update(a for a in actions.split(",") if a)
    return {k: frozenset(v) for k, v in out.items()}


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """Union of scopes with actions merged per resource, in a stable order."""
    merged = _scope_actions(s for g in groups for s in g)
    order = ("pull", "push", "delete", "*")
    result = []
    for (typ, name), actions in sorted(merged.items()):
        acts = sorted(actions, key=lambda a: (order.index(a) if a in order else len(order), a))
        result.append(f"{typ}:{name}:{','.join(acts)}")
    return tuple(result)


def covers(granted: Iterable[str], wanted: Iterable[str]) -> bool:
    have = _scope_actions(granted)
    for key, actions in _scope_actions(wanted).items():
        if not actions <= have.get(key, frozenset()):
            return False
    return True


@dataclass
class _CachedToken:
    value: str
    scopes: tuple[str, ...]
    expires_at: float


class TokenFetchError(Exception):
    """Raised by the fetcher; the client turns it into AuthError/NetworkError with context."""

    def __init__(self, response: httpx.Response, scopes: Sequence[str] = ()) -> None:
        super().__init__(f"token endpoint answered {response.status_code}")
        self.response = response
        self.scopes = tuple(scopes)


class Authenticator(httpx.Auth):
    """Holds the registry's origin and challenge, the credentials and the token cache, and
    signs requests to that origin only. Thread-safe."""

    def __init__(
        self,
        credentials: Callable[[], Credential | None],
        send: Callable[[httpx.Request], httpx.Response],
        *,
        clock: Callable[[], float] = time.monotonic,
        client_id: str = "xarch",
    ) -> None:
        self._credentials_fn = credentials
        self._credentials: Credential | None = None
        self._credentials_loaded = False
        self._send = send
        self._clock = clock
        self._client_id = client_id
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self.challenge: Challenge | None = None
        # The registry's origin, set once the client has pinged it; until then nothing is signed.
        self.origin: Origin | None = None
        self._tokens: list[_CachedToken] = []

    # -- the httpx flow ------------------------------------------------------------------
    def at_home(self, url: httpx.URL) -> bool:
        return self.origin is not None and origin_of(url) == self.origin

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.at_home(request.url):
            # Whatever the request carries, nothing we hold leaves the registry's origin.
            request.headers.pop("authorization", None)
            yield request
            return
        scopes: tuple[str, ...] = tuple(request.extensions.get(SCOPES, ()))
        self._sign(request, scopes)
        response = yield request
        if response.status_code == 401 and self._answerable(response, scopes):
            # The registry may name a scope beyond ours (e.g. a mount source): ask for both.
            assert self.challenge is not None
            self._sign(request, merge_scopes(scopes, self.challenge.scopes))
            yield request

    def _sign(self, request: httpx.Request, scopes: Sequence[str]) -> None:
        authz = self.authorization(scopes)
        if authz:
            request.headers["Authorization"] = authz
        else:
            request.headers.pop("authorization", None)

    def _answerable(self, response: httpx.Response, scopes: Sequence[str]) -> bool:
        """A 401 is worth one more try if it carries a challenge we can answer."""
        before = self.challenge
        challenge = self.learn(response)
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            cred = self.credentials()
            if cred is None or not cred.has_password:
                return False
            # Only worth it when we had not been sending basic credentials already.
            return before is None or before.scheme != "basic"
        if challenge.scheme == "bearer" and challenge.realm:
            # An expired token or one lacking a scope: drop what we sent and fetch afresh.
            self.invalidate(scopes)
            return True
        return False

    # -- credentials -------------------------------------------------------------------
    def credentials(self) -> Credential | None:
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = self._credentials_fn()
                self._credentials_loaded = True
            return self._credentials

    # -- challenge -----------------------------------------------------------------------
    def learn(self, response: httpx.Response) -> Challenge | None:
        """Record the challenge of a 401 response; returns it (bearer preferred over basic).
        Only the registry's own answers count: a realm named by anyone else is ignored."""
        if self.origin is not None and not self.at_home(response.request.url):
            return None
        challenges = parse_www_authenticate(response.headers.get("www-authenticate", ""))
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None
        )
        if chosen is not None:
            with self._lock:
                self.challenge = chosen
        return chosen

    def invalidate(self, scopes: Sequence[str]) -> None:
        with self._lock:
            self._tokens = [t for t in self._tokens if not covers(t.scopes, scopes)]

    # -- headers -------------------------------------------------------------------------
    def authorization(self, scopes: Sequence[str]) -> str | None:
        """The Authorization header value for a request needing ``scopes`` (None: anonymous)."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            cred = self.credentials()
            return (
                basic_header(cred.username, cred.password) if cred and cred.has_password else None
            )
        if challenge.scheme == "bearer":
            cred = self.credentials()
            if cred is not None and cred.registry_token:
                return f"Bearer {cred.registry_token}"
            if not challenge.realm:
                return None  # nowhere to ask for a token: go anonymous, the 401 explains
            return f"Bearer {self.token(scopes)}"
        return None

    def token(self, scopes: Sequence[str]) -> str:
        wanted = merge_scopes(scopes)
        cached = self._cached(wanted)
        if cached is not None:
            return cached
        # One fetch at a time: parallel blob workers needing the same scope share one token.
        with self._fetch_lock:
            cached = self._cached(wanted)
            if cached is not None:
                return cached
            value, ttl = self._fetch(wanted)
            now = self._clock()
            # Refresh a little early so a token never expires mid-request.
            margin = min(30.0, ttl * 0.1)
            with self._lock:
                self._tokens.append(_CachedToken(value, wanted, now + ttl - margin))
            return value

    def _cached(self, wanted: tuple[str, ...]) -> str | None:
        now = self._clock()
        with self._lock:
            self._tokens = [t for t in self._tokens if t.expires_at > now]
            for tok in self._tokens:
                if covers(tok.scopes, wanted):
                    return tok.value
        return None

    def _fetch(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        challenge = self.challenge
        assert challenge is not None and challenge.scheme == "bearer"
        if not challenge.realm:
            raise ValueError("bearer challenge without realm")
        cred = self.credentials()
        if cred is not None and cred.identity_token:
            # OAuth2 refresh-token grant (docker config "identitytoken").
            form = {
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "service": challenge.service,
                "client_id": self._client_id,
                "access_type": "offline",
            }
            if scopes:
                form["scope"] = " ".join(scopes)
            request = httpx.Request("POST", challenge.realm, data=form)
        else:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if challenge.service:
                params.append(("service", challenge.service))
            params.extend(("scope", s) for s in scopes)
            headers = {}
            if cred is not None and cred.has_password:
                params.append(("account", cred.username))
                headers["Authorization"] = basic_header(cred.username, cred.password)
            request = httpx.Request("GET", challenge.realm, params=params, headers=headers)
        response = self._send(request)
        if response.status_code != 200:
            raise TokenFetchError(response, scopes)
        try:
            data: Any = response.json()
        except ValueError as exc:
            raise TokenFetchError(response, scopes) from exc
        value = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise TokenFetchError(response, scopes)
        expires = data.get("expires_in")
        ttl = float(expires) if isinstance(expires, int | float) and expires > 0 else 60.0
        return value, ttl


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
