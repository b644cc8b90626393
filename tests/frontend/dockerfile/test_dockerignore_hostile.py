""".dockerignore input built to hurt: patterns that make a backtracking matcher exponential,
paths and contexts deep enough to break a recursive one. Bounds: each case well under a second
(moby compiles to Go's RE2, linear time; so must we)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xarch.frontend.dockerfile.dockerignore import (
    MatchType,
    Pattern,
    PatternMatcher,
    _go_dir,
    iter_context,
)
from xarch.frontend.dockerfile.errors import DockerfileError

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
BOUND = 1.0  # seconds; a hostile case takes milliseconds

FLAT = "a" * 4096  # a 4 KiB path with no directories
DEEP = "/".join(["a"] * 2048)  # a 4 KiB path 2048 directories deep (PATH_MAX)


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# Each: a pattern that backtracks exponentially (or polynomially, in a high degree) in
# Python's re, and a path it does not match (so a backtracker must try everything).
HOSTILE = {
    "double-star groups": ("**/**/**/**/**/**/**/**/**/*a", DEEP[:-1] + "b"),
    "stars": ("a*a*a*a*a*a*a*a*b", FLAT),
    "many stars": ("*a" * 200 + "b", FLAT),
    "many groups": ("**/" * 200 + "*b", DEEP),
    "questions and stars": ("?*" * 200 + "b", FLAT),
    "classes": ("[a-z]*" * 300 + "b", FLAT),
    "groups then stars": ("**/*a*a*a*a*a*a*b", DEEP),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("pattern", "path"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_pattern_is_fast(pattern: str, path: str) -> None:
    pm = PatternMatcher([pattern])
    assert _timed(lambda: pm.matches(path)) < BOUND
    assert _timed(lambda: pm.matches_exact(path)) < BOUND
    assert _timed(lambda: pm.matches_using_parent_results(path)) < BOUND


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("pattern", "path"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_pattern_answers_correctly(pattern: str, path: str) -> None:
    # The path itself never matches; its parents only for the patterns ending in "a".
    pm = PatternMatcher([pattern])
    assert pm.matches_exact(path) is False
    assert pm.matches(path) is (path is not FLAT and pattern.endswith("a"))


@pytest.mark.timeout(60)
def test_hostile_line_of_60_kib() -> None:
    pattern = "*a" * 30000 + "b"  # just under the 64 KiB line limit
    t = time.perf_counter()
    pm = PatternMatcher([pattern])
    assert pm.matches(FLAT) is False
    assert time.perf_counter() - t < 5 * BOUND  # compiling 60 KiB is the cost here


@pytest.mark.timeout(60)
def test_deep_path_with_many_patterns_is_linear() -> None:
    pm = PatternMatcher(["**/*.log", "a/*/x", "*.tmp", "!**/keep", "node_modules", "**/b?"])
    assert _timed(lambda: pm.matches(DEEP)) < BOUND


# --- parent matching: one pass over the parent equals upstream's join of dirs[:k] --------------


def _upstream_parent_match(p: Pattern, parent: str) -> bool:
    dirs = parent.split("/")
    return any(p.match("/".join(dirs[:k])) for k in range(1, len(dirs) + 1))


_SEG = st.sampled_from(["a", "b", "ab", "x.log", "", ".", "..", "k", "a b"])
_PATHS = st.lists(_SEG, min_size=1, max_size=6).map("/".join) | st.lists(
    _SEG, min_size=1, max_size=6
).map(lambda parts: "/" + "/".join(parts))
_PATTERN_PARTS = st.sampled_from(["a", "b", "*", "**", "?", "x.log", "[ab]", "\\*", "k", "/"])
_PATS = st.lists(_PATTERN_PARTS, min_size=1, max_size=5).map("".join)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PATS, _PATHS)
def test_match_parents_equals_upstream_join(pattern: str, path: str) -> None:
    try:
        pm = PatternMatcher([pattern])
    except DockerfileError:
        return
    if not pm.patterns:
        return
    p = pm.patterns[0]
    parent = _go_dir(path)
    if parent == "." or p.match_type is None:
        return
    assert p.match_parents(parent) == _upstream_parent_match(p, parent), (p, parent)


@pytest.mark.parametrize(
    ("pattern", "parent", "want"),
    [
        ("a/b", "a/b/c", True),  # exact, a middle directory
        ("a/b", "a/bc", False),
        ("a/**", "a", False),  # prefix "a/" needs a directory below a
        ("a/**", "a/b", True),
        ("**/c", "a/b/c/d", True),  # suffix on a middle directory
        ("**/c", "c", True),  # "**/c" also matches "c" itself
        ("**/c", "xc/d", False),
        ("**/c", "/c", True),  # rooted: "" is the first directory
        ("*", "/x", True),
        ("a*c", "abc/x", True),
        ("a*c", "ab/x/abc", False),  # "*" never crosses "/"
    ],
)
def test_match_parents_table(pattern: str, parent: str, want: bool) -> None:
    (p,) = PatternMatcher([pattern]).patterns
    assert p.match_type in tuple(MatchType)
    assert p.match_parents(parent) is want
    assert _upstream_parent_match(p, parent) is want


# --- deep contexts -------------------------------------------------------------------------------


def _remove_deep_tree(root: Path, depth: int) -> None:
    """Undo _deep_tree bottom up (shutil.rmtree recurses per directory, so it cannot)."""
    cwd = os.getcwd()
    try:
        os.chdir(root)
        for _ in range(depth):
            os.chdir("d")
        os.unlink("f")
        for _ in range(depth):
            os.chdir("..")
            os.rmdir("d")
    finally:
        os.chdir(cwd)


def _deep_tree(root: Path, depth: int) -> str:
    """``root/d/d/.../d/f`` ``depth`` directories deep, made with relative steps (PATH_MAX)."""
    cwd = os.getcwd()
    try:
        os.chdir(root)
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        Path("f").write_text("x")
    finally:
        os.chdir(cwd)
    return "/".join(["d"] * depth + ["f"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "patterns",
    [
        ["nothing"],  # everything kept
        ["d/d", "!**/f"],  # excluded, re-included at the bottom: the parents come along
    ],
)
def test_iter_context_deeper_than_the_recursion_limit(tmp_path: Path, patterns: list[str]) -> None:
    leaf = _deep_tree(tmp_path, 1500)
    try:
        got = list(iter_context(tmp_path, PatternMatcher(patterns)))
    finally:
        _remove_deep_tree(tmp_path, 1500)
    assert len(got) == 1501  # 1500 directories, then the file
    assert got[0] == ("d", True) and got[-1] == (leaf, False)
    assert [p for p, _ in got[:-1]] == ["/".join(["d"] * k) for k in range(1, 1501)]
