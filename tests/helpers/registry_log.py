"""What a test registry (tests/helpers/registry.py) was asked, read from its log file.

distribution 2.8 writes two lines per request into the log: a structured ``msg="response
completed"`` line (``http.request.method=PUT``, ``http.request.uri=...``) and an access-log line
in Apache's combined format::

    127.0.0.1 - - [02/Dec/2026:10:05:22 +0000] "PUT /v2/xarch/app/manifests/1 HTTP/1.1" 201 0 "" "xarch/0.1.0"

Only the access-log lines are parsed (exactly one per request, error or not). ``LogCursor``
marks a position so a test can look at what one command did and nothing else.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_ACCESS = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) '
)


@dataclass(frozen=True)
class Request:
    method: str
    uri: str  # as sent: path plus query, percent-encoded
    status: int

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.uri).path)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.uri).query)

    def mentions(self, digest: str) -> bool:
        """The digest (or its hex part) appears anywhere in the request, decoded."""
        hexpart = digest.partition(":")[2] or digest
        return hexpart in unquote(self.uri)

    def __str__(self) -> str:
        return f"{self.method} {self.uri} {self.status}"


def parse_requests(text: str) -> list[Request]:
    out = []
    for line in text.splitlines():
        m = _ACCESS.match(line)
        if m:
            out.append(Request(m["method"], m["uri"], int(m["status"])))
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def settle(path: Path, quiet: float = 0.3, timeout: float = 5.0) -> None:
    """Wait until the log has not grown for ``quiet`` seconds: the registry writes a request's
    access line just after the response, so the client may have finished a moment earlier."""
    deadline = time.monotonic() + timeout
    last = _size(path)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _size(path)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return


@dataclass
class LogCursor:
    """A position in a registry log; ``requests()`` returns what was logged after it."""

    path: Path
    offset: int = 0

    @classmethod
    def at_end(cls, path: Path) -> LogCursor:
        settle(path)
        return cls(path, _size(path))

    def text(self, until: LogCursor | None = None) -> str:
        """What was logged after this position (up to ``until``'s, when given)."""
        if until is None:
            settle(self.path)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read() if until is None else f.read(max(until.offset - self.offset, 0))
        return data.decode(errors="replace")

    def requests(self, until: LogCursor | None = None) -> list[Request]:
        return parse_requests(self.text(until))


def writes(requests: list[Request]) -> list[Request]:
    """Requests that change the registry: POST, PUT, PATCH, DELETE."""
    return [r for r in requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]
