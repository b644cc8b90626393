""".dockerignore: reading the file and matching context paths against its patterns.

A port of the semantics of moby/patternmatcher (``PatternMatcher``, ``Pattern``,
``ignorefile.ReadAll``) which BuildKit uses to filter the build context, plus the
file lookup BuildKit's dockerui does (``<Dockerfile>.dockerignore`` first, then
``<context>/.dockerignore``) and a context walker that prunes excluded directories
the way fsutil does.

Pattern language (what users rely on): ``*`` and ``?`` never cross ``/``; ``**``
crosses any number of directories; ``[...]`` classes; ``\\`` escapes; a leading
``!`` re-includes; the last applicable pattern wins; a path is excluded when it *or
any parent directory* matches. Paths are slash-separated and relative to the context.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from xarch.frontend.dockerfile import goregexp
from xarch.frontend.dockerfile.errors import DockerfileError

__all__ = [
    "BadPatternError",
    "MatchInfo",
    "MatchType",
    "Pattern",
    "PatternMatcher",
    "filepath_match",
    "go_clean",
    "iter_context",
    "load_dockerignore",
    "match",
    "matches",
    "matches_or_parent_matches",
    "read_ignore_file",
]

DOCKERIGNORE = ".dockerignore"
_SEP = "/"  # non-Windows: os.PathSeparator
# bufio.Scanner's default limit: BuildKit fails on a longer line instead of truncating it.
_MAX_LINE_BYTES = 64 * 1024
_ESCAPE_CHARS = frozenset(".+()|{}$")  # regex specials that mean nothing to filepath.Match


class BadPatternError(DockerfileError):
    """Go's ``filepath.ErrBadPattern`` ("syntax error in pattern") or an illegal ``!``."""

    def __init__(
        self, message: str = "syntax error in pattern", *, pattern: str | None = None
    ) -> None:
        super().__init__(
            message if pattern is None else f"{message}: {pattern!r}",
            filename=DOCKERIGNORE,
            hint="fix the pattern; escape literal [ ] * ? with \\",
        )
        self.pattern = pattern


# --- Go path helpers ------------------------------------------------------------------------------


def go_clean(path: str) -> str:
    """Go ``filepath.Clean`` (Unix): lexical ``.``/``..``/``//`` removal, "" -> ".", no trailing /."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    stack: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if stack and stack[-1] != "..":
                stack.pop()
            elif not rooted:
                stack.append("..")
            continue
        stack.append(part)
    out = "/".join(stack)
    if rooted:
        return "/" + out
    return out or "."


def _go_dir(path: str) -> str:
    """Go ``filepath.Dir``."""
    i = path.rfind("/")
    return go_clean(path[: i + 1])


def _go_trim_space(s: str) -> str:
    # Go's strings.TrimSpace trims unicode.IsSpace; Python's strip() also trims \x1c-\x1f.
    return s.strip(
        "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    )


# --- filepath.Match (syntax validation, and a faithful Match for callers that want it) ----------


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    inrange = False
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n:
                i += 1
        elif c == "[":
            inrange = True
        elif c == "]":
            inrange = False
        elif c == "*" and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPatternError()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPatternError()
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPatternError()
    return r, rest


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Go ``matchChunk``: keeps parsing after a mismatch so syntax errors always surface."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk.startswith("^"):
                negated = True
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == _SEP:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPatternError()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def filepath_match(pattern: str, name: str) -> bool:
    """Go ``filepath.Match`` (Unix); raises :class:`BadPatternError` on malformed patterns."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return _SEP not in name
        t, ok = _match_chunk(chunk, name)
        if ok and (not t or pattern):
            name = t
            continue
        if star:
            advanced = False
            i = 0
            while i < len(name) and name[i] != _SEP:
                t, ok = _match_chunk(chunk, name[i + 1 :])
                if ok and not (not pattern and t):
                    name = t
                    advanced = True
                    break
                i += 1
            if advanced:
                continue
        # Before returning false, check that the rest of the pattern is well-formed.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


