""".dockerignore matching against moby/patternmatcher's vectors, plus file lookup and walking."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import vectors
from xarch.errors import InputError
from xarch.frontend.dockerfile.dockerignore import (
    BadPatternError,
    MatchInfo,
    PatternMatcher,
    _compile,
    _go_dir,
    filepath_match,
    go_clean,
    iter_context,
    load_dockerignore,
    match,
    matches,
    matches_or_parent_matches,
    read_ignore_file,
)
from xarch.frontend.dockerfile.errors import DockerfileError

# Needed at collection time (parametrize), so read at import; helpers.vectors decides for each
# test what their absence means.
PATTERNS = "patternmatcher/cases.json"
CASES_FILE = vectors.location(PATTERNS)
HAVE_VECTORS = vectors.available(PATTERNS)
needs_vectors = vectors.needs(PATTERNS)
D: Any = json.loads(CASES_FILE.read_text(encoding="utf-8")) if HAVE_VECTORS else None


def _get(*keys: str, default: Any = ()) -> Any:
    node = D
    for k in keys:
        if node is None:
            return default
        if k.endswith("*"):
            (k,) = [x for x in node if x.startswith(k[:-1])]
        node = node[k]
    return node


SINGLE = list(_get("TestMatches", "single_pattern"))
SINGLE_UNIX = list(_get("TestMatches", "single_pattern_non_windows_only"))
MULTI = list(_get("TestMatches", "multi_pattern"))
FP_MATCH = list(_get("TestMatch_filepath_Match_style", "cases"))
SIMPLE = list(_get("simple_tests_package_Matches"))
CLEAN_NEW = list(_get("TestCleanPatterns_New"))
COMPILE = list(_get("TestCompile_internal", "cases"))
READALL = list(_get("ignorefile_ReadAll", "cases"))
MALFORMED: Any = _get(
    "TestMatchesOrParentMatchesMalformedPatternDoesNotPanicOnRepeatedCall", default=None
)
SCENARIO: Any = _get("buildkit_integration_dockerignore_scenario*", default=None)


# --- the four ways upstream's TestMatches evaluates a case ------------------------------------


def _ancestors(path: str) -> list[str]:
    """Ancestor dir prefixes the way upstream's test walks them (filepath.Dir + Split)."""
    parent = _go_dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


def _or_parent(pm: PatternMatcher, path: str) -> bool:
    return pm.matches(path)


def _using_parent_result(pm: PatternMatcher, path: str) -> bool:
    parent_matched = False
    for anc in _ancestors(path):
        parent_matched = pm.matches_using_parent_result(anc, parent_matched)
    return pm.matches_using_parent_result(path, parent_matched)


def _using_parent_results(pm: PatternMatcher, path: str) -> bool:
    info = MatchInfo()
    for anc in _ancestors(path):
        _, info = pm.matches_using_parent_results(anc, info)
    return pm.matches_using_parent_results(path, info)[0]


def _using_parent_results_empty(pm: PatternMatcher, path: str) -> bool:
    return pm.matches_using_parent_results(path, MatchInfo())[0]


SINGLE_FUNCS = {
    "MatchesOrParentMatches": _or_parent,
    "MatchesUsingParentResult": _using_parent_result,
    "MatchesUsingParentResults": _using_parent_results,
    "MatchesUsingParentResults_empty": _using_parent_results_empty,
}
MULTI_FUNCS = {k: v for k, v in SINGLE_FUNCS.items() if k != "MatchesUsingParentResult"}


def _single_params() -> list[Any]:
    out = []
    for group, cases in (("single", SINGLE), ("unix", SINGLE_UNIX)):
        for i, c in enumerate(cases):
            for fname in SINGLE_FUNCS:
                out.append(pytest.param(c, fname, id=f"{group}{i}-{fname}"))
    return out


@vectors.parametrize(PATTERNS, ("case", "fname"), _single_params())
def test_matches_single_pattern(case: dict[str, Any], fname: str) -> None:
    pm = PatternMatcher([case["pattern"]])
    assert SINGLE_FUNCS[fname](pm, case["path"]) is case["match"]


@vectors.parametrize(
    PATTERNS, ("case", "fname"),
    [pytest.param(c, f, id=f"multi{i}-{f}") for i, c in enumerate(MULTI) for f in MULTI_FUNCS],
)
def test_matches_multi_pattern(case: dict[str, Any], fname: str) -> None:
    pm = PatternMatcher(case["patterns"])
    assert MULTI_FUNCS[fname](pm, case["path"]) is case["match"]


