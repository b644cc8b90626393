"""A registry host that does not resolve fails at once, naming the host (no retries: asking
the resolver again cannot heal it)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from xarch.transports.remote.retry import (
    REPLAY,
    Replay,
    RetryPolicy,
    RetryTransport,
    is_transient_exception,
    is_unresolvable,
)


def _gai(code: int, text: str) -> httpx.ConnectError:
    try:
        raise socket.gaierror(code, text)
    except socket.gaierror as cause:
        try:
            raise httpx.ConnectError(f"[Errno {code}] {text}") from cause
        except httpx.ConnectError as e:
            return e


@pytest.mark.parametrize(
    ("code", "text"),
    [(-2, "Name or service not known"), (-3, "Temporary failure in name resolution"),
     (-5, "No address associated with hostname")],
)  # fmt: skip
def test_resolver_failures_are_final(code: int, text: str) -> None:
    exc = _gai(code, text)
    assert is_unresolvable(exc)
    assert not is_transient_exception(exc)


def test_a_reset_is_still_transient() -> None:
    exc = httpx.ConnectError("[Errno 104] Connection reset by peer")
    assert not is_unresolvable(exc)
    assert is_transient_exception(exc)


def test_the_retry_transport_does_not_replay_an_unresolvable_host() -> None:
    calls = []

    class Inner(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(request.url)
            raise _gai(-2, "Name or service not known")

    pauses: list[float] = []
    t = RetryTransport(Inner(), RetryPolicy(retries=5, sleep=pauses.append))
    req = httpx.Request("GET", "https://nowhere.invalid/v2/")
    req.extensions[REPLAY] = Replay.YES
    with pytest.raises(httpx.ConnectError):
        t.handle_request(req)
    assert len(calls) == 1 and pauses == []


@pytest.mark.parametrize("ref", ["no-such-host.invalid/app:1", "no-such-host.invalid:5000/a/b:2"])
def test_cli_fails_in_under_two_seconds_naming_the_host(ref: str) -> None:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "xarch.cli.main", "inspect", ref],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    took = time.monotonic() - t0
    assert p.returncode != 0
    assert "'no-such-host.invalid' does not resolve" in p.stderr, p.stderr
    assert took < 2, f"took {took:.1f} s"
    assert len(p.stderr.strip().splitlines()) == 1