# --- Pattern / PatternMatcher ------------------------------------------------------------------


class MatchType(Enum):
    EXACT = "exactMatch"
    PREFIX = "prefixMatch"
    SUFFIX = "suffixMatch"
    REGEXP = "regexpMatch"


def _compile(pattern: str, sl: str = _SEP) -> tuple[MatchType, str, goregexp.Regexp | None]:
    """``Pattern.compile``: classify, and build the Go regexp (its source and the matcher).

    The source is upstream's verbatim (what its tables compare); :mod:`goregexp` compiles it
    with Go's semantics on RE2 (linear time, unlike Python's backtracking ``re``).
    Raises :class:`BadPatternError` when Go would fail to compile it.
    """
    go: list[str] = ["^"]
    detected = MatchType.EXACT
    esc_sl = sl + "\\" if sl == "\\" else sl
    any_not_sl = "[^" + esc_sl + "]"
    # text/scanner drops a leading BOM.
    chars = pattern[1:] if pattern.startswith("\ufeff") else pattern
    n = len(chars)
    j = 0
    i = 0  # counts tokens like the Go loop's i (only i == 0 matters)
    while j < n:
        ch = chars[j]
        j += 1
        if ch == "*":
            if j < n and chars[j] == "*":
                j += 1
                if j < n and chars[j] == sl:  # treat "**/" as "**"
                    j += 1
                if j >= n:
                    if detected == MatchType.EXACT:
                        detected = MatchType.PREFIX
                    else:
                        go.append(".*")
                        detected = MatchType.REGEXP
                else:
                    go.append("(.*" + esc_sl + ")?")
                    detected = MatchType.REGEXP
                if i == 0:
                    detected = MatchType.SUFFIX
            else:
                go.append(any_not_sl + "*")
                detected = MatchType.REGEXP
        elif ch == "?":
            go.append(any_not_sl)
            detected = MatchType.REGEXP
        elif ch in _ESCAPE_CHARS:
            go.append("\\" + ch)
        elif ch == "\\" and sl == "\\":
            # Windows separator: a backslash is a path separator, never an escape.
            go.append(esc_sl)
        elif ch == "\\":
            if j < n:
                go.append("\\" + chars[j])
                j += 1
                detected = MatchType.REGEXP
            else:
                go.append("\\")
        elif ch in "[]":
            go.append(ch)
            detected = MatchType.REGEXP
        else:
            go.append(ch)  # includes "^": an assertion in Go, as upstream leaves it
        i += 1

    if detected != MatchType.REGEXP:
        return detected, "", None
    go.append("$")
    source = "".join(go)
    try:
        rx = goregexp.compile(source)
    except goregexp.GoRegexpError:
        raise BadPatternError(pattern=pattern) from None
    return detected, source, rx


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; ``exclusion`` is True for ``!pattern`` (re-include)."""

    cleaned_pattern: str
    exclusion: bool
    match_type: MatchType | None  # None: the regex failed to compile (every match raises)
    regexp_source: str  # Go regexp source ("" unless match_type is REGEXP)
    _regex: goregexp.Regexp | None

    @property
    def dirs(self) -> list[str]:
        return self.cleaned_pattern.split(_SEP)

    def __str__(self) -> str:
        return self.cleaned_pattern

    def match(self, path: str) -> bool:
        """Match one slash path (no parent logic); raises :class:`BadPatternError`."""
        mt = self.match_type
        p = self.cleaned_pattern
        if mt is MatchType.EXACT:
            return path == p
        if mt is MatchType.PREFIX:
            return path.startswith(p[:-2])
        if mt is MatchType.SUFFIX:
            suffix = p[2:]
            if path.endswith(suffix):
                return True
            # "**/foo" also matches "foo" itself.
            return suffix[:1] == _SEP and path == suffix[1:]
        if mt is MatchType.REGEXP and self._regex is not None:
            return self._regex.match_string(path)
        # Upstream keeps the pattern (New succeeds) and fails on every match.
        raise BadPatternError(pattern=p)

    def match_parents(self, parent: str) -> bool:
        """Does some directory of ``parent`` match: ``a``, ``a/b``, ... up to ``parent``
        itself (upstream joins ``dirs[:k]``; these are the prefixes ending at a ``/``)?"""
        mt = self.match_type
        p = self.cleaned_pattern
        if mt is MatchType.REGEXP and self._regex is not None:
            return self._regex.match_prefixes(parent, _SEP)  # one search for every prefix
        if mt is MatchType.EXACT:
            return parent.startswith(p) and parent[len(p) : len(p) + 1] in ("", _SEP)
        if mt is MatchType.PREFIX:
            return parent.startswith(p[:-2])  # parent itself is the longest prefix
        if mt is MatchType.SUFFIX:
            ends = [i for i, c in enumerate(parent) if c == _SEP]
            ends.append(len(parent))
            suffix = p[2:]
            bare = suffix[1:] if suffix[:1] == _SEP else None
            return any(
                parent.endswith(suffix, 0, e) or (bare is not None and parent[:e] == bare)
                for e in ends
            )
        raise BadPatternError(pattern=p)


def _new_pattern(cleaned: str, exclusion: bool) -> Pattern:
    try:
        mt, src, rx = _compile(cleaned)
    except BadPatternError:
        return Pattern(cleaned, exclusion, None, "", None)
    return Pattern(cleaned, exclusion, mt, src, rx)


@dataclass(frozen=True)
class MatchInfo:
    """Per-pattern results for a directory, fed to its children (``MatchesUsingParentResults``)."""

    parent_matched: tuple[bool, ...] = ()


class PatternMatcher:
    """Ordered include/exclude patterns (``patternmatcher.PatternMatcher``); immutable."""

    def __init__(self, patterns: Sequence[str]) -> None:
        out: list[Pattern] = []
        exclusions = False
        for raw in patterns:
            p = _go_trim_space(raw)
            if not p:
                continue
            p = go_clean(p)
            exclusion = False
            if p[0] == "!":
                if len(p) == 1:
                    raise BadPatternError('illegal exclusion pattern: "!"')
                exclusion = True
                p = p[1:]
                exclusions = True
            # Same syntax check as upstream: filepath.Match raises on a malformed pattern.
            try:
                filepath_match(p, ".")
            except BadPatternError:
                raise BadPatternError(pattern=p) from None
            out.append(_new_pattern(p, exclusion))
        self._patterns: tuple[Pattern, ...] = tuple(out)
        self._exclusions = exclusions

    @property
    def patterns(self) -> list[Pattern]:
        return list(self._patterns)

    @property
    def exclusions(self) -> bool:
        """True when some pattern is a ``!`` re-include."""
        return self._exclusions

    def __repr__(self) -> str:
        shown = [
            "!" + p.cleaned_pattern if p.exclusion else p.cleaned_pattern for p in self._patterns
        ]
        return f"PatternMatcher({shown!r})"

    def matches(self, path: str) -> bool:
        """Excluded? ``MatchesOrParentMatches``: the path or one of its parent dirs matches."""
        matched = False
        parent = _go_dir(path)
        for pat in self._patterns:
            # An include can only flip "not matched", an exclusion only "matched".
            if pat.exclusion != matched:
                continue
            m = pat.match(path)
            if not m and parent != ".":
                m = pat.match_parents(parent)
            if m:
                matched = not pat.exclusion
        return matched

    matches_or_parent_matches = matches

    def matches_deprecated(self, path: str) -> bool:
        """Upstream's deprecated ``Matches``: parent check only at the pattern's own depth."""
        matched = False
        parent = _go_dir(path)
        parent_dirs = parent.split(_SEP)
        for pat in self._patterns:
            if pat.exclusion != matched:
                continue
            m = pat.match(path)
            if not m and parent != ".":
                depth = len(pat.dirs)
                if depth <= len(parent_dirs):
                    try:
                        m = pat.match(_SEP.join(parent_dirs[:depth]))
                    except BadPatternError:
                        m = False
            if m:
                matched = not pat.exclusion
        return matched

    def matches_exact(self, path: str) -> bool:
        """``MatchesExact``: no parent-directory matching at all."""
        matched = False
        for pat in self._patterns:
            if pat.exclusion != matched:
                continue
            if pat.match(path):
                matched = not pat.exclusion
        return matched

    def matches_using_parent_result(self, path: str, parent_matched: bool) -> bool:
        """Deprecated upstream ``MatchesUsingParentResult`` (single bool from the parent)."""
        matched = parent_matched
        for pat in self._patterns:
            if pat.exclusion != matched:
                continue
            if pat.match(path):
                matched = not pat.exclusion
        return matched

    def matches_using_parent_results(
        self, path: str, parent_info: MatchInfo = MatchInfo()
    ) -> tuple[bool, MatchInfo]:
        """``MatchesUsingParentResults``: O(patterns) per path when walking top-down.

        Pass the :class:`MatchInfo` returned for the parent directory; an empty one
        falls back to checking every ancestor (same result as :meth:`matches`).
        """
        parent_matched = parent_info.parent_matched
        if parent_matched and len(parent_matched) != len(self._patterns):
            raise ValueError("wrong number of values in parent_matched")
        matched = False
        results: list[bool] = []
        for idx, pat in enumerate(self._patterns):
            m = bool(parent_matched) and parent_matched[idx]
            if not m and pat.exclusion == matched:
                m = pat.match(path)
                if not m and not parent_matched:
                    parent = _go_dir(path)
                    if parent != ".":
                        m = pat.match_parents(parent)
            results.append(m)
            if m:
                matched = not pat.exclusion
        return matched, MatchInfo(tuple(results))

    def could_reinclude_under(self, dir_path: str) -> bool:
        """Might a ``!`` pattern re-include something below excluded *dir_path*?

        fsutil's pruning rule: with no exceptions, never; if any exception (minus a
        trailing ``/**`` or ``/*``) has a wildcard, always; otherwise only when an
        exception lies under the directory.
        """
        if not self._exclusions:
            return False
        exceptions = [_without_trailing_glob(p) for p in self._patterns if p.exclusion]
        if any(c in e for e in exceptions for c in _FSUTIL_PATTERN_CHARS):
            return True
        prefix = dir_path + _SEP
        return any((e + _SEP).startswith(prefix) for e in exceptions)


_FSUTIL_PATTERN_CHARS = "*[]?^\\"


def _without_trailing_glob(p: Pattern) -> str:
    s = p.cleaned_pattern.removesuffix(_SEP + "**")
    return s.removesuffix(_SEP + "*")


# --- package-level helpers ---------------------------------------------------------------------


def matches_or_parent_matches(path: str, patterns: Sequence[str]) -> bool:
    """Package ``MatchesOrParentMatches(file, patterns)``; "." is never excluded."""
    pm = PatternMatcher(patterns)
    path = go_clean(path)
    if path == ".":
        return False
    return pm.matches(path)


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Package ``Matches(file, patterns)`` (deprecated upstream, single-depth parent check)."""
    pm = PatternMatcher(patterns)
    path = go_clean(path)
    if path == ".":
        return False
    return pm.matches_deprecated(path)


def match(pattern: str, name: str) -> bool:
    """One pattern against one path, as upstream's ``TestMatch`` table runs it.

    That is ``Matches(name, [pattern])`` (pattern-matcher semantics, so ``a*`` excludes
    ``ab/c`` through its parent), raising :class:`BadPatternError` for malformed
    patterns. For plain Go ``filepath.Match`` use :func:`filepath_match`.
    """
    return matches(name, [pattern])


def read_ignore_file(data: bytes | str) -> list[str]:
    """``ignorefile.ReadAll``: one pattern per line, normalised.

    BOM stripped; lines *starting* with ``#`` are comments (checked before trimming);
    whitespace trimmed; blank lines dropped; ``!`` kept as a prefix with the rest
    trimmed; the path part cleaned and made relative (one leading ``/`` dropped).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # bufio.ScanLines yields no empty token after a final newline
    out: list[str] = []
    for lineno, raw_line in enumerate(lines, 1):
        if raw_line.endswith(b"\r"):
            raw_line = raw_line[:-1]
        if len(raw_line) >= _MAX_LINE_BYTES:
            raise DockerfileError(
                "error reading .dockerignore: bufio.Scanner: token too long",
                filename=DOCKERIGNORE,
                line=lineno,
                hint="keep each pattern under 64 KiB",
            )
        line = raw_line.decode("utf-8", "surrogateescape")
        if line.startswith("#"):
            continue
        pattern = _go_trim_space(line)
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = _go_trim_space(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _read_inside(base: Path, name: str) -> bytes | None:
    """Read ``base/name`` if it is a regular file that does not resolve outside *base*."""
    path = base / name
    if not path.is_file():
        return None
    real_base = base.resolve()
    real = path.resolve()
    if real != real_base and real_base not in real.parents:
        raise DockerfileError(
            f"{path} points outside {base}",
            filename=name,
            hint="make the ignore file a regular file inside the build context",
        )
    return real.read_bytes()


def load_dockerignore(context_dir: Path, dockerfile_name: str | None = None) -> list[str]:
    """Patterns for a build, as BuildKit picks them.

    ``<Dockerfile>.dockerignore`` next to the Dockerfile wins over
    ``<context>/.dockerignore``; no file means no patterns. *dockerfile_name* is
    relative to the context unless absolute.
    """
    context_dir = Path(context_dir)
    data: bytes | None = None
    if dockerfile_name:
        df = Path(dockerfile_name)
        if not df.is_absolute():
            df = context_dir / df
        data = _read_inside(df.parent, df.name + DOCKERIGNORE)
    if data is None:
        data = _read_inside(context_dir, DOCKERIGNORE)
    if data is None:
        return []
    return read_ignore_file(data)


def iter_context(root: Path, matcher: PatternMatcher) -> Iterator[tuple[str, bool]]:
    """Walk *root* top-down and yield ``(relative slash path, is_dir)`` of entries kept.

    Uses :meth:`PatternMatcher.matches_using_parent_results` (one pass per path) and
    prunes excluded directories unless a ``!`` pattern could re-include something
    inside; a kept entry below an excluded directory brings its parent directories
    along (they must exist in the copied tree). Symlinks are reported, never followed.
    Entries are yielded in sorted order per directory, parents before children.
    """
    root = Path(root)
    excluded_dirs: list[str] = []  # excluded ancestors we are descending through
    emitted: set[str] = set()

    def listing(rel: str) -> Iterator[os.DirEntry[str]]:
        with os.scandir(root / rel if rel else root) as it:
            return iter(sorted(it, key=lambda e: e.name))

    # An explicit stack, not recursion: a context can nest directories thousands deep.
    # Frames: (directory, its parent results, entries left, pushed onto excluded_dirs?).
    stack = [("", MatchInfo(), listing(""), False)]
    while stack:
        rel, info, entries, pushed = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            if pushed:
                excluded_dirs.pop()
            continue
        path = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        excluded, child_info = matcher.matches_using_parent_results(path, info)
        if not excluded:
            for d in excluded_dirs:
                if d not in emitted:
                    emitted.add(d)
                    yield d, True
            yield path, is_dir
            if is_dir:
                stack.append((path, child_info, listing(path), False))
        elif is_dir and matcher.could_reinclude_under(path):
            excluded_dirs.append(path)
            stack.append((path, child_info, listing(path), True))
