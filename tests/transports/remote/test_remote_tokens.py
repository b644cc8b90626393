"""Authenticator: token cache, expiry, scope supersets, grant types (no network)."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest

from xarch.transports.remote.auth import Authenticator, Challenge, TokenFetchError
from xarch.transports.remote.credentials import Credential


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_auth(
    cred: Credential | None, clock: FakeClock, ttl: int = 300
) -> tuple[Authenticator, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def send(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200, json={"token": f"t{len(sent)}", "expires_in": ttl}, request=request
        )

    auth = Authenticator(lambda: cred, send, clock=clock)
    auth.challenge = Challenge("bearer", {"realm": "https://auth.test/token", "service": "svc"})
    return auth, sent


def test_cache_expiry_and_supersets() -> None:
    clock = FakeClock()
    auth, sent = make_auth(Credential("u", "p"), clock, ttl=100)
    assert auth.authorization(["repository:a:pull"]) == "Bearer t1"
    assert auth.authorization(["repository:a:pull"]) == "Bearer t1"
    assert auth.authorization(["repository:a:push", "repository:a:pull"]) == "Bearer t2"
    # the pull,push token serves pull requests now; an unrelated repo needs its own
    assert auth.authorization(["repository:b:pull"]) == "Bearer t3"
    assert len(sent) == 3
    clock.now += 89  # refreshed a little before expiry (10% margin)
    assert auth.authorization(["repository:a:pull"]) in ("Bearer t1", "Bearer t2")
    clock.now += 2
    assert auth.authorization(["repository:a:pull"]) == "Bearer t4"
    q = urllib.parse.parse_qs(sent[1].url.query.decode())
    assert q == {"service": ["svc"], "scope": ["repository:a:pull,push"], "account": ["u"]}
    assert sent[1].headers["authorization"].startswith("Basic ")


def test_invalidate() -> None:
    auth, sent = make_auth(None, FakeClock())
    auth.authorization(["repository:a:pull"])
    auth.invalidate(())
    auth.authorization(["repository:a:pull"])
    assert len(sent) == 2
    assert "authorization" not in sent[0].headers  # anonymous


def test_refresh_token_grant() -> None:
    auth, sent = make_auth(Credential(identity_token="rt"), FakeClock())
    auth.authorization(["repository:a:pull", "repository:b:pull,push"])
    req = sent[0]
    assert req.method == "POST"
    form = urllib.parse.parse_qs(req.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt"]
    assert form["scope"] == ["repository:a:pull repository:b:pull,push"]
    assert form["service"] == ["svc"] and form["client_id"] == ["xarch"]


def test_registry_token_and_basic() -> None:
    auth, sent = make_auth(Credential(registry_token="direct"), FakeClock())
    assert auth.authorization(["repository:a:pull"]) == "Bearer direct"
    assert sent == []
    auth.challenge = Challenge("basic", {"realm": "r"})
    assert auth.authorization([]) is None  # no password: anonymous
    basic, _ = make_auth(Credential("u", "p"), FakeClock())
    basic.challenge = Challenge("basic", {})
    assert basic.authorization([]) == "Basic dTpw"


@pytest.mark.parametrize("body", [{"nothing": 1}, {"token": ""}, "not json"])
def test_bad_token_responses(body: object) -> None:
    def send(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(200, text=body, request=request)
        return httpx.Response(200, json=body, request=request)

    auth = Authenticator(lambda: None, send)
    auth.challenge = Challenge("bearer", {"realm": "https://auth.test/token"})
    with pytest.raises(TokenFetchError):
        auth.authorization(["repository:a:pull"])


def test_access_token_field_and_default_ttl() -> None:
    clock = FakeClock()

    def send(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "oauth"}, request=request)

    auth = Authenticator(lambda: None, send, clock=clock)
    auth.challenge = Challenge("bearer", {"realm": "https://auth.test/token"})
    assert auth.authorization(["repository:a:pull"]) == "Bearer oauth"


# -- the origin rule ------------------------------------------------------------------------


def flow_headers(auth: Authenticator, url: str, preset: str | None = None) -> str | None:
    """The Authorization the flow puts on a first request to ``url``."""
    headers = {"Authorization": preset} if preset else {}
    request = httpx.Request("GET", url, headers=headers)
    return next(auth.sync_auth_flow(request)).headers.get("authorization")


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.test/v2/a/blobs/x",
        "https://registry.test:8443/v2/a/blobs/x",
        "http://registry.test/v2/a/blobs/x",
        "https://registry.test.evil/v2/",
        "https://evil.test/?u=https://registry.test",
    ],
)
@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_flow_signs_nothing_off_its_origin(url: str, scheme: str) -> None:
    auth, sent = make_auth(Credential("u", "p"), FakeClock())
    auth.challenge = Challenge(scheme, {"realm": "https://auth.test/token", "service": "svc"})
    auth.origin = ("https", "registry.test", 443)
    home = "https://REGISTRY.test:443/v2/a/blobs/x"  # the same origin, spelled differently
    assert flow_headers(auth, home) in ("Basic dTpw", "Bearer t1")
    assert flow_headers(auth, url) is None
    assert flow_headers(auth, url, preset="Basic c3RvbGVu") is None  # stripped, not just unset
    assert len(sent) <= 1  # no token is fetched for a foreign request


def test_nothing_is_signed_before_the_origin_is_known() -> None:
    auth, sent = make_auth(Credential("u", "p"), FakeClock())
    assert flow_headers(auth, "https://auth.test/token") is None
    assert sent == []


def test_challenges_from_elsewhere_are_not_learned() -> None:
    auth, _ = make_auth(Credential("u", "p"), FakeClock())
    auth.origin = ("https", "registry.test", 443)
    own = auth.challenge
    for url in ("https://cdn.test/blob", "http://registry.test/v2/"):
        answer = httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="https://evil.test/token"'},
            request=httpx.Request("GET", url),
        )
        assert auth.learn(answer) is None
    assert auth.challenge == own


def test_a_bearer_challenge_without_realm_is_anonymous_not_a_crash() -> None:
    auth, sent = make_auth(Credential("u", "p"), FakeClock())
    auth.challenge = Challenge("bearer", {"service": "svc"})
    assert auth.authorization(["repository:a:pull"]) is None
    assert sent == []
