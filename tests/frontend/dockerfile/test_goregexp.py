"""The Go regexp shim over google-re2: Go's semantics (where Python's ``re`` differs too) and
Go's errors, the same answers as ``re`` where the dialects agree, parent matching in one
search equal to one search per prefix, spans equal to ``re``'s leftmost-first ones for the
shell lexer's regexps (in characters, whatever the text's UTF-8 width), and linear time."""

from __future__ import annotations

import os
import re
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xarch.errors import InputError
from xarch.frontend.dockerfile import goregexp
from xarch.frontend.dockerfile.dockerignore import _compile
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.shell import _convert_shell_pattern_to_regex

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def m(src: str, text: str) -> bool:
    return goregexp.compile(src).match_string(text)


# --- Go's semantics, including where Python's re answers differently ------------------------


@pytest.mark.parametrize(
    ("src", "text", "want"),
    [
        ("^a$", "a\n", False),  # "$" is end of text, not "before a final newline"
        ("^a.$", "a\n", False),  # "." never matches a newline
        ("^a[^/]$", "a\n", True),  # a negated class does (ClassNL)
        ("^\\B$", "", True),  # no word boundary in the empty text: Python says no
        ("^a\\b", "a-", True),
        ("^a\\B", "ab", True),
        ("^é\\b", "é", False),  # \b is ASCII in Go
        ("^\\Qa.b[^/]*$", "a.b[^/]*$", True),  # \Q quotes to the end, "$" included
        ("^\\Qa.b[^/]*$", "axb", False),
        ("^\\Qa*\\E[^/]*$", "a*bc", True),
        ("^[[:alpha:]]+$", "abc", True),  # POSIX classes (Python reads "[[:" literally)
        ("^[[:^digit:]]$", "7", False),
        ("^[[:^digit:]]$", "x", True),
        ("^\\pL\\pN$", "ж٣", True),  # Unicode groups
        ("^\\PL$", "ж", False),
        ("^\\x41\\101\\0$", "AA\x00", True),  # hex and octal escapes
        ("^\\x{1F600}$", "\U0001f600", True),
        ("^[\\d\\W]$", "-", True),
        ("^\\d$", "٣", False),  # \d is ASCII
        ("^a*?b$", "aab", True),  # non-greedy: the same language
        ("a", "bab", True),  # unanchored search
        ("^b", "ab", False),
        ("a^b", "ab", False),  # "^" in the middle never holds past the start
        ("^a\\z", "a", True),
        ("^(.*/)?x$", "p/q/x", True),
        ("^(.*/)?x$", "x", True),
        ("^(.*/)?x$", "p\n/x", False),  # the group's "." does not cross a newline
        ("^(.*\\\\)?x$", "p\\x", True),  # the Windows form of the group
        # the rest of Go's syntax (no generator emits it, RE2 has it all)
        ("^a|b$", "xb", True),
        ("^(ab)+$", "abab", True),
        ("^a{2}$", "aa", True),
        ("^\\p{Greek}$", "λ", True),
        ("(?m)^b$", "a\nb\nc", True),
    ],
)
def test_go_semantics(src: str, text: str, want: bool) -> None:
    assert m(src, text) is want


@pytest.mark.parametrize(
    ("src", "code"),
    [
        ("^a\\Z$", "invalid escape sequence"),  # Python's \Z is not RE2's
        ("^[\\b]$", "invalid escape sequence"),  # Python's backspace in a class
        ("^\\1$", "invalid escape sequence"),  # no backreferences
        ("^\\8$", "invalid escape sequence"),
        ("^\\u0041$", "invalid escape sequence"),
        ("^\\C$", "invalid escape sequence"),
        ("^\\x4$", "invalid escape sequence"),
        ("^[z-a]$", "invalid character class range"),
        ("^[[:nope:]]$", "invalid character class range"),
        ("^\\pQ$", "invalid character class range"),
        ("^[a", "missing closing ]"),
        ("^a**", "invalid nested repetition operator"),
        ("*a", "missing argument to repetition operator"),
        ("^a\\", "trailing backslash at end of expression"),
        ("^(.*/$", "missing closing )"),
        ("^a)$", "unexpected )"),
        ("^[\\C]$", "invalid escape sequence"),
        ("^\\Qa\\E\\C$", "invalid escape sequence"),  # \C: any byte in RE2, an error in Go
        ("^a\\E$", "invalid escape sequence"),
        ("^a{1001}$", "invalid repeat count"),  # RE2's limit is Go's
        ("^(?z)$", "invalid or unsupported Perl syntax"),
    ],
)
def test_compile_errors(src: str, code: str) -> None:
    with pytest.raises(goregexp.GoRegexpError) as exc:
        goregexp.compile(src)
    assert code in str(exc.value)
    assert isinstance(exc.value, InputError)
    assert "\n" not in str(exc.value)


