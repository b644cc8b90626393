"""Retry policy: which failures are transient, how long to wait, and the one transport that
replays requests.

``RetryTransport`` is the only place a request is re-sent blindly. Whether a request may be is
the caller's call, carried in ``request.extensions[REPLAY]``: an upload PATCH/PUT must not be
(the client asks the registry how much of the session it holds instead), a ping treats a
refused connection as an answer. The upload-session recovery in the client waits with the
same ``RetryPolicy``, so the bounds and the backoff are the same everywhere.
"""

from __future__ import annotations

import email.utils
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

# 501 Not Implemented is a definitive answer, not a hiccup.
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

REPLAY = "xarch.replay"  # request extension holding a Replay


class Replay(StrEnum):
    """May ``RetryTransport`` re-send this request after a transient failure?"""

    YES = "yes"
    NO = "no"  # never re-sent blindly: the caller recovers (upload sessions)
    PROBE = "probe"  # as YES, but a refused connection is final: nothing listens there


def is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or (500 <= status < 600 and status != 501)


def is_transient_exception(exc: BaseException) -> bool:
    """Connection resets, timeouts and truncated reads; TLS failures and host names that do
    not resolve are not transient."""
    if isinstance(exc, httpx.ConnectError) and (is_tls_error(exc) or is_unresolvable(exc)):
        return False
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def is_unresolvable(exc: BaseException) -> bool:
    """The host name does not resolve (getaddrinfo failed): asking again cannot help, so it
    is never retried and is reported as such (``[Errno -2] Name or service not known``,
    ``-3`` temporary failure, ``-5`` no address)."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 10:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
        depth += 1
    text = _chain_text(exc).lower()
    return any(s in text for s in ("name or service not known", "name resolution",
                                   "nodename nor servname", "no address associated"))


def is_tls_error(exc: BaseException) -> bool:
    text = _chain_text(exc).lower()
    return any(s in text for s in ("ssl", "certificate", "tls", "wrong version number"))


def is_connection_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = _chain_text(exc).lower()
    return "refused" in text or "errno 111" in text


def _chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 10:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
        depth += 1
    return " | ".join(parts)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(
    attempt: int, base: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``maximum``."""
    ceiling = min(maximum, base * (2**attempt))
    r = (rng or random).random()
    return ceiling / 2 + r * ceiling / 2


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try again; ``notify`` hears each wait (progress events)."""

    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    notify: Callable[[str], None] | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            # Honour the registry's wish, but never hang for hours on a hostile header.
            return min(max(retry_after, 0.0), max(self.backoff_max, 60.0))
        return backoff_delay(attempt, self.backoff_base, self.backoff_max)

    def pause(self, attempt: int, what: str, retry_after: float | None = None) -> None:
        """Wait before attempt ``attempt + 2`` (``attempt`` counts the failures so far, from 0)."""
        delay = self.delay(attempt, retry_after)
        if self.notify is not None:
            self.notify(f"{what} (attempt {attempt + 2}/{self.retries + 1}, waiting {delay:.1f}s)")
        self.sleep(delay)


def _where(request: httpx.Request) -> str:
    return f"{request.method} {request.url.copy_with(query=None).path}"


class RetryTransport(httpx.BaseTransport):
    """Re-sends a request on a transient connection failure or a 429/5xx answer, with backoff
    and Retry-After, as ``request.extensions[REPLAY]`` allows. Sees one hop: the auth flow and
    redirects sit above it, so a replay carries exactly the headers of the original."""

    def __init__(self, inner: httpx.BaseTransport, policy: RetryPolicy) -> None:
        self._inner = inner
        self._policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        replay = Replay(request.extensions.get(REPLAY, Replay.YES))
        attempt = 0
        while True:
            may_retry = replay is not Replay.NO and attempt < self._policy.retries
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                refused_is_final = replay is Replay.PROBE and is_connection_refused(exc)
                if not may_retry or refused_is_final or not is_transient_exception(exc):
                    raise
                self._policy.pause(attempt, f"{_where(request)}: {exc}")
                attempt += 1
                continue
            if may_retry and is_retryable_status(response.status_code):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                response.close()
                self._policy.pause(
                    attempt, f"{_where(request)}: HTTP {response.status_code}", retry_after
                )
                attempt += 1
                continue
            return response

    def close(self) -> None:
        self._inner.close()
