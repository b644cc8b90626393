"""Bounded transfers: every response body the registry client reads arrives at a minimum
rate, within a deadline, and (unless the request says otherwise) under a size cap.

A per-read timeout alone does not bound a transfer: a registry that trickles one byte per
second never leaves a read idle long enough to trip it. ``BoundedTransport`` wraps each
response stream, so the rule holds for every body, including the ones httpx reads itself (a
401 answered by the auth flow). What a request is, for the error message, and a deadline that
spans several requests (a blob resumed with Range) travel in ``request.extensions``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from xarch.errors import NetworkError, RegistryError, human_bytes

WHAT = "xarch.what"  # request extension: what is being fetched, e.g. 'blob sha256:… from …'
DEADLINE = "xarch.deadline"  # request extension: absolute ``clock()`` time the body must end by
MAX_BYTES = "xarch.max_bytes"  # request extension: body size cap (None: the caller checks)

KiB = 1024


@dataclass(frozen=True)
class TransferLimits:
    """``min_rate`` bytes/s averaged over every ``window`` seconds (0 disables); ``deadline``
    seconds per transfer (None disables); ``max_bytes`` for bodies whose request sets none."""

    min_rate: float = 1 * KiB
    window: float = 30.0
    deadline: float | None = 6 * 3600.0
    max_bytes: int | None = 32 * 1024 * KiB
    clock: Callable[[], float] = time.monotonic



def describe(request: httpx.Request) -> str:
    what = request.extensions.get(WHAT)
    return str(what) if what else f"{request.method} {request.url.copy_with(query=None)}"


def _netloc(url: httpx.URL) -> str:
    return url.netloc.decode("ascii", "replace")


class _GuardedStream(httpx.SyncByteStream):
    def __init__(
        self,
        inner: httpx.SyncByteStream,
        request: httpx.Request,
        limits: TransferLimits,
        started: float,
    ) -> None:
        self._inner = inner
        self._request = request
        self._limits = limits
        deadline = request.extensions.get(DEADLINE)
        if deadline is None and limits.deadline is not None:
            deadline = started + limits.deadline
        self._deadline: float | None = deadline
        self._max = request.extensions.get(MAX_BYTES, limits.max_bytes)
        self._mark = (limits.clock(), 0)  # start of the current rate window: (time, bytes)
        self._received = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._received += len(chunk)
            self._check()
            yield chunk

    def _check(self) -> None:
        limits = self._limits
        now = limits.clock()
        if self._max is not None and self._received > self._max:
            raise RegistryError(
                f"{describe(self._request)}: {_netloc(self._request.url)} sent more than"
                f" {human_bytes(self._max)}; refusing the rest"
            )
        if self._deadline is not None and now > self._deadline:
            raise NetworkError(
                f"{describe(self._request)}: transfer from {_netloc(self._request.url)} did not"
                f" finish within {limits.deadline or 0:g} s"
                f" ({human_bytes(self._received)} of this response arrived)",
                hint="retry later, or raise the transfer deadline",
            )
        since, at = self._mark
        elapsed = now - since
        if limits.min_rate > 0 and elapsed >= limits.window:
            got = self._received - at
            if got < limits.min_rate * elapsed:
                raise NetworkError(
                    f"{describe(self._request)}: too slow from {_netloc(self._request.url)}:"
                    f" {human_bytes(got)} in {elapsed:.1f} s ({human_bytes(got / elapsed)}/s,"
                    f" the minimum is {human_bytes(limits.min_rate)}/s)",
                    hint="the registry is stalling; retry later",
                )
            self._mark = (now, self._received)

    def close(self) -> None:
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """Wraps each response body in the rate, deadline and size guard."""

    def __init__(self, inner: httpx.BaseTransport, limits: TransferLimits) -> None:
        self._inner = inner
        self._limits = limits

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = self._limits.clock()
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _GuardedStream(response.stream, request, self._limits, started)
        return response

    def close(self) -> None:
        self._inner.close()


class ClientTransport(httpx.BaseTransport):
    """The wire: a plain ``httpx.Client`` used as a transport, so TLS settings, connection
    limits and the environment's proxies (HTTPS_PROXY, NO_PROXY) are httpx's own, below the
    retry and guard layers."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._client.send(request, stream=True)

    def close(self) -> None:
        self._client.close()


# Request extension: this https request only asks whether the server speaks TLS at all.
TLS_PROBE = "xarch.tls_probe"


class LazyTrustTransport(httpx.BaseTransport):
    """The wire for the default trust store, which costs ~25 ms to load (certifi's bundle):
    loaded only on the first https request that verifies a certificate. Plain-http requests
    and ``TLS_PROBE`` requests (nothing is trusted from them) go through a client that
    verifies nothing, so a no-change push to a plain-http loopback registry never loads it."""

    def __init__(self, make: Callable[[bool], httpx.Client]) -> None:
        self._make = make  # verify -> client
        self._clients: dict[bool, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, verify: bool) -> httpx.Client:
        client = self._clients.get(verify)
        if client is None:
            with self._lock:
                client = self._clients.get(verify)
                if client is None:
                    client = self._clients[verify] = self._make(verify)
        return client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        verify = request.url.scheme == "https" and not request.extensions.get(TLS_PROBE)
        return self._client(verify).send(request, stream=True)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