def test_error_wording_is_go_s() -> None:
    # syntax.Error.Error(): "error parsing regexp: " + code + ": `" + expr + "`"
    with pytest.raises(goregexp.GoRegexpError) as exc:
        goregexp.compile("^[a")
    assert str(exc.value) == "error parsing regexp: missing closing ]: `[a`"
    assert (exc.value.code, exc.value.expr) == ("missing closing ]", "[a")
    with pytest.raises(goregexp.GoRegexpError) as exc:
        goregexp.compile("^\\C$")
    assert str(exc.value) == "error parsing regexp: invalid escape sequence: `\\C`"


def test_quoted_backslash_c_is_literal() -> None:
    assert m("^\\Q\\C\\E$", "\\C")
    assert m("^\\\\C$", "\\C")  # an escaped backslash, then C


def test_literal_brace_is_a_literal() -> None:
    assert m("^a{$", "a{") and m("^a{x}$", "a{x}")


def test_invalid_utf8_reads_as_rune_error() -> None:
    # surrogateescape'd bytes are Go's U+FFFD, one per byte
    assert m("^\ufffd\ufffd$", "\udcff\udcfe")
    assert m("^[^/]$", "\udc80")
    assert goregexp.compile("^a\udcff$").match_string("a\udcfe")  # text/scanner: the same
    assert goregexp.compile("^\udcff/").match_prefixes("\udcfe/x", "/")


def test_spans_are_in_characters() -> None:
    rx = goregexp.compile("b.")
    text = "é\udcff\U0001f600bé b\udcffx"
    got = rx.find(text)
    assert got is not None and got.span() == (3, 5) and got.group() == "bé"
    again = rx.find(text, 4)
    assert again is not None and again.span() == (6, 8) and again.group() == "b\udcff"
    assert rx.find(text, 7) is None
    assert goregexp.compile("é.").fullmatch("é\udcff") is not None


def test_find_from_a_position_sees_the_whole_text() -> None:
    # Go's ReplaceAll runs from pos with the text before it as context: "^" and "\b" see it
    assert goregexp.compile("^b").find("ab", 1) is None
    assert goregexp.compile("\\bb").find("ab", 1) is None
    hit = goregexp.compile("\\Bb").find("ab", 1)
    assert hit is not None and hit.span() == (1, 2)


# --- agreement with re where the dialects agree ------------------------------------------------

_PIECES = st.sampled_from(
    [
        *"ab/*?[]^-.!x\\",
        "\\*",
        "\\?",
        "\\[",
        "\\]",
        "\\.",
        "\\n",
        "\\d",
        "\\w",
        "\\s",
        "\\A",
        "\\z",
        "\\x41",
        "\\0",
        "\\\\",
        "**/",
        "[!a]",
        "[a-c]",
        "[^/]",
    ]
)
_PATTERNS = st.lists(_PIECES, min_size=1, max_size=8).map("".join)
_TEXTS = st.text(alphabet=st.sampled_from(list("ab/x.-A_\n[]*?\\")), max_size=10)


def _reference(go_source: str) -> re.Pattern[str] | None:
    """Python's re for the same source, where the dialects agree: Go's end-of-text "$" and
    "\\z" are Python's "\\Z"; re.ASCII makes \\d\\w\\s\\b ASCII as in RE2."""
    assert go_source.endswith("$")
    py = go_source[:-1].replace("\\z", "\\Z") + "\\Z"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(py, re.ASCII)
    except re.error:
        return None


@SETTINGS
@given(_PATTERNS, st.lists(_TEXTS, min_size=1, max_size=6))
def test_agrees_with_re_on_dockerignore_regexps(pattern: str, texts: list[str]) -> None:
    try:
        _, source, rx = _compile(pattern)
    except DockerfileError:
        return
    if rx is None or "\\B" in source:  # \B: Python never matches it on empty text
        return
    ref = _reference(source)
    if ref is None:
        return  # Python rejects it; Go's verdict is the table above's business
    for text in texts:
        assert rx.match_string(text) == (ref.search(text) is not None), (source, text)
        # every parent directory at once == each one separately
        ends = [i for i, c in enumerate(text) if c == "/"] + [len(text)]
        want = any(ref.search(text[:e]) is not None for e in ends)
        assert rx.match_prefixes(text, "/") == want, (source, text)