@vectors.parametrize(PATTERNS, "case", FP_MATCH, ids=[f"m{i}" for i in range(len(FP_MATCH))])
def test_match_filepath_match_style(case: dict[str, Any]) -> None:
    if case["error"]:
        with pytest.raises(BadPatternError):
            match(case["pattern"], case["path"])
    else:
        assert match(case["pattern"], case["path"]) is case["match"]


@vectors.parametrize(PATTERNS, "case", SIMPLE, ids=[c["name"] for c in SIMPLE])
def test_package_matches(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(DockerfileError):
            matches(case["path"], case["patterns"])
    else:
        assert matches(case["path"], case["patterns"]) is case["match"]


@vectors.parametrize(PATTERNS, "case", CLEAN_NEW, ids=[f"new{i}" for i in range(len(CLEAN_NEW))])
def test_clean_patterns_new(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(DockerfileError, match='illegal exclusion pattern: "!"'):
            PatternMatcher(case["patterns"])
        return
    pm = PatternMatcher(case["patterns"])
    if "len_Patterns" in case:
        assert len(pm.patterns) == case["len_Patterns"]
    if "Exclusions" in case:
        assert pm.exclusions is case["Exclusions"]


@needs_vectors
def test_malformed_pattern_errors_on_every_call() -> None:
    pm = PatternMatcher(MALFORMED["patterns"])  # New() accepts it...
    for _ in range(2):  # ...but every match reports ErrBadPattern
        with pytest.raises(BadPatternError):
            pm.matches("x")


@vectors.parametrize(PATTERNS, "case", COMPILE, ids=[c["pattern"] for c in COMPILE])
def test_compile_internal(case: dict[str, Any]) -> None:
    cleaned = go_clean(case["pattern"])
    mt, src, rx = _compile(cleaned)
    assert mt.value == case["matchType"]
    # Go's regexp String() is the source text; we keep that text verbatim.
    assert src == case["regexp_slash"]
    assert (rx is None) == (case["regexp_slash"] == "")
    mt_w, src_w, _ = _compile(cleaned.replace("/", "\\"), "\\")
    assert mt_w.value == case["matchType"]
    assert src_w == case["regexp_backslash"]


@vectors.parametrize(PATTERNS, "case", READALL, ids=[f"readall{i}" for i in range(len(READALL))])
def test_ignorefile_read_all(case: dict[str, Any]) -> None:
    data = case["input"] if case["input"] is not None else b""
    assert read_ignore_file(data) == case["expected"]


@needs_vectors
def test_buildkit_dockerignore_scenario(tmp_path: Path) -> None:
    for name in SCENARIO["context_files"]:
        (tmp_path / name).write_text("x")
    (tmp_path / ".dockerignore").write_text(SCENARIO["dockerignore"])
    (tmp_path / "Dockerfile").write_text(SCENARIO["dockerfile"])
    pm = PatternMatcher(load_dockerignore(tmp_path, "Dockerfile"))
    kept = {p for p, _ in iter_context(tmp_path, pm)}
    assert kept == set(SCENARIO["present_after_COPY"])
    assert not kept & set(SCENARIO["absent_after_COPY"])


def test_buildkit_dockerignore_invalid(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("!\n")
    with pytest.raises(DockerfileError) as exc:
        PatternMatcher(load_dockerignore(tmp_path))
    assert isinstance(exc.value, InputError)
    assert ".dockerignore" in str(exc.value)


@needs_vectors
def test_table_sizes() -> None:
    assert (len(SINGLE), len(SINGLE_UNIX), len(MULTI)) == (67, 1, 4)
    assert len(FP_MATCH) == 54
    assert len(SIMPLE) == 11
    assert len(CLEAN_NEW) == 6
    assert len(COMPILE) == 21
    assert len(READALL) == 2
    assert (
        len(SINGLE) + len(SINGLE_UNIX) + len(MULTI) + len(FP_MATCH) + len(SIMPLE) + len(READALL)
        == 139
    )


# --- Go helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("", "."),
        (".", "."),
        ("a/", "a"),
        ("//a//b/", "/a/b"),
        ("a/./b/../c", "a/c"),
        ("../../a", "../../a"),
        ("/../a", "/a"),
        ("a/..", "."),
        ("/", "/"),
    ],
)
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


def test_filepath_match_is_gos() -> None:
    assert filepath_match("a*", "abc")
    assert not filepath_match("a*", "ab/c")  # unlike the pattern matcher, no parent logic
    assert filepath_match("a\\*b", "a*b")
    assert filepath_match("[a-c]?", "bx")
    assert not filepath_match("a", "b")
    for bad in ["[", "a[", "[]a]", "[-]", "\\", "[a-b-c]", "a[\\"]:
        with pytest.raises(BadPatternError):
            filepath_match(bad, "a")
    # A malformed tail is reported even when the head already fails.
    with pytest.raises(BadPatternError):
        filepath_match("x*[", "abc")


# --- ReadAll details ----------------------------------------------------------------------------


def test_read_ignore_file_details() -> None:
    data = b"\xef\xbb\xbf# bom then comment\r\n  # not a comment  \r\n/\n!  /a/../b/ \nc\\\n\t\n"
    assert read_ignore_file(data) == ["# not a comment", "/", "!b", "c\\"]
    assert read_ignore_file("") == []
    assert read_ignore_file("a\nb") == ["a", "b"]
    with pytest.raises(DockerfileError, match="token too long"):
        read_ignore_file("a\n" + "x" * 70_000)


# --- BuildKit file lookup -----------------------------------------------------------------------


def test_load_dockerignore_precedence(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("from-context\n")
    sub = tmp_path / "build"
    sub.mkdir()
    (sub / "app.Dockerfile").write_text("FROM scratch\n")
    assert load_dockerignore(tmp_path) == ["from-context"]
    assert load_dockerignore(tmp_path, "build/app.Dockerfile") == ["from-context"]
    (sub / "app.Dockerfile.dockerignore").write_text("from-dockerfile\n")
    assert load_dockerignore(tmp_path, "build/app.Dockerfile") == ["from-dockerfile"]
    assert load_dockerignore(tmp_path, str(sub / "app.Dockerfile")) == ["from-dockerfile"]
    assert load_dockerignore(tmp_path, "Dockerfile") == ["from-context"]
    (tmp_path / ".dockerignore").unlink()
    assert load_dockerignore(tmp_path) == []


def test_load_dockerignore_refuses_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("secret\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").symlink_to(outside)
    with pytest.raises(DockerfileError, match="outside"):
        load_dockerignore(ctx)


# --- walking --------------------------------------------------------------------------------------


def _tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")


def test_iter_context_prunes_and_reincludes(tmp_path: Path) -> None:
    _tree(tmp_path, ["a/b/keep.txt", "a/b/drop.txt", "a/c/x", "node_modules/m/i.js", "src/main.py"])
    pm = PatternMatcher(["a", "!a/b/keep.txt", "node_modules"])
    got = list(iter_context(tmp_path, pm))
    assert got == [
        ("a", True),
        ("a/b", True),
        ("a/b/keep.txt", False),
        ("src", True),
        ("src/main.py", False),
    ]
    # Same answer as checking every path independently.
    every = {
        str(p.relative_to(tmp_path).as_posix())
        for p in tmp_path.rglob("*")
        if p.is_file() and not pm.matches(p.relative_to(tmp_path).as_posix())
    }
    assert {p for p, d in got if not d} == every


def test_iter_context_skips_excluded_dir_without_exclusions(tmp_path: Path) -> None:
    _tree(tmp_path, ["big/1", "big/2/3", "keep"])
    calls: list[str] = []
    pm = PatternMatcher(["big"])
    original = pm.matches_using_parent_results

    def spy(path: str, info: MatchInfo) -> tuple[bool, MatchInfo]:
        calls.append(path)
        return original(path, info)

    pm.matches_using_parent_results = spy
    assert list(iter_context(tmp_path, pm)) == [("keep", False)]
    assert calls == ["big", "keep"]  # never looked inside "big"


def test_iter_context_wildcard_exclusion_descends(tmp_path: Path) -> None:
    _tree(tmp_path, ["docs/a.md", "docs/b.txt", "docs/deep/c.md"])
    pm = PatternMatcher(["docs", "!**/*.md"])
    assert [p for p, d in iter_context(tmp_path, pm) if not d] == ["docs/a.md", "docs/deep/c.md"]


def test_matches_using_parent_results_rejects_wrong_info() -> None:
    pm = PatternMatcher(["a", "b"])
    with pytest.raises(ValueError):
        pm.matches_using_parent_results("x", MatchInfo((True,)))


def test_exclusion_last_pattern_wins() -> None:
    pm = PatternMatcher(["*.go", "!keep.go", "keep.go"])
    assert pm.matches("keep.go")
    assert matches_or_parent_matches("keep.go", ["*.go", "!keep.go"]) is False
    assert matches_or_parent_matches(".", ["*"]) is False


def test_go_regex_dialect_differences() -> None:
    # Go's "$" is end-of-text; Python's "$" would also match before a trailing newline.
    assert not PatternMatcher(["a?"]).matches("ab\n")
    # "\z" is Go's end-of-text escape.
    assert PatternMatcher(["a\\z"]).matches("a")
    # A Go-invalid escape is a bad pattern at match time, as upstream.
    with pytest.raises(BadPatternError):
        PatternMatcher(["a\\Z"]).matches("a")


# --- properties -------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
_SEGMENT = st.text(
    alphabet=st.characters(
        blacklist_characters=["/", "*", "?", "[", "]", "\\", "!"],
        blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
    ),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
_REL_PATH = st.lists(_SEGMENT, min_size=1, max_size=5).map("/".join)
_ANY_PATH = st.text(alphabet=st.sampled_from(list("ab./\\*?[]! \n")), max_size=20) | st.text(
    max_size=20
)
_MATCHER = PatternMatcher(
    ["**/*.log", "build", "!build/keep", "a?c/**", "x[0-9]y", "**", "!src/**/*.py", "\\*lit"]
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_ANY_PATH)
def test_arbitrary_paths_never_crash(path: str) -> None:
    assert isinstance(_MATCHER.matches(path), bool)
    assert isinstance(_MATCHER.matches_exact(path), bool)
    excluded, info = _MATCHER.matches_using_parent_results(path)
    assert isinstance(excluded, bool)
    assert len(info.parent_matched) == len(_MATCHER.patterns)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_REL_PATH, st.lists(_SEGMENT, max_size=3))
def test_literal_pattern_matches_path_and_children(literal: str, below: list[str]) -> None:
    pm = PatternMatcher([literal])
    assert pm.matches(literal)
    child = "/".join([literal, *below])
    assert pm.matches(child)
    # MatchesUsingParentResults walking top-down agrees.
    assert _using_parent_results(pm, child)
    # A re-include of the literal undoes it.
    assert not PatternMatcher([literal, "!" + literal]).matches(child)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=12), _REL_PATH)
