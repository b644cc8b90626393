"""Words built to hurt the shell lexer: ``${...}`` nested far deeper than Python's recursion
limit (BuildKit's Go recursion has no such limit, so neither may we), and ``${v#pat}``-style
patterns that make a backtracking regex exponential (BuildKit's are Go RE2, linear)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.shell import Lexer, ShellExpansionError, process_word

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
DEEP = 10_000
ENV = {"set": "v", "empty": ""}


def _nest(template: str, inner: str, depth: int = DEEP) -> str:
    """``template`` ("${a:-%s}") wrapped ``depth`` times around ``inner``, built linearly."""
    head, tail = template.split("%s")
    return head * depth + inner + tail * depth


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("template", "inner", "expected"),
    [
        ("${unset:-%s}", "x", "x"),  # default, all the way down
        ("${unset-%s}", "x", "x"),
        ("${set:+%s}", "x", "x"),  # alternative value, all the way down
        ("${set:-%s}", "x", "v"),  # the outermost is set: the rest is parsed, then dropped
        ("${empty:-%s}", "x", "x"),
        ("${empty-%s}", "x", ""),
        ('"${unset:-%s}"', "x", "x"),  # double quotes at every level
        ("${unset:-'a'%s}", "x", "a" * DEEP + "x"),
        ("${set#%s}", "v", "v"),  # nested in patterns: "" and "v" alternate, even depth
        ("${set/%s/r}", "v", "v"),
    ],
)
def test_deep_nesting_expands(template: str, inner: str, expected: str) -> None:
    assert process_word(_nest(template, inner), ENV) == expected


@pytest.mark.timeout(120)
def test_deep_nesting_errors_are_one_line() -> None:
    word = "${unset:-" * DEEP + "x" + "}" * (DEEP - 1)  # one "}" short
    with pytest.raises(ShellExpansionError) as exc:
        process_word(word, ENV)
    assert exc.value.reason == "syntax error: missing '}'"
    required = _nest("${unset:-%s}", "${req:?needed}")
    with pytest.raises(ShellExpansionError) as exc:
        process_word(required, ENV)
    assert exc.value.reason == "req: needed"


@pytest.mark.timeout(120)
def test_deep_nesting_in_process_words_and_options() -> None:
    word = _nest("${unset:-%s}", "a b")
    assert Lexer().process_words(word, ENV) == ["a", "b"]
    assert Lexer("`").process_word(word, ENV) == "a b"
    kept = Lexer(skip_unset_env=True).process_word(_nest("${unset:-%s}", "x", 3000), ENV)
    assert kept == _nest("${unset:-%s}", "x", 3000)  # unset names are kept verbatim


@pytest.mark.timeout(120)
def test_parser_heredoc_line_with_deep_nesting() -> None:
    # The parser lexes a heredoc line itself (its own word lexer): the same bound applies.
    line = "RUN <<EOF echo " + _nest("${a:-%s}", "x", 6000)  # inside the 64 KiB line limit
    result = parse(f"FROM scratch\n{line}\nhello\nEOF\n")
    run = result.ast.children[1]
    assert run.heredocs and run.heredocs[0].content == "hello\n"


# --- a model of ${...} to check nesting against, at depth -------------------------------------


@dataclass(frozen=True)
class _Expr:
    name: str  # "set", "empty" or "unset"
    op: str  # ":-", "-", ":+", "+"
    word: tuple[str | _Expr, ...]

    def render(self) -> str:
        inner = "".join(w if isinstance(w, str) else w.render() for w in self.word)
        return "${" + self.name + self.op + inner + "}"

    def value(self) -> str:
        inner = "".join(w if isinstance(w, str) else w.value() for w in self.word)
        found = self.name in ENV
        v = ENV.get(self.name, "")
        empty = not found or (self.op.startswith(":") and v == "")
        if self.op.endswith("-"):
            return inner if empty else v
        return "" if empty else inner


_LITERAL = st.text(alphabet="abc xyz", min_size=1, max_size=3)
_EXPR = st.recursive(
    st.builds(_Expr, st.sampled_from(sorted([*ENV, "unset"])), st.sampled_from([":-", "-", ":+", "+"]),
              st.lists(_LITERAL, max_size=2).map(tuple)),
    lambda children: st.builds(
        _Expr,
        st.sampled_from(sorted([*ENV, "unset"])),
        st.sampled_from([":-", "-", ":+", "+"]),
        st.lists(children | _LITERAL, max_size=3).map(tuple),
    ),
    max_leaves=12,
)


@pytest.mark.timeout(600)
@settings(max_examples=max(10, EXAMPLES // 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_EXPR, st.integers(1500, 3000))
def test_nested_expansion_matches_the_model_at_depth(expr: _Expr, depth: int) -> None:
    # the random expression, at the bottom of a chain deeper than the recursion limit
    word = _nest("${unset:-%s}", expr.render(), depth)
    assert process_word(word, ENV) == expr.value()


# --- patterns: linear, not backtracking ---------------------------------------------------------

# ${v OP pattern}: the pattern is a Go regexp; each of these makes a backtracking matcher try
# every way of splitting 4 KiB of "a" between six stars.
HOSTILE = {
    "#": "*a*a*a*a*a*a*b",
    "##": "*a*a*a*a*a*a*b",
    "%": "b*a*a*a*a*a*a*",  # suffixes match the reversed pattern against the reversed value
    "%%": "b*a*a*a*a*a*a*",
    "/": "a*a*a*a*a*a*b",
    "//": "a*a*a*a*a*a*b",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("op", "pattern"), list(HOSTILE.items()), ids=list(HOSTILE))
def test_hostile_substitution_pattern_is_fast(op: str, pattern: str) -> None:
    value = "a" * 4096
    repl = "/r" if op.startswith("/") else ""
    t = time.perf_counter()
    assert process_word("${v" + op + pattern + repl + "}", {"v": value}) == value  # no match
    # and the many-matches case stays linear too (one start table per value)
    many, want = {"#": ("${v##*a}", ""), "%": ("${v%%a*}", ""), "/": ("${v//a/r}", "r" * 4096)}[
        op[0]
    ]
    assert process_word(many, {"v": value}) == want
    assert time.perf_counter() - t < 1.0
