"""A tiny HTTP/1.1 reverse proxy on 127.0.0.1 for integration tests: puts a real registry
behind another origin, so a test can build a registry whose blobs or upload sessions live
"elsewhere" (a CDN, a storage backend) and see exactly what the client sent there.

Like the fake registry it imports nothing of xarch.
"""

from __future__ import annotations

import http.client
import http.server
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length"})


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    authorization: str | None


@dataclass
class Forwarder:
    """Forwards to ``upstream`` (host:port). ``redirect(method, path)`` may answer with a 307
    to another URL instead; ``rewrite_location`` edits Location headers of the answers;
    ``own_auth(method, path)`` may give the Authorization this hop itself sends upstream (a
    CDN's own access), else the client's header is passed on as is."""

    upstream: str
    redirect: Callable[[str, str], str | None] = lambda method, path: None
    rewrite_location: Callable[[str], str] = lambda loc: loc
    own_auth: Callable[[str, str], str | None] = lambda method, path: None
    received: list[Received] = field(default_factory=list)
    address: str = ""
    _server: Any = None

    def start(self) -> Forwarder:
        handler = _handler_for(self)
        self._server = _Server(("127.0.0.1", 0), handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False


def _handler_for(fw: Forwarder) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            method, path = self.command, self.path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            client_auth = self.headers.get("Authorization")
            fw.received.append(Received(method, path, client_auth))
            target = fw.redirect(method, path)
            if target is not None:
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers.pop("Authorization", None)
            auth = fw.own_auth(method, path) or client_auth
            if auth:
                headers["Authorization"] = auth
            # The upstream builds its absolute URLs from Host: keep the client's.
            headers["Host"] = self.headers.get("Host", fw.upstream)
            conn = http.client.HTTPConnection(fw.upstream, timeout=30)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                answer = resp.getheaders()
                status = resp.status
            finally:
                conn.close()
            self.send_response(status)
            for key, value in answer:
                if key.lower() in _HOP and not (
                    method == "HEAD" and key.lower() == "content-length"
                ):
                    continue
                if key.lower() == "location":
                    value = fw.rewrite_location(value)
                self.send_header(key, value)
            if method != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