def test_arbitrary_patterns_never_crash(pattern: str, path: str) -> None:
    try:
        pm = PatternMatcher([pattern])
        pm.matches(path)
    except DockerfileError:
        pass


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(_SEGMENT, min_size=1, max_size=4),
    st.lists(_SEGMENT, min_size=1, max_size=4),
    st.booleans(),
)
def test_walk_functions_agree(pat_parts: list[str], path_parts: list[str], reinclude: bool) -> None:
    pattern = "/".join([*pat_parts[:-1], "*" + pat_parts[-1][1:]])
    patterns = (
        [pattern, "!" + "/".join(path_parts)] if reinclude else [pattern, "/".join(path_parts)]
    )
    pm = PatternMatcher(patterns)
    path = "/".join([*path_parts, "f"])
    # An empty MatchInfo is documented upstream to behave exactly like MatchesOrParentMatches.
    assert _or_parent(pm, path) == _using_parent_results_empty(pm, path)
    if not reinclude:
        assert _or_parent(pm, path) == _using_parent_results(pm, path)
    # With "!" patterns the walked variant can differ, upstream too: for ["0/*", "!0"],
    # "0/f" is kept by MatchesOrParentMatches but excluded by MatchesUsingParentResults
    # (the "!0" result is never recorded for dir "0" because nothing matched it yet).
    # BuildKit filters the context with the walked variant, which iter_context uses.


