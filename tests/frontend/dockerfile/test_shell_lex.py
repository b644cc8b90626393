"""Shell-word lexer against BuildKit's vectors (buildkit-shell/) and our own table."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import vectors
from xarch.errors import InputError
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.shell import (
    EnvGetter,
    Lexer,
    ShellExpansionError,
    _convert_shell_pattern_to_regex,
    _reverse_pattern,
    envs_from_slice,
    process_word,
    process_words,
)

# Parametrisation happens at collection time, before fixtures exist: the vectors are read then,
# and helpers.vectors decides for each test what their absence means.
SHELL = "buildkit-shell"
SHELL_DIR = vectors.location(SHELL)
LEXDATA = Path(__file__).resolve().parent / "lexdata"
HAVE_VECTORS = vectors.available(SHELL)
needs_vectors = vectors.needs(SHELL)

ENVVAR_ENVS = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]


def _load_json(name: str) -> Any:
    if not HAVE_VECTORS:
        return None
    return json.loads((SHELL_DIR / name).read_text(encoding="utf-8"))


CASES = _load_json("cases.json")
LEX = _load_json("lex_cases.json")


def _lex_table(prefix: str) -> Any:
    if LEX is None:
        return None
    (key,) = [k for k in LEX if k.startswith(prefix)]
    return LEX[key]


def _ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# --- raw envVarTest / wordsTest, parsed with the exact per-line rules of README.md -------------


def _parse_env_var_test() -> list[tuple[int, str, str, str]]:
    """(line number, platform, input, expected) for platform A/U lines."""
    if not HAVE_VECTORS:
        return []
    out = []
    text = (SHELL_DIR / "envVarTest").read_text(encoding="utf-8")
    for no, raw in enumerate(text.split("\n"), 1):
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"envVarTest:{no}: {raw!r}"
        platform, inp, expected = (f.strip() for f in fields)
        if platform in ("A", "U"):
            out.append((no, platform, inp, expected))
        else:
            assert platform == "W", f"envVarTest:{no}: unknown platform {platform!r}"
    return out


def _parse_words_test() -> list[tuple[int, str, list[str], list[str]]]:
    """(line number, input, envs so far, expected words)."""
    if not HAVE_VECTORS:
        return []
    out = []
    envs: list[str] = []
    text = (SHELL_DIR / "wordsTest").read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for no, raw in enumerate(lines, 1):
        if raw.startswith("#"):
            continue
        if raw.startswith("ENV "):
            envs.append(raw[3:].lstrip(" "))
            continue
        fields = raw.split("|")
        assert len(fields) == 2, f"wordsTest:{no}: {raw!r}"
        out.append((no, fields[0].strip(), list(envs), fields[1].lstrip(" ").split(",")))
    return out


ENV_VAR_LINES = _parse_env_var_test()
WORDS_LINES = _parse_words_test()


@vectors.parametrize(
    SHELL, ("no", "platform", "inp", "expected"), ENV_VAR_LINES, ids=[f"L{c[0]}" for c in ENV_VAR_LINES]
)
def test_env_var_test_file(no: int, platform: str, inp: str, expected: str) -> None:
    env = envs_from_slice(ENVVAR_ENVS)
    if expected == "error":
        with pytest.raises(DockerfileError):
            Lexer("\\").process_word(inp, env)
    else:
        assert Lexer("\\").process_word(inp, env) == expected


@vectors.parametrize(
    SHELL, ("no", "inp", "envs", "expected"), WORDS_LINES, ids=[f"L{c[0]}" for c in WORDS_LINES]
)
def test_words_test_file(no: int, inp: str, envs: list[str], expected: list[str]) -> None:
    try:
        got = Lexer("\\").process_words(inp, envs_from_slice(envs))
    except DockerfileError:
        got = ["error"]
    assert got == expected


# --- normalized cases.json (same vectors, independent parse) ---------------------------------

ENV_CASES = [c for c in CASES["envVarTest"]["cases"] if c["platform"] != "W"] if CASES else []
WORD_CASES = CASES["wordsTest"]["cases"] if CASES else []


@vectors.parametrize(SHELL, "case", ENV_CASES, ids=[f"L{c['line']}" for c in ENV_CASES])
def test_cases_json_env_var(case: dict[str, Any]) -> None:
    env = envs_from_slice(CASES["envVarTest"]["envs"])
    if case.get("expect_error"):
        with pytest.raises(DockerfileError):
            process_word(case["input"], env)
    else:
        assert process_word(case["input"], env) == case["expected"]


@vectors.parametrize(SHELL, "case", WORD_CASES, ids=[f"L{c['line']}" for c in WORD_CASES])
def test_cases_json_words(case: dict[str, Any]) -> None:
    env = envs_from_slice(case["envs"])
    if case.get("expect_error"):
        with pytest.raises(DockerfileError):
            process_words(case["input"], env)
    else:
        assert process_words(case["input"], env) == case["expected_words"]


# --- lex_cases.json: the Go table tests ---------------------------------------------------------

MATCH_CASES = LEX["TestProcessWithMatches"]["cases"] if LEX else []
PLATFORM = LEX["TestProcessWithMatchesPlatform"] if LEX else {"input": "", "cases": []}
MANDATORY = LEX["TestShellParserMandatoryEnvVars"]["cases"] if LEX else []
GETENV = _lex_table("TestGetEnv") or []
CONVERT = _lex_table("TestConvertShellPatternToRegex") or {"valid": {}, "invalid": []}
REVERSE = _lex_table("TestReversePattern") or {}


@vectors.parametrize(SHELL, "case", MATCH_CASES, ids=_ids(len(MATCH_CASES), "m"))
def test_process_with_matches(case: dict[str, Any]) -> None:
    lx = Lexer(LEX["escape_token"])
    if case["expectedErr"]:
        with pytest.raises(DockerfileError):
            lx.process_word_with_matches(case["input"], case["envs"])
        return
    result, matched, unmatched = lx.process_word_with_matches(case["input"], case["envs"])
    assert result == case["expected"]
    assert matched == set(case["matches"])
    assert unmatched == set(case["unmatched"])


@vectors.parametrize(SHELL, "case", PLATFORM["cases"], ids=_ids(len(PLATFORM["cases"]), "p"))
def test_process_with_matches_platform(case: dict[str, Any]) -> None:
    result, _, _ = Lexer("\\").process_word_with_matches(PLATFORM["input"], case["envs"])
    assert result == case["expected"]


@vectors.parametrize(SHELL, "case", MANDATORY, ids=_ids(len(MANDATORY), "r"))
def test_mandatory_env_vars(case: dict[str, Any]) -> None:
    env = envs_from_slice(case["envs"])
    if "error_contains" in case:
        with pytest.raises(DockerfileError) as exc:
            process_word(case["input"], env)
        assert case["error_contains"] in exc.value.message
    else:
        assert process_word(case["input"], env) == case["expected"]


@vectors.parametrize(SHELL, "case", GETENV, ids=_ids(len(GETENV), "g"))
def test_get_env(case: dict[str, Any]) -> None:
    env = envs_from_slice(case["envs"])
    value, _found = env.lookup(case["get"])
    assert value == case["value"]
    assert env.keys() == [e.partition("=")[0] for e in case["envs"]]


# Go's regexp String() returns the source text; the converter only emits constructs
# spelled the same in Python re ("^", ".", ".*", ".*?", "\\" + punctuation), so exact
# equality of the sources is a valid comparison here (checked semantically below too).
@vectors.parametrize(
    SHELL, ("pattern", "regex"), sorted(CONVERT["valid"].items()), ids=_ids(len(CONVERT["valid"]), "v")
)
def test_convert_shell_pattern_to_regex(pattern: str, regex: str) -> None:
    rx = _convert_shell_pattern_to_regex(pattern, True, True)
    assert rx.pattern == regex
    # Semantic check too: the text the pattern spells (escapes resolved, "*" -> "",
    # "?" -> one char) is matched in full.
    sample = _spelled(pattern)
    m = rx.find(sample)
    assert m is not None and m.end() == len(sample)


def _spelled(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append({"*": "", "?": "x"}.get(c, c))
        i += 1
    return "".join(out)


@vectors.parametrize(SHELL, "pattern", CONVERT["invalid"], ids=_ids(len(CONVERT["invalid"]), "i"))
def test_convert_shell_pattern_to_regex_invalid(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid escape"):
        _convert_shell_pattern_to_regex(pattern, True, True)


@vectors.parametrize(
    SHELL, ("pattern", "expected"), sorted(REVERSE.items()), ids=_ids(len(REVERSE), "rev")
)
def test_reverse_pattern(pattern: str, expected: str) -> None:
    assert _reverse_pattern(pattern) == expected


@needs_vectors
def test_table_sizes() -> None:
    """Guard against a parser silently dropping vectors."""
    assert len(ENV_VAR_LINES) == 228  # 230 normalized cases minus 2 Windows-only lines
    assert len(ENV_CASES) == 228
    assert len(WORDS_LINES) == len(WORD_CASES) == 24
    assert len(MATCH_CASES) == 47
    assert len(PLATFORM["cases"]) == 3
    assert len(MANDATORY) == 6
    assert len(GETENV) == 6
    assert (len(CONVERT["valid"]), len(CONVERT["invalid"])) == (4, 3)
    assert len(REVERSE) == 5


def test_convert_semantics() -> None:
    greedy = _convert_shell_pattern_to_regex("a*b", True, True)
    lazy = _convert_shell_pattern_to_regex("a*b", False, True)
    assert greedy.fullmatch("axbxb") is not None
    m = lazy.find("axbxb")
    assert m is not None and m.group(0) == "axb"
    assert _convert_shell_pattern_to_regex("x", True, False).find("ax") is not None
    assert _convert_shell_pattern_to_regex("x", True, True).find("ax") is None
    # Escaped "}" and "/" lose their backslash: they only had to get through ${...}.
    assert _convert_shell_pattern_to_regex("\\}\\/", True, True).pattern == "^\\}/"


# --- our own table -------------------------------------------------------------------------------


def _parse_extra() -> list[tuple[int, str, str, str, list[str]]]:
    envs = list(ENVVAR_ENVS)
    out = []
    text = (LEXDATA / "extra_cases.txt").read_text(encoding="utf-8")
    for no, raw in enumerate(text.split("\n"), 1):
        if raw.startswith("#"):
            continue
        if raw.startswith("ENV "):
            envs.append(raw[3:].lstrip(" "))
            continue
        line = raw.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"extra_cases.txt:{no}: {raw!r}"
        platform, inp, expected = (f.strip() for f in fields)
        assert platform in ("A", "U", "T"), f"extra_cases.txt:{no}: platform {platform!r}"
        out.append((no, platform, inp, expected, list(envs)))
    return out


EXTRA = _parse_extra()


@pytest.mark.parametrize(
    ("no", "platform", "inp", "expected", "envs"), EXTRA, ids=[f"L{c[0]}" for c in EXTRA]
)
def test_extra_cases(no: int, platform: str, inp: str, expected: str, envs: list[str]) -> None:
    lx = Lexer("`" if platform == "T" else "\\")
    env = envs_from_slice(envs)
    if expected == "error":
        with pytest.raises(DockerfileError):
            lx.process_word(inp, env)
    else:
        assert lx.process_word(inp, env) == expected


def test_extra_table_size() -> None:
    assert len(EXTRA) >= 30
    assert sum(1 for c in EXTRA if c[1] == "T") >= 8


# --- API details -------------------------------------------------------------------------------


def test_error_messages_are_buildkits() -> None:
    with pytest.raises(DockerfileError) as exc:
        process_word("${x:?msg}", {})
    assert exc.value.message == 'failed to process "${x:?msg}": x: msg'
    assert isinstance(exc.value, ShellExpansionError)
    assert (exc.value.word, exc.value.reason) == ("${x:?msg}", "x: msg")
    assert isinstance(exc.value, InputError)
    with pytest.raises(DockerfileError, match="x: is not allowed to be unset"):
        process_word("${x?}", {})
    with pytest.raises(DockerfileError, match="x: is not allowed to be empty"):
        process_word("${x:?}", {"x": ""})
    with pytest.raises(DockerfileError, match="matching double-quote"):
        process_word('"abc', {})
    with pytest.raises(DockerfileError, match="matching single-quote"):
        process_word("'abc", {})
    with pytest.raises(DockerfileError, match="bad substitution"):
        process_word("${}", {})
    with pytest.raises(DockerfileError, match=re.escape("syntax error: missing '}'")):
        process_word("${a:-b", {})
    with pytest.raises(DockerfileError, match=re.escape("missing '/' in ${}")):
        process_word("${a/b", {})
    with pytest.raises(
        DockerfileError, match=re.escape("unsupported modifier (:=) in substitution")
    ):
        process_word("${a:=b}", {})
    with pytest.raises(DockerfileError, match=re.escape(r"invalid pattern (\x) in substitution")):
        process_word(r"${a#\x}", {"a": "b"})
    # Go %q quoting of the offending word.
    with pytest.raises(DockerfileError) as exc:
        process_word('"\t\\', {})
    assert exc.value.message.startswith('failed to process "\\"\\t\\\\":')


def test_env_mapping_and_getter_are_equivalent() -> None:
    word = "${A}-${B:-b}-${C+c}-$D"
    mapping = {"A": "1", "C": ""}
    getter = envs_from_slice(["A=1", "C="])
    assert isinstance(getter, EnvGetter)
    lx = Lexer()
    assert lx.process_word_with_matches(word, mapping) == lx.process_word_with_matches(word, getter)
    assert lx.process_word_with_matches(word, mapping) == ("1-b-c-", {"A", "C"}, {"B", "D"})


def test_env_keys_are_case_sensitive() -> None:
    assert process_word("$pwd$PWD", {"PWD": "/x"}) == "/x"


def test_envs_from_slice_duplicates_and_bare_keys() -> None:
    env = envs_from_slice(["a=1", "b", "a=2", "c=x=y"])
    assert env.lookup("a") == ("2", True)
    assert env.lookup("b") == ("", True)
    assert env.lookup("c") == ("x=y", True)
    assert env.lookup("z") == ("", False)
    assert env.keys() == ["a", "b", "a", "c"]


def test_skip_unset_env_keeps_references() -> None:
    lx = Lexer(skip_unset_env=True)
    env = {"SET": "v"}
    assert lx.process_word("$SET $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}", env) == (
        "v $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}"
    )
    assert lx.process_word("${UNSET:?boom}", env) == "${UNSET:?boom}"


def test_raw_quotes_and_raw_escapes() -> None:
    assert Lexer(raw_quotes=True).process_word("'a b'\"$X\"", {"X": "x"}) == "'a b'\"x\""
    assert Lexer(raw_escapes=True).process_word("a\\ b\\$X", {"X": "x"}) == "a\\ b\\$X"
    assert Lexer(raw_escapes=True).process_words("a\\ b c", {}) == ["a\\ b", "c"]


def test_skip_process_quotes() -> None:
    lx = Lexer(skip_process_quotes=True)
    assert lx.process_word("'$X' \"$X\"", {"X": "x"}) == "'x' \"x\""
    assert lx.process_words("'a b'", {}) == ["'a", "b'"]


def test_word_splitting() -> None:
    env = {"V": " a  b ", "E": ""}
    assert process_words("x${V}y", env) == ["x", "a", "b", "y"]
    assert process_words('x"${V}"y', env) == ["x a  b y"]
    assert process_words("''", env) == []  # an empty quoted word disappears, as in BuildKit
    assert process_words("a '' b", env) == ["a", "b"]
    assert process_words("$E", env) == []
    assert process_words("a\\ b\tc\nd", env) == ["a b", "c", "d"]
    # Go's unicode.IsSpace, not Python's str.isspace(): \x1c is not a separator.
    assert process_words("a\x1cb c", env) == ["a\x1cb", "c"]
    assert process_words("a\u3000b", env) == ["a", "b"]


def test_nested_default_keeps_outer_prefix_when_splitting() -> None:
    # Deliberate divergence from the pinned BuildKit commit, whose shared words buffer
    # drops "a" here (["b", "cd"]); see the module docstring.
    assert process_words("a${X:-b c}d", {}) == ["ab", "cd"]


def test_replace_all_uses_go_template_and_empty_match_rules() -> None:
    env = {"V": "abab"}
    # With the escape kept raw, "\$0" reaches Go's ReplaceAllString template: "$0" = match.
    assert process_word("${V//a/<\\$0>}", env) == "<\\a>b<\\a>b"
    # Single replacement is a plain splice, no template expansion.
    assert process_word("${V/a/<\\$0>}", env) == "<\\$0>bab"
    # Empty pattern: Go inserts at every position.
    assert process_word("${V///-}", env) == "-a-b-a-b-"
    # "*" is ".*": Go skips the empty match abutting the first one (Python's re.sub
    # would give "--").
    assert process_word("${V//*/-}", env) == "-"
    assert process_word("${V//b*/-}", env) == "a-"


def test_bom_at_start_is_dropped_like_text_scanner() -> None:
    assert process_word("\ufeffabc", {}) == "abc"


def test_lexer_rejects_bad_escape_token() -> None:
    with pytest.raises(ValueError):
        Lexer("ab")


def test_positional_and_special_parameters() -> None:
    for name in ["1", "9", "10", "@", "*", "#", "?", "-", "$", "!", "0"]:
        assert process_word(f"x${name}y", {}) == "xy"
        assert process_word(f"x${{{name}:-d}}y", {}) == "xdy"


# --- properties ------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
PROP_ENV = {"A": "1", "B": "two words", "E": "", "P": "/usr/bin"}
_SHELL_ALPHABET = st.sampled_from(list("ab$'\"\\`{}:-+?#%/*. \tAPBE0@!x"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=_SHELL_ALPHABET)), st.sampled_from(["\\", "`"]))
def test_process_word_total(word: str, escape: str) -> None:
    lx = Lexer(escape)
    try:
        result, matched, unmatched = lx.process_word_with_matches(word, PROP_ENV)
    except DockerfileError as e:
        assert str(e)
        return
    assert isinstance(result, str)
    assert matched <= set(PROP_ENV)
    assert not unmatched & set(PROP_ENV)
    words = lx.process_words(word, PROP_ENV)
    assert all(isinstance(w, str) and w for w in words)


_SPECIAL = set("$'\"\\`\ufeff") | {" ", "\t", "\n", "\r", "\v", "\f", "\x85", "\xa0"}
_PLAIN = st.text(
    alphabet=st.characters(
        blacklist_characters=sorted(_SPECIAL),
        blacklist_categories=("Zs", "Zl", "Zp", "Cs"),
    ),
    min_size=1,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_PLAIN)
def test_plain_word_is_identity(word: str) -> None:
    assert process_words(word, PROP_ENV) == [word]
    assert process_word(word, PROP_ENV) == word
    assert Lexer("`").process_words(word, PROP_ENV) == [word]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters=["'"])))
def test_single_quotes_are_literal(body: str) -> None:
    assert process_word(f"'{body}'", PROP_ENV) == body
    assert process_word(f"x'{body}'y", PROP_ENV) == f"x{body}y"
