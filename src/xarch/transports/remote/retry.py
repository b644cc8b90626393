"""Retry policy: which failures are transient and how long to wait before the next attempt."""

from __future__ import annotations

import email.utils
import random
import time

import httpx

# 501 Not Implemented is a definitive answer, not a hiccup.
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or (500 <= status < 600 and status != 501)


def is_transient_exception(exc: BaseException) -> bool:
    """Connection resets, timeouts and truncated reads; TLS failures are not transient."""
    if isinstance(exc, httpx.ConnectError) and is_tls_error(exc):
        return False
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


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
