"""Go ``regexp`` semantics on google-re2 (linear time), for the regexes the frontend generates.

moby/patternmatcher turns every ``.dockerignore`` pattern into a Go regexp, and BuildKit's
shell lexer does the same for ``${var#pat}`` / ``${var/pat/repl}``. Go's engine is RE2's
design and never backtracks; Python's ``re`` does (``a*a*a*a*b`` on a long path takes
exponential time), so these run on RE2 itself. Its default (Perl) syntax is Go's
``regexp.Compile``: ``.`` never matches a newline, ``[^x]`` does, ``^``/``$`` are the ends of
the text, leftmost-first matching, ASCII ``\\b``; ``\\Z`` and backreferences are errors. The one
escape RE2 takes and Go rejects, ``\\C`` (any byte), is rejected here. Texts are Go strings
read as UTF-8: a lone surrogate (an undecodable byte, by ``surrogateescape``) is U+FFFD, as
Go's decoder sees it, one character for one, so positions stay valid.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

import re2

from xarch.errors import InputError

__all__ = ["GoRegexpError", "Match", "Regexp", "compile"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # no "DFA out of memory" lines on stderr: RE2 falls back to its NFA
_OPTIONS.never_capture = True  # spans of the whole match are all the callers use
_OPTIONS.max_mem = 64 << 20  # a 64 KiB .dockerignore line (Go accepts far more than 8 MiB)

# RE2's wording (RegexpStatus::CodeText) -> Go's syntax.ErrorCode
_GO_CODES = {
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
}


class GoRegexpError(InputError):
    """A regexp Go's ``regexp.Compile`` rejects."""

    def __init__(self, code: str, expr: str) -> None:
        # Go's syntax.Error.Error(): "error parsing regexp: " + code + ": `" + expr + "`"
        super().__init__(f"error parsing regexp: {code}: `{expr}`")
        self.code = code
        self.expr = expr


def _go_text(s: str) -> str:
    if s.isascii():
        return s
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in s)


def _scan(src: str) -> tuple[list[int], bool]:
    """Top-level ``$`` positions, and whether the source has something that makes them
    unsure (``\\Q``, ``\\z``, flags). Raises on ``\\C``. Closing a class at its first ``]``
    errs only toward seeing a ``$`` that is not one, so toward "unsure"."""
    ends: list[int] = []
    unsure = in_class = False
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            nxt = src[i + 1 : i + 2]
            if nxt == "C":
                raise GoRegexpError("invalid escape sequence", "\\C")
            if nxt == "Q":  # \Q...\E: literal, a "$" included
                end = src.find("\\E", i + 2)
                i = len(src) if end < 0 else end + 2
                unsure = True
                continue
            unsure = unsure or nxt == "z"
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            ends.append(i)
        elif src.startswith("(?", i):
            unsure = True  # (?m) and the like change what "$" is
        i += 1
    return ends, unsure


def _re2(src: str, shown: str) -> re2._Regexp:
    try:
        return re2.compile(src, _OPTIONS)
    except re2.error as e:
        msg = e.args[0] if e.args else ""
        text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        code, _, arg = text.partition(": ")
        raise GoRegexpError(_GO_CODES.get(code, code), arg or shown) from None


@dataclass(frozen=True, slots=True)
class Match:
    """The span of a match (what the shell lexer needs of ``re.Match``)."""

    string: str
    begin: int
    finish: int

    def start(self) -> int:
        return self.begin

    def end(self) -> int:
        return self.finish

    def span(self) -> tuple[int, int]:
        return self.begin, self.finish

    def group(self, n: int = 0) -> str:
        if n != 0:
            raise IndexError("no such group")
        return self.string[self.begin : self.finish]


class Regexp:
    """A compiled Go regexp: ``match_string`` is Go's ``MatchString``, ``find`` its
    ``FindStringIndex`` from a position (as ``ReplaceAllString`` runs it)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        src = _go_text(pattern)  # text/scanner, which both generators read with, does the same
        ends, unsure = _scan(src)
        self._rx = _re2(src, src)
        # For match_prefixes with "/": a match ending before a "/" or at the end of the text.
        self._prefix_rx: re2._Regexp | None = None
        if not unsure and not ends:
            self._prefix_rx = self._rx  # nothing sees where the text ends (but \b, same at "/")
        elif not unsure and ends == [len(src) - 1]:
            self._prefix_rx = _re2(src[:-1] + "(?:/|$)", src)
        self._memo: tuple[str, bytes, list[int] | None] | None = None

    def __repr__(self) -> str:
        return f"goregexp.compile({self.pattern!r})"

    def match_string(self, s: str) -> bool:
        """Go ``MatchString``: does the regexp match somewhere in ``s``?"""
        return self._rx.search(_go_text(s).encode()) is not None

    def match_prefixes(self, s: str, sep: str | None) -> bool:
        """``match_string`` of ``s`` or, with ``sep``, of any prefix of ``s`` that ends right
        before a ``sep``: a path and all its parent directories."""
        text = _go_text(s)
        if sep is None:
            return self._rx.search(text.encode()) is not None
        if sep == "/" and self._prefix_rx is not None:
            return self._prefix_rx.search(text.encode()) is not None
        ends = [i for i, c in enumerate(text) if c == sep]
        ends.append(len(text))
        return any(self._rx.search(text[:e].encode()) is not None for e in ends)

    def _encoded(self, s: str) -> tuple[bytes, list[int] | None]:
        """``s`` as RE2 reads it, and its character offsets in bytes (None: ASCII, the same);
        kept for the next call, as ``ReplaceAllString`` calls ``find`` once per match."""
        memo = self._memo
        if memo is not None and memo[0] is s:
            return memo[1], memo[2]
        text = _go_text(s)
        data = text.encode()
        offsets = (
            None if len(data) == len(text) else [0, *accumulate(len(c.encode()) for c in text)]
        )
        self._memo = (s, data, offsets)
        return data, offsets

    def find(self, s: str, pos: int = 0) -> Match | None:
        """The leftmost-first match starting at or after ``pos``, assertions seeing all of ``s``."""
        data, offsets = self._encoded(s)
        m = self._rx.search(data, pos if offsets is None else offsets[pos])
        if m is None:
            return None
        a, b = m.span()
        if offsets is not None:
            a, b = bisect_left(offsets, a), bisect_left(offsets, b)
        return Match(s, a, b)

    def fullmatch(self, s: str) -> Match | None:
        return Match(s, 0, len(s)) if self._rx.fullmatch(_go_text(s).encode()) else None


def compile(pattern: str) -> Regexp:
    """Go ``regexp.Compile``; raises :class:`GoRegexpError` when Go would."""
    return Regexp(pattern)
