"""Header parsers and small policies: WWW-Authenticate, Link, Retry-After, scopes, tags."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.transports.remote.auth import (
    covers,
    merge_scopes,
    parse_www_authenticate,
)
from xarch.transports.remote.client import is_loopback, parse_link_next, parse_range_end
from xarch.transports.remote.errors import describe_error, parse_error_body
from xarch.transports.remote.options import TransferEvent
from xarch.transports.remote.referrers import referrers_tag
from xarch.transports.remote.retry import backoff_delay, is_retryable_status, parse_retry_after

# -- WWW-Authenticate ---------------------------------------------------------------------


def test_docker_hub_challenge() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scopes == ["repository:library/alpine:pull"]


def test_quoted_commas_escapes_and_multiple_challenges() -> None:
    header = (
        'Basic realm="a, \\"quoted\\" realm", '
        'Bearer realm="https://x/token", scope="repository:a:pull,push repository:b:pull", error=insufficient_scope'
    )
    basic, bearer = parse_www_authenticate(header)
    assert basic.scheme == "basic" and basic.realm == 'a, "quoted" realm'
    assert bearer.scopes == ["repository:a:pull,push", "repository:b:pull"]
    assert bearer.params["error"] == "insufficient_scope"


def test_case_and_spacing() -> None:
    [c] = parse_www_authenticate('BEARER  Realm = "r" ,  Service="s"')
    assert c.scheme == "bearer" and c.realm == "r" and c.service == "s"


def test_token68_and_garbage() -> None:
    cs = parse_www_authenticate("Negotiate abc123==, Basic realm=x")
    assert [c.scheme for c in cs] == ["negotiate", "basic"]
    assert cs[1].realm == "x"
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate('"garbage') == []


_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+",
    min_size=1,
    max_size=12,
)
_value = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@given(
    st.lists(
        st.tuples(_token, st.dictionaries(_token.map(str.lower), _value, min_size=1, max_size=4)),
        min_size=1,
        max_size=3,
    )
)
def test_roundtrip_generated_challenges(challenges: list[tuple[str, dict[str, str]]]) -> None:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = ", ".join(
        scheme + " " + ", ".join(f"{k}={quote(v)}" for k, v in params.items())
        for scheme, params in challenges
    )
    parsed = parse_www_authenticate(header)
    assert [(c.scheme, c.params) for c in parsed] == [(s.lower(), p) for s, p in challenges]


@given(st.text(max_size=200))
def test_never_crashes(header: str) -> None:
    parse_www_authenticate(header)


# -- scopes -----------------------------------------------------------------------------


def test_merge_and_cover_scopes() -> None:
    merged = merge_scopes(["repository:a:pull"], ["repository:a:push", "repository:b:pull"])
    assert merged == ("repository:a:pull,push", "repository:b:pull")
    assert covers(merged, ["repository:a:pull"])
    assert covers(merged, ["repository:a:pull", "repository:b:pull"])
    assert not covers(["repository:a:pull"], ["repository:a:push"])
    assert covers(["repository:a:pull"], [])


# -- Link / Range ---------------------------------------------------------------------------


def test_link_next() -> None:
    assert (
        parse_link_next('</v2/foo/tags/list?n=2&last=b>; rel="next"')
        == "/v2/foo/tags/list?n=2&last=b"
    )
    assert parse_link_next('<https://r/a>; rel="prev", <https://r/b>; rel=next') == "https://r/b"
    assert parse_link_next('<https://r/a>; title="x"') is None
    assert parse_link_next(None) is None


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/?=&._-", min_size=1, max_size=60))
def test_link_next_roundtrip(target: str) -> None:
    assert parse_link_next(f'<{target}>; rel="next"') == target


@given(st.text(max_size=100))
def test_link_never_crashes(header: str) -> None:
    parse_link_next(header)


def test_range_end() -> None:
    assert parse_range_end("0-1023") == 1024
    assert parse_range_end("bytes=0-9") == 10
    assert parse_range_end("junk") is None
    assert parse_range_end(None) is None


# -- retry policy ---------------------------------------------------------------------------


def test_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(
        10.0
    )
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (429, True),
        (501, False),
        (404, False),
        (400, False),
        (401, False),
    ],
)
def test_retryable_status(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


@given(st.integers(0, 30), st.floats(0.01, 5.0), st.floats(0.1, 100.0))
def test_backoff_bounds(attempt: int, base: float, maximum: float) -> None:
    d = backoff_delay(attempt, base, maximum, random.Random(attempt))
    ceiling = min(maximum, base * 2**attempt)
    assert ceiling / 2 <= d <= ceiling


# -- misc -------------------------------------------------------------------------------------


def test_referrers_tag_schema_vectors() -> None:
    """The examples table of the distribution spec's referrers tag schema."""
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    assert (
        referrers_tag(
            "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation"
            ":alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation"
        )
        == "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"
    )


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("registry.test", False),
        ("10.0.0.1:5000", False),
        ("localhost.example", False),
    ],
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_error_body() -> None:
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"},{"code":"X"}]}'
    assert parse_error_body(body) == [
        ("DENIED", "requested access to the resource is denied"),
        ("X", "x"),
    ]
    assert parse_error_body(b"<html>") == []
    msg, code = describe_error("r:5000", 403, "Forbidden", body, "pushing")
    assert (
        msg
        == "registry r:5000: requested access to the resource is denied: pushing (DENIED); x (X)"
    )
    assert code == "DENIED"
    msg, code = describe_error("r", 502, "Bad Gateway", b"oops", "fetching")
    assert msg == "registry r: HTTP 502 Bad Gateway: fetching" and code is None


def test_transfer_event_text() -> None:
    e = TransferEvent("mount", "sha256:" + "ab" * 32, 10, "from library/foo")
    assert str(e) == "mounted sha256:abababababab… from library/foo"
    assert str(TransferEvent("retry", None, 0, "GET x: HTTP 500")) == "retrying GET x: HTTP 500"


# -- URL path safety -----------------------------------------------------------------------------


def test_path_validation() -> None:
    from xarch.errors import InputError, UsageError
    from xarch.transports.remote.client import RegistryClient

    assert (
        RegistryClient._path("library/foo", "manifests", "v1.0_rc-1")
        == "/v2/library/foo/manifests/v1.0_rc-1"
    )
    assert RegistryClient._path("a/b", "tags/list") == "/v2/a/b/tags/list"
    for repo in ("../etc", "Foo", "a//b", "a/", "a?b", ""):
        with pytest.raises(UsageError):
            RegistryClient._path(repo, "tags/list")
    for ref in ("../x", "a/b", "-x", "x?y", "sha256:zz"):
        with pytest.raises((UsageError, InputError)):
            RegistryClient._path("foo", "manifests", ref)


@given(st.text(max_size=40), st.text(max_size=40))
def test_paths_never_escape(repo: str, ref: str) -> None:
    from xarch.errors import XarchError
    from xarch.transports.remote.client import RegistryClient

    try:
        path = RegistryClient._path(repo, "manifests", ref)
    except XarchError:
        return
    assert ".." not in path.split("/") and "?" not in path and "#" not in path and "//" not in path
    assert path.count("/") == 4 + repo.count("/")
