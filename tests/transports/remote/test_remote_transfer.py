"""Bounded transfers: a trickle, a stall after a fast start, a transfer past its deadline
(even across resumed requests) and an oversized body are all cut off with a clear error.

The fake registry runs on a fake clock (each chunk advances it), so these are exact and fast;
the last tests trickle through a real socket on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeregistry import FakeRegistry

from xarch.errors import NetworkError, RegistryError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.transports.remote import RegistryClient, RegistryOptions

MakeClient = Callable[..., RegistryClient]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def paced(
    clock: Clock, pattern: Callable[[int], tuple[int, float]]
) -> Callable[[bytes], Iterator[bytes]]:
    """A body hook: ``pattern(offset)`` says how many bytes come next and after how long."""

    def body(data: bytes) -> Iterator[bytes]:
        offset = 0
        while offset < len(data):
            size, delay = pattern(offset)
            clock.now += delay
            yield data[offset : offset + size]
            offset += size

    return body


def blob_client(
    make_client: MakeClient,
    clock: Clock,
    body: Callable[[bytes], Iterable[bytes]],
    data: bytes,
    **options: Any,
) -> tuple[FakeRegistry, RegistryClient, Descriptor]:
    fake = FakeRegistry(blob_body=body)
    fake.add_blob("foo", data)
    client = make_client(fake, clock=clock, **options)
    return fake, client, Descriptor.of(mt.OCI_LAYER, data)


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(lambda off: (1, 1.0), id="1-byte-per-second"),
        pytest.param(lambda off: (100, 10.0), id="10-bytes-per-second-in-bursts"),
        pytest.param(
            lambda off: (64 * 1024, 0.0) if off < 64 * 1024 else (1, 10.0),
            id="fast-start-then-stall",
        ),
    ],
)
def test_a_trickled_blob_is_aborted_naming_blob_host_and_rate(
    make_client: MakeClient, pattern: Callable[[int], tuple[int, float]]
) -> None:
    clock = Clock()
    data = bytes(range(256)) * 400  # 100 KiB: hours at these rates
    _, client, desc = blob_client(make_client, clock, paced(clock, pattern), data)
    with pytest.raises(NetworkError) as info:
        client.get_blob_bytes("foo", desc)
    message = str(info.value)
    assert message.startswith(
        f'blob {desc.digest} from registry registry.test repository "foo": too slow from registry.test:'
    )
    assert "the minimum is 1.0 KiB/s" in message and "B/s" in message
    assert clock.now <= 70.0  # within ~two 30 s windows, not hours


def test_a_trickle_from_the_cdn_names_the_cdn(make_client: MakeClient) -> None:
    clock = Clock()
    fake = FakeRegistry(
        blob_body=paced(clock, lambda off: (1, 1.0)),
        foreign={"https://cdn.test": "serve"},
        blob_redirect="https://cdn.test",
    )
    data = b"z" * 5000
    fake.add_blob("foo", data)
    with pytest.raises(NetworkError, match=r"too slow from cdn\.test: 30 B in 30\.0 s \(1 B/s"):
        make_client(fake, clock=clock).get_blob_bytes("foo", Descriptor.of(mt.OCI_LAYER, data))


def test_the_rate_and_window_are_configurable(make_client: MakeClient) -> None:
    clock = Clock()
    data = b"q" * 5000
    body = paced(clock, lambda off: (10, 1.0))  # 10 B/s
    _, client, desc = blob_client(make_client, clock, body, data, min_rate=5.0, rate_window=2.0)
    assert client.get_blob_bytes("foo", desc) == data  # 10 B/s is enough for 5 B/s
    clock.now = 0.0
    _, strict, desc = blob_client(make_client, clock, body, data, min_rate=20.0, rate_window=2.0)
    with pytest.raises(NetworkError, match=r"20 B in 2\.0 s \(10 B/s, the minimum is 20 B/s\)"):
        strict.get_blob_bytes("foo", desc)
    assert clock.now == 2.0


def test_a_steady_transfer_past_its_deadline_is_aborted(make_client: MakeClient) -> None:
    clock = Clock()
    data = b"d" * (64 * 1024)
    body = paced(clock, lambda off: (1024, 1.0))  # 1 KiB/s: fast enough, but 64 s long
    _, client, desc = blob_client(
        make_client, clock, body, data, min_rate=512.0, transfer_deadline=10.0
    )
    with pytest.raises(NetworkError, match=r"did not finish within 10 s \(11\.0 KiB of this"):
        client.get_blob_bytes("foo", desc)
    assert clock.now == 11.0


def test_the_deadline_spans_resumed_requests(make_client: MakeClient, sleeps: list[float]) -> None:
    """The first request breaks after 6 s, the resumed one would take 6 s more: neither
    passes an 8 s deadline on its own, the blob does."""
    clock = Clock()
    piece = 256 * 1024
    calls: list[int] = []

    def breaks_after_six_pieces(data: bytes) -> Iterator[bytes]:
        calls.append(len(data))
        for n, i in enumerate(range(0, len(data), piece), 1):
            clock.now += 1.0
            yield data[i : i + piece]
            if len(calls) == 1 and n == 6:
                raise httpx.ReadError("connection reset by peer")

    data = bytes(range(256)) * (10 * piece // 256)
    _, client, desc = blob_client(
        make_client, clock, breaks_after_six_pieces, data, min_rate=512.0, transfer_deadline=8.0
    )
    with pytest.raises(NetworkError, match="did not finish within 8 s"):
        client.get_blob_bytes("foo", desc)
    assert len(calls) == 2 and calls[1] < calls[0]  # resumed with Range, then cut off
    assert len(sleeps) == 1
    assert clock.now == 9.0


def test_a_trickled_manifest_is_aborted(make_client: MakeClient) -> None:
    from remote_samples import sample_image, seed_image

    clock = Clock()
    fake = FakeRegistry()
    seed_image(fake, "foo", sample_image())
    inner = fake.transport

    def trickle_manifests(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if request.method == "GET" and "/manifests/" in request.url.path:
            body = paced(clock, lambda off: (1, 1.0))(resp.read())
            return httpx.Response(200, headers=resp.headers, stream=_Chunks(body))
        return resp

    client = make_client(fake, clock=clock, transport=httpx.MockTransport(trickle_manifests))
    with pytest.raises(
        NetworkError, match=r'manifest "v1" from registry registry\.test .*too slow'
    ):
        client.get_manifest("foo", "v1")


def test_an_endless_body_is_cut_off(make_client: MakeClient, fake: FakeRegistry) -> None:
    """A tag list (or any body the client does not stream itself) has a size cap."""
    inner = fake.transport

    def endless(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tags/list"):
            chunks = (b" " * (1024 * 1024) for _ in range(40))  # 40 MiB of nothing
            return httpx.Response(200, stream=_Chunks(chunks))
        return inner.handle_request(request)

    client = make_client(fake, transport=httpx.MockTransport(endless))
    with pytest.raises(RegistryError, match=r"registry\.test sent more than 32\.0 MiB"):
        client.list_tags("foo")


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


# -- a real trickle over a socket -------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False


def trickle_server(blob: bytes, piece: int, every: float) -> tuple[_Server, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v2":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            try:
                for i in range(0, len(blob), piece):
                    self.wfile.write(blob[i : i + piece])
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:
                pass  # the client hung up: that is the point

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("piece", "every", "limits", "expected"),
    [
        # 50 B/s against a 1000 B/s minimum: aborted after one 0.2 s window
        (1, 0.02, {"min_rate": 1000.0, "rate_window": 0.2}, "too slow from 127.0.0.1"),
        # 20 KB/s is fast enough, but the blob would take 4 s against a 0.3 s deadline
        (200, 0.01, {"min_rate": 1000.0, "transfer_deadline": 0.3}, "did not finish within 0.3 s"),
    ],
    ids=["rate", "deadline"],
)
def test_a_real_trickle_is_cut_off_quickly(
    tmp_path: Path, piece: int, every: float, limits: dict[str, float], expected: str
) -> None:
    blob = bytes(range(256)) * (320 if piece > 1 else 1)
    server, addr = trickle_server(blob, piece, every)
    options = RegistryOptions(retries=0, auth_config=str(tmp_path / "config.json"), **limits)
    try:
        with RegistryClient(addr, options) as client:
            client.ping()
            started = time.monotonic()
            with pytest.raises(NetworkError) as info:
                client.get_blob_bytes("foo", Descriptor.of(mt.OCI_LAYER, blob))
            took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert expected in str(info.value)
    assert f"blob sha256:{Descriptor.of(mt.OCI_LAYER, blob).digest.hex}" in str(info.value)
    assert took < 2.0
