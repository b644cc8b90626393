"""Parser directives (``# syntax=``, ``# escape=``, ``# check=``), as BuildKit's directives.go.

Directives are only recognised at the very top of a file: the first line that is not a
known, well-formed directive ends the scan, and a repeated directive is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xarch.frontend.dockerfile._line_parsers import GO_SPACES, from_bytes

__all__ = [
    "VALID_DIRECTIVES",
    "Directive",
    "DirectiveError",
    "DirectiveParser",
    "detect_syntax",
    "parse_directive",
]

VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})

# Go's \s is ASCII [\t\n\f\r ]; Python's would also match \v and Unicode spaces.
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")

_BOM = "\ufeff"


class DirectiveError(Exception):
    """A directive BuildKit refuses (given twice, bad escape token)."""


@dataclass(frozen=True)
class Directive:
    name: str  # lower-cased
    value: str
    line: int  # 1-based


class DirectiveParser:
    """DirectiveParser: feed lines (without their newline) in order, one call per line."""

    def __init__(self, comment: str = "#", line: int = 0) -> None:
        self.comment = comment
        self.line = line
        self.done = False
        self.seen: set[str] = set()

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        if not line.startswith(self.comment):
            self.done = True
            return None
        m = _RE_DIRECTIVE.match(line[len(self.comment) :].lstrip(GO_SPACES))
        if m is None:
            self.done = True
            return None
        key = m.group(1).lower()
        if key not in VALID_DIRECTIVES:
            self.done = True
            return None
        if key in self.seen:
            raise DirectiveError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        return Directive(key, m.group(2), self.line)

    def parse_all(self, text: str) -> list[Directive]:
        """ParseAll; stops quietly at a repeated directive like the Go callers do."""
        out: list[Directive] = []
        for raw in _scan_lines(text):
            if self.done:
                break
            try:
                d = self.parse_line(raw)
            except DirectiveError:
                break
            if d is not None:
                out.append(d)
        return out


def _scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: split on \\n, drop one trailing \\r, no empty last token."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def _as_text(data: bytes | str) -> str:
    return from_bytes(data) if isinstance(data, bytes) else data


def detect_syntax(data: bytes | str) -> tuple[str, str, int] | None:
    """DetectSyntax: (reference, full value, line) of the ``syntax`` directive, or None.

    Falls back to ``// syntax=`` comments and to a whole-file JSON object, and ignores a
    first ``#!`` shebang line, exactly like BuildKit.
    """
    return _parse_directive("syntax", _as_text(data), any_format=True)


def parse_directive(key: str, data: bytes | str) -> tuple[str, str, int] | None:
    """ParseDirective: like detect_syntax for any key, ``#`` comments only."""
    return _parse_directive(key, _as_text(data), any_format=False)


def _parse_directive(key: str, text: str, *, any_format: bool) -> tuple[str, str, int] | None:
    if text.startswith(_BOM):
        text = text[1:]
    line = 0
    first, sep, rest = text.partition("\n")
    if first.startswith("#!"):
        text = rest if sep else ""
        line = 1
    prefixes = ("#", "//") if any_format else ("#",)
    for prefix in prefixes:
        for d in DirectiveParser(prefix, line).parse_all(text):
            if d.name == key:
                return d.value.split(" ", 1)[0], d.value, d.line
    if not any_format:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        v = obj.get(key)
        if isinstance(v, str):
            return v, v, line
    return None