def test_walked_variant_is_upstreams_for_reinclude_of_parent() -> None:
    pm = PatternMatcher(["0/*", "!0"])
    assert _or_parent(pm, "0/f") is False
    assert _using_parent_results(pm, "0/f") is True


@pytest.mark.parametrize(
    ("patterns", "dir_path", "expected"),
    [
        (["a"], "a", False),  # no exceptions: prune
        (["a", "!a/b/keep"], "a", True),  # literal exception below: descend
        (["a", "!a/b/keep"], "a/b", True),
        (["a", "!a/b/keep"], "a/c", False),
        (["a", "!other"], "a", False),
        (["a", "!a/b/**"], "a", True),  # trailing /** stripped: still a literal prefix
        (["a", "!other/**"], "a", False),
        (["a", "!other/*"], "a", False),
        (["a", "!**/*.md"], "a", True),  # any wildcard exception: always descend
        (["a", "!x^y"], "a", True),  # "^" counts as a pattern char for fsutil
    ],
)
def test_could_reinclude_under_follows_fsutil(
    patterns: list[str], dir_path: str, expected: bool
) -> None:
    assert PatternMatcher(patterns).could_reinclude_under(dir_path) is expected


def test_bad_pattern_error_names_the_pattern() -> None:
    with pytest.raises(BadPatternError) as exc:
        PatternMatcher(["ok", "a["])
    assert exc.value.pattern == "a["
    assert str(exc.value).startswith(".dockerignore: syntax error in pattern: 'a['")
