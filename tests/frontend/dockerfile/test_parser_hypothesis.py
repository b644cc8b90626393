"""Property tests: any input either parses or raises DockerfileError, and dumps are stable.

CI can raise the example count with XARCH_HYPOTHESIS_EXAMPLES=10000.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xarch.frontend.dockerfile._line_parsers import (
    _extract_flags_bytes,
    _extract_flags_slow,
    go_quote,
)
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import ParseResult, dump, parse

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_KEYWORDS = [
    "FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "LABEL", "ARG", "ONBUILD", "HEALTHCHECK",
    "EXPOSE", "VOLUME", "USER", "WORKDIR", "SHELL", "STOPSIGNAL", "MAINTAINER", "ENTRYPOINT",
    "from", "Run", "BOGUS", "#", "# escape=`", "# syntax=x", "# check=skip=all", "",
]  # fmt: skip
_PIECES = [
    " ", "\t", "\\", "`", "'", '"', "=", "--", "--mount=type=cache,target=/x", "<<",
    "<<EOF", "<<-EOF", "<<'EOF'", "EOF", "\tEOF", "[", "]", ",", '"a"', "[\"a\", \"b\"]",
    "$x", "${x:-y}", "a", "b c", "♥", "\x00", "\r", "\u00a0", "\x85", "CMD", "NONE", "1",
]  # fmt: skip

_line = st.builds(
    lambda kw, parts: (kw + " " if kw else "") + "".join(parts),
    st.sampled_from(_KEYWORDS),
    st.lists(st.sampled_from(_PIECES), max_size=8),
)
# Dockerfile-shaped text, biased toward the constructs that have special rules.
dockerfile_text = st.lists(_line, max_size=12).map("\n".join)
_line_endings = st.sampled_from(["\n", "\r\n", ""])


def _check(data: bytes | str) -> ParseResult | None:
    try:
        result = parse(data)
    except DockerfileError as e:
        text = str(e)
        assert "\n" not in text
        assert text.startswith("Dockerfile")
        return None
    assert isinstance(result, ParseResult)
    return result


def _check_invariants(data: bytes | str, result: ParseResult) -> None:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    n_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
    root = result.ast
    assert root.children
    assert 1 <= root.start_line <= root.end_line <= n_lines
    prev_end = 0
    for child in root.children:
        assert prev_end < child.start_line <= child.end_line <= n_lines
        prev_end = child.end_line
    out = dump(result)
    assert out.endswith("\n")
    assert out.count("\n") >= len(root.children)
    out.encode("utf-8")  # always valid UTF-8: invalid bytes only ever appear quoted
    assert dump(result) == out  # dumping is pure
    assert result.escape_token in ("\\", "`")
    for w in result.warnings:
        assert 1 <= w.line <= n_lines


@SETTINGS
@given(st.binary(max_size=400))
@example(b"\xef\xbb\xbf")
@example(b"\\")
@example(b"ONBUILD")
@example(b"\xff\xfe")
def test_arbitrary_bytes(data: bytes) -> None:
    result = _check(data)
    if result is not None:
        _check_invariants(data, result)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(data: str) -> None:
    result = _check(data)
    if result is not None:
        _check_invariants(data, result)


@SETTINGS
@given(dockerfile_text, _line_endings)
def test_dockerfile_shaped_text(text: str, ending: str) -> None:
    data = text.replace("\n", ending if ending else "\n")
    result = _check(data)
    if result is not None:
        _check_invariants(data, result)
        # Parsing is deterministic and independent of str/bytes input.
        again = parse(data.encode("utf-8", "surrogateescape"))
        assert dump(again) == dump(result)
        assert [w.short for w in again.warnings] == [w.short for w in result.warnings]


@SETTINGS
@given(dockerfile_text)
def test_crlf_does_not_change_the_tree(text: str) -> None:
    # CRLF only differs from LF in heredoc bodies (kept raw); without heredoc markers the
    # dumped tree is identical, as BuildKit trims \r\n from every scanned line.
    if "<<" in text or "\r" in text:
        return
    lf = _check(text + "\n")
    crlf = _check(text.replace("\n", "\r\n") + "\r\n")
    assert (lf is None) == (crlf is None)
    if lf is not None and crlf is not None:
        assert dump(lf) == dump(crlf)


@SETTINGS
@given(st.binary(max_size=80))
def test_flag_fast_path_equals_byte_loop(data: bytes) -> None:
    line = b"--" + data
    assert _extract_flags_bytes(line) == _extract_flags_slow(line)


@SETTINGS
@given(st.text())
def test_go_quote_shape(s: str) -> None:
    q = go_quote(s)
    assert q.startswith('"') and q.endswith('"')
    assert "\n" not in q and "\r" not in q
    q.encode("utf-8")
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        assert q == f'"{s}"'