_ANY_PIECES = st.sampled_from(
    [
        *"ab/$^|.*?",
        "[$]",
        "[]$]",
        "[[:alpha:]$]",
        "\\$",
        "\\\\",
        "\\z",
        "\\b",
        "\\B",
        "\\Qa$",
        "\\E",
        "(?m)",
        "(?s)",
        "(",
        ")",
        "[^/]*",
        "(.*/)?",
        "a*?",
    ]
)


@SETTINGS
@given(st.lists(_ANY_PIECES, min_size=1, max_size=8).map("".join), st.lists(_TEXTS, max_size=6))
def test_match_prefixes_equals_one_search_per_prefix(source: str, texts: list[str]) -> None:
    """One search of the rewritten regexp (the trailing "$" as "(?:/|$)") or of the regexp
    itself (no "$") is the search of every prefix, whatever else the source holds."""
    try:
        rx = goregexp.compile(source)
    except goregexp.GoRegexpError:
        return
    for text in texts:
        ends = [i for i, c in enumerate(text) if c == "/"] + [len(text)]
        want = any(rx.match_string(text[:e]) for e in ends)
        assert rx.match_prefixes(text, "/") == want, (source, text)
        assert rx.match_prefixes(text, None) == rx.match_string(text)
        assert rx.match_prefixes(text, "b") == any(
            rx.match_string(text[:e])
            for e in [i for i, c in enumerate(text) if c == "b"] + [len(text)]
        )


_SHELL_PATTERNS = st.lists(
    st.sampled_from(["a", "b", "*", "?", "\\*", "\\?", "\\\\", ".", "\n", "x", "["]), max_size=7
).map("".join)
_VALUES = st.text(alphabet=st.sampled_from(list("abx.\n*?\\[é\U0001f600")), max_size=12)


@SETTINGS
@given(_SHELL_PATTERNS, _VALUES, st.booleans(), st.booleans(), st.integers(0, 12))
def test_spans_equal_re_leftmost_first(
    pattern: str, value: str, greedy: bool, anchored: bool, pos: int
) -> None:
    rx = _convert_shell_pattern_to_regex(pattern, greedy, anchored)
    ref = re.compile(rx.pattern)
    pos = min(pos, len(value))
    want = ref.search(value, pos)
    got = rx.find(value, pos)
    assert (got.span() if got else None) == (want.span() if want else None), (rx.pattern, value)
    full = rx.fullmatch(value)
    assert (full is not None) == (ref.fullmatch(value) is not None)


# --- linear time ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("src", "text"),
    [
        ("^" + "[^/]*a" * 8 + "[^/]*b$", "a" * 4096),
        ("^" + "(.*/)?" * 9 + "[^/]*a$", "/".join("a" * 2048) + "b"),
        ("^" + "a?" * 64 + "a" * 64 + "$", "a" * 64),  # the textbook exponential case
        ("^" + "[a-z]*" * 3000 + "b$", "a" * 4096),
        ("^" + "\\b[^/]*" * 300 + "b$", "a" * 4096),
        ("^" + "(.*/)?" * 200 + "[^/]*b$", "/".join("a" * 2048)),
        ("^" + "[^/]*a" * 1000 + "b$", "a" * 4096),  # a DFA state per character
        ("^" + "(.*/)?" * 9 + "[^/]*a\\z$", "/".join("a" * 512) + "b"),  # "\z": per prefix
    ],
    ids=[
        "stars",
        "groups",
        "optional",
        "huge",
        "word-boundaries",
        "many-groups",
        "dfa-states",
        "per-prefix",
    ],
)
def test_hostile_regexps_are_linear(src: str, text: str) -> None:
    rx = goregexp.compile(src)
    t = time.perf_counter()
    rx.match_string(text)
    rx.match_prefixes(text, "/")
    assert time.perf_counter() - t < 1.0


@pytest.mark.timeout(60)
def test_dfa_out_of_memory_is_quiet_and_right(capfd: pytest.CaptureFixture[str]) -> None:
    # the 60 KiB .dockerignore line: RE2's DFA outgrows its budget, its NFA answers
    rx = goregexp.compile("^" + "[^/]*a" * 30000 + "b$")
    assert rx.match_string("a" * 4096) is False
    assert capfd.readouterr().err == ""  # RE2 logs "DFA out of memory" unless told not to


def test_a_64_kib_line_compiles() -> None:
    # Go takes a regexp of a 64 KiB .dockerignore line; RE2's default 8 MiB budget would not
    rx = goregexp.compile("^" + "[^/]" * 65000 + "$")
    assert rx.match_string("x" * 65000) and not rx.match_string("x" * 64999)
