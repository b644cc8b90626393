"""Shell-word lexer: quote removal, escapes and ``$VAR`` expansion for Dockerfile words.

A port of the semantics of BuildKit's ``frontend/dockerfile/shell/lex.go`` (the
reference behaviour for every instruction argument that expands variables). It is
*not* a shell: no command substitution, no globbing, no arithmetic. Supported:

* single quotes (literal), double quotes (``$`` expands, escape token escapes
  ``"``, ``$`` and itself only), the escape token (``\\`` or a backtick);
* ``$name``, ``${name}``, ``${name:-w}``, ``${name-w}``, ``${name:+w}``,
  ``${name+w}``, ``${name:?msg}``, ``${name?msg}``;
* ``${name#pat}``, ``${name##pat}``, ``${name%pat}``, ``${name%%pat}``,
  ``${name/pat/repl}``, ``${name//pat/repl}`` with ``*`` and ``?`` wildcards;
* positional/special parameters (``$1``, ``$@``, ``$#``...) are looked up like any
  other name, so they are empty unless the environment defines them;
* word splitting (``process_words``) on unquoted whitespace *after* expansion.

Errors carry BuildKit's wording, wrapped the way BuildKit wraps them
(``failed to process "<word>": <reason>``).

One deliberate divergence: at the pinned commit BuildKit shares one words buffer
between nested ``processStopOn`` calls, so ``process_words("a${X:-b}")`` loses the
``a``. That is an upstream optimisation bug no vector depends on; we keep the
per-call buffer semantics every earlier BuildKit release had.

Nesting (``${a:-${b:-...}}``, quotes inside) has no depth limit, as in BuildKit (Go stacks
grow): the recursive descent runs on an explicit stack of generators (:func:`trampoline`),
so a deep word costs memory, never a ``RecursionError``. Patterns are Go regexps, matched in
linear time on RE2 by :mod:`goregexp` (Python's backtracking ``re`` takes exponential time on
``${v##*a*a*a*a*b}``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from xarch.frontend.dockerfile import goregexp
from xarch.frontend.dockerfile.errors import DockerfileError

__all__ = [
    "EnvGetter",
    "Lexer",
    "ShellExpansionError",
    "ShellPatternError",
    "SliceEnv",
    "WordResult",
    "envs_from_slice",
    "process_word",
    "process_words",
]

_EOF = ""  # text/scanner.EOF; never a real character of a Python str
_RUNE_ERROR = "\ufffd"  # what Go's string(rune(-1)) prints when EOF leaks into a message
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_MODIFIERS = frozenset(":+-?#%")


@runtime_checkable
class EnvGetter(Protocol):
    """BuildKit's ``EnvGetter``: a lookup that distinguishes unset from empty."""

    def lookup(self, key: str, /) -> tuple[str, bool]:
        """Return ``(value, True)`` when *key* is set (even to ""), else ``("", False)``."""
        ...

    def keys(self) -> list[str]:
        """Keys in definition order (duplicates kept, as BuildKit's ``Keys()``)."""
        ...


@dataclass(frozen=True)
class SliceEnv:
    """Environment built from ``KEY=value`` strings (``EnvsFromSlice``): last duplicate wins."""

    _values: Mapping[str, str]
    _keys: tuple[str, ...]

    def lookup(self, key: str, /) -> tuple[str, bool]:
        # Env keys are case-sensitive on every platform we build for (non-Windows).
        if key in self._values:
            return self._values[key], True
        return "", False

    def keys(self) -> list[str]:
        return list(self._keys)


def envs_from_slice(env: Iterable[str]) -> SliceEnv:
    """``KEY=value`` list -> env; a bare ``KEY`` is set to ""; later duplicates win."""
    values: dict[str, str] = {}
    keys: list[str] = []
    for entry in env:
        k, _, v = entry.partition("=")
        keys.append(k)
        values[k] = v
    return SliceEnv(values, tuple(keys))


@dataclass(frozen=True)
class WordResult:
    """Everything one expansion produced (BuildKit's ``ProcessWordResult``)."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class ShellExpansionError(DockerfileError):
    """A word BuildKit's lexer rejects; ``reason`` is the bare cause (e.g. ``x: msg``)."""

    def __init__(self, word: str, reason: str, *, hint: str | None = None) -> None:
        # BuildKit's wording: errors.Wrapf(err, "failed to process %q", word).
        super().__init__(f"failed to process {_go_quote(word)}: {reason}", hint=hint)
        self.word = word
        self.reason = reason


class ShellPatternError(ValueError):
    """A ``${var#pattern}``-style pattern that cannot be turned into a regex."""


class _ShellError(Exception):
    """Internal: a lexer failure before BuildKit's ``failed to process %q`` wrapping."""

    def __init__(
        self, message: str, hint: str = "check the quotes, escapes and ${...} syntax"
    ) -> None:
        super().__init__(message)
        self.hint = hint


_REQUIRED_HINT = "define it with ARG/ENV or pass --build-arg"


# --- Go character classes (unicode.IsSpace / IsDigit / IsLetter) -----------------------------

_GO_SPACE_HIGH = frozenset(
    "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _go_is_space(ch: str) -> bool:
    # Python's str.isspace() also accepts \x1c-\x1f, which Go does not.
    if ch <= "\xff":
        return ch in "\t\n\v\f\r \x85\xa0"
    return ch in _GO_SPACE_HIGH


# unicode.IsSpace as a character class (linear: no repetition), to split runs of text
_GO_SPACE_RE = re.compile("[\t\n\v\f\r \x85\xa0" + "".join(sorted(_GO_SPACE_HIGH)) + "]")


def _go_is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _go_is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L"


def _go_quote(s: str) -> str:
    """Approximate Go's ``%q`` / ``strconv.Quote`` for error messages."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_QUOTE_ESCAPES:
            out.append(_GO_QUOTE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            if cp < 0x80:
                out.append(f"\\x{cp:02x}")
            elif cp < 0x10000:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


_GO_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


class _Scanner:
    """The subset of Go's text/scanner used by the lexer: rune Peek/Next, leading BOM dropped."""

    __slots__ = ("_i", "_s")

    def __init__(self, s: str) -> None:
        self._s = s
        self._i = 1 if s.startswith("\ufeff") else 0

    def peek(self) -> str:
        return self._s[self._i] if self._i < len(self._s) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self._i += 1
        return ch


class _Words:
    """Word splitting state (BuildKit's ``wordsStruct``)."""

    __slots__ = ("in_word", "word", "words")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _go_is_space(ch):
            # An empty quoted string ('') marks in_word but never becomes a word on its own.
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        # add_char for each character, a run at a time: every ${...} level adds its whole
        # result again, so a per-character loop made deep words quadratic in Python
        first = True
        for run in _GO_SPACE_RE.split(s):
            if not first and self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
            first = False
            if run:
                self.word += run
                self.in_word = True

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


# --- shell patterns (${var#pat}, ${var/pat/repl}) -----------------------------------------------

_REGEX_META = frozenset("[]{}.+()|^$")


def _convert_shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> goregexp.Regexp:
    """``convertShellPatternToRegex``: ``*``/``?`` wildcards, ``\\`` escapes ``*``, ``?``, ``\\``.

    The source uses only ``^``, ``.``, ``.*``, ``.*?`` and backslash-escaped punctuation;
    ``.pattern`` is Go's ``String()``, and RE2 matches it with Go's semantics in linear time.
    """
    s = _Scanner(pattern)
    out: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    while (tok := s.next()) != _EOF:
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            # "}" and "/" are escaped only to get them through ${...}; not part of the pattern.
            if s.peek() in ("}", "/"):
                continue
            out.append("\\")
            tok = s.next()
            if tok not in ("*", "?", "\\"):
                raise ShellPatternError(f"invalid escape '\\{tok or _RUNE_ERROR}'")
        elif tok in _REGEX_META:
            out.append("\\")
        out.append(tok)
    return goregexp.compile("".join(out))


def _reverse_pattern(pattern: str) -> str:
    """Reverse a shell pattern keeping ``\\x`` escape pairs in order (``a\\*c`` -> ``c\\*a``)."""
    n = len(pattern)
    out = [""] * n
    last = n - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        o = last - i
        if tok == "\\" and i != last:
            out[o - 1] = tok
            out[o] = pattern[i + 1]
            i += 2
        else:
            out[o] = tok
            i += 1
    return "".join(out)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    try:
        rx = _convert_shell_pattern_to_regex(pattern, greedy, True)
    except ShellPatternError as e:
        raise _ShellError(f"invalid pattern ({pattern}) in substitution: {e}") from None
    m = rx.find(value)
    return value[m.end() :] if m else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex cannot find the shortest *rightmost* match, so reverse both sides and
    # search leftmost instead, as BuildKit does.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_expand(template: str, match: str) -> str:
    """Go ``Regexp.Expand`` for a regex without capture groups: only ``$0``/``${0}`` is non-empty."""
    out: list[str] = []
    while True:
        idx = template.find("$")
        if idx < 0:
            break
        out.append(template[:idx])
        template = template[idx + 1 :]
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        parsed = _go_extract(template)
        if parsed is None:
            out.append("$")  # malformed reference: the "$" stays literal
            continue
        num, template = parsed
        if num == 0:
            out.append(match)
    out.append(template)
    return "".join(out)


def _go_extract(s: str) -> tuple[int, str] | None:
    """Go ``regexp.extract``: parse ``name`` or ``{name}``; return (group number or -1, rest)."""
    if not s:
        return None
    brace = s[0] == "{"
    if brace:
        s = s[1:]
    i = 0
    while i < len(s) and (_go_is_letter(s[i]) or _go_is_digit(s[i]) or s[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = s[:i]
    if brace:
        if i >= len(s) or s[i] != "}":
            return None
        i += 1
    num = -1
    if (
        all("0" <= c <= "9" for c in name)
        and len(name) <= 9
        and not (name[0] == "0" and len(name) > 1)
    ):
        num = int(name)
    return num, s[i:]


def _go_replace_all(rx: goregexp.Regexp, src: str, repl: str) -> str:
    """Go ``ReplaceAllString``: empty matches right after a match are not replaced."""
    out: list[str] = []
    last_end = 0
    pos = 0
    end = len(src)
    while pos <= end:
        m = rx.find(src, pos)
        if m is None:
            break
        a0, a1 = m.span()
        out.append(src[last_end:a0])
        if a1 > last_end or a0 == 0:
            out.append(_go_expand(repl, m.group(0)))
        last_end = a1
        width = 1 if pos < end else 0
        if pos + width > a1:
            pos += width
        elif pos + 1 > a1:
            pos += 1
        else:
            pos = a1
    out.append(src[last_end:])
    return "".join(out)


# --- the lexer ----------------------------------------------------------------------------------

_T = TypeVar("_T")
# A lexer step: a generator that yields the sub-steps it calls and gets their results back.
Step = Generator["Step[Any]", Any, _T]


def trampoline(root: Step[_T]) -> _T:
    """Run ``root`` and the steps it yields on an explicit stack instead of Python's.

    ``x = yield step`` is a call: ``step`` runs to completion first and its return value
    (or exception) comes back at the ``yield``. Depth is bounded by memory, as BuildKit's
    recursion is by Go's growable stacks, never by ``sys.getrecursionlimit()``.
    """
    stack: list[Step[Any]] = [root]
    value: Any = None
    error: Exception | None = None
    while True:
        top = stack[-1]
        try:
            if error is not None:
                err, error = error, None
                call = top.throw(err)
            else:
                call = top.send(value)
        except StopIteration as done:
            stack.pop()
            if not stack:
                return done.value
            value = done.value
            continue
        except Exception as e:  # the caller sees it at its yield, as it would a raise
            stack.pop()
            if not stack:
                raise
            error = e
            continue
        stack.append(call)
        value = None


class _ShellWord:
    """One expansion run (BuildKit's ``shellWord``); not reusable, not shared."""

    def __init__(self, lexer: Lexer, word: str, env: Mapping[str, str] | EnvGetter) -> None:
        self.lx = lexer
        self.sc = _Scanner(word)
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    def get_env(self, name: str) -> tuple[str, bool]:
        env = self.env
        if isinstance(env, Mapping):
            found = name in env
            value = env[name] if found else ""
        else:
            value, found = env.lookup(name)
        (self.matches if found else self.nonmatches).add(name)
        return (value, True) if found else ("", False)

    # Steps that can nest (they reach process_dollar) are generators run by trampoline():
    # "yield self.step(...)" is the call.

    def process_stop_on(self, stop: str | None, raw_escapes: bool) -> Step[tuple[str, list[str]]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return (yield self._process_stop_on(stop))
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str | None) -> Step[tuple[str, list[str]]]:
        sc = self.sc
        esc = self.lx.escape
        quotes = not self.lx.skip_process_quotes
        result: list[str] = []
        words = _Words()
        while (ch := sc.peek()) != _EOF:
            if stop is not None and ch == stop:
                sc.next()
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = yield self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif quotes and ch in ("'", '"'):
                if ch == "'":
                    tmp = self.process_single_quote()
                else:
                    tmp = yield self.process_double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = sc.next()
                if ch == esc:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = sc.next()
                    if ch == _EOF:  # escape at end of word is dropped
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise _ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        sc = self.sc
        raw = self.lx.raw_quotes
        out: list[str] = []
        ch = sc.next()
        if raw:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise _ShellError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if raw:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> Step[str]:
        sc = self.sc
        raw = self.lx.raw_quotes
        esc = self.lx.escape
        out: list[str] = []
        ch = sc.next()
        if raw:
            out.append(ch)
        while True:
            p = sc.peek()
            if p == _EOF:
                raise _ShellError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if p == '"':
                ch = sc.next()
                if raw:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append((yield self.process_dollar()))
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == _EOF:
                    continue  # the loop then reports the missing quote
                if nxt in ('"', "$", esc):
                    # Only these can be escaped inside double quotes; others stay literal.
                    ch = sc.next()
            out.append(ch)

    def process_name(self) -> str:
        sc = self.sc
        name: list[str] = []
        while (ch := sc.peek()) != _EOF:
            if not name and _go_is_digit(ch):
                # Positional parameter: all the digits, nothing else ($1x is "$1" then "x").
                while (d := sc.peek()) != _EOF and _go_is_digit(d):
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (_go_is_letter(ch) or _go_is_digit(ch) or ch == "_"):
                break
            name.append(sc.next())
        return "".join(name)

    def _stop_on_or_missing(self, stop: str, raw: bool, missing: str) -> Step[str]:
        try:
            word, _ = yield self.process_stop_on(stop, raw)
        except _ShellError:
            if self.sc.peek() == _EOF:
                raise _ShellError(missing) from None
            raise
        return word

    def process_dollar(self) -> Step[str]:
        sc = self.sc
        skip_unset = self.lx.skip_unset_env
        sc.next()  # the "$"
        if sc.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and skip_unset:
                return "$" + name
            return value

        sc.next()  # the "{"
        p = sc.peek()
        if p == _EOF:
            raise _ShellError("syntax error: missing '}'")
        if p in ("{", "}", ":"):
            raise _ShellError("syntax error: bad substitution")
        name = self.process_name()
        ch = sc.next()
        chs = ch or _RUNE_ERROR

        if ch == "}":
            value, found = self.get_env(name)
            if not found and skip_unset:
                return f"${{{name}}}"
            return value

        if ch != _EOF and ch in _MODIFIERS:
            null_is_unset = False
            if ch == ":":
                null_is_unset = True
                ch = sc.next()
                chs += ch or _RUNE_ERROR
            raw = ch in ("#", "%") and ch != _EOF
            if null_is_unset and raw:
                raise _ShellError(f"unsupported modifier ({chs}) in substitution")
            word = yield self._stop_on_or_missing("}", raw, "syntax error: missing '}'")
            value, found = self.get_env(name)
            if skip_unset and not found:
                return f"${{{name}{chs}{word}}}"
            empty = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if empty else value
            if ch == "+":
                return "" if empty else word
            if ch == "?":
                if not found:
                    raise _ShellError(
                        f"{name}: {word or 'is not allowed to be unset'}", _REQUIRED_HINT
                    )
                if null_is_unset and value == "":
                    raise _ShellError(
                        f"{name}: {word or 'is not allowed to be empty'}", _REQUIRED_HINT
                    )
                return value
            if ch in ("#", "%") and ch != _EOF:
                # "#"/"%" strip the shortest match, "##"/"%%" the longest.
                greedy = word[:1] == ch
                if greedy:
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _ShellError(f"unsupported modifier ({chs}) in substitution")

        if ch == "/":
            replace_all = sc.peek() == "/"
            if replace_all:
                sc.next()
            pattern = yield self._stop_on_or_missing("/", True, "syntax error: missing '/' in ${}")
            replacement = yield self._stop_on_or_missing("}", True, "syntax error: missing '}'")
            value, found = self.get_env(name)
            if skip_unset and not found:
                return f"${{{name}/{pattern}/{replacement}}}"
            try:
                rx = _convert_shell_pattern_to_regex(pattern, True, False)
            except ShellPatternError as e:
                raise _ShellError(f"invalid pattern ({pattern}) in substitution: {e}") from None
            if replace_all:
                return _go_replace_all(rx, value, replacement)
            m = rx.find(value)
            if m:
                # First-match replacement is a plain splice: no "$0" template expansion.
                value = value[: m.start()] + replacement + value[m.end() :]
            return value

        raise _ShellError(f"unsupported modifier ({chs}) in substitution")


class Lexer:
    """Expands one Dockerfile word; options mirror BuildKit's ``Lex`` fields."""

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset_env: bool = False,
        skip_process_quotes: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise ValueError(f"escape token must be one character, got {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes

    def __repr__(self) -> str:
        return (
            f"Lexer(escape={self.escape!r}, raw_quotes={self.raw_quotes}, "
            f"raw_escapes={self.raw_escapes}, skip_unset_env={self.skip_unset_env}, "
            f"skip_process_quotes={self.skip_process_quotes})"
        )

    def process(self, word: str, env: Mapping[str, str] | EnvGetter) -> WordResult:
        """Expand *word*; raise :class:`DockerfileError` with BuildKit's message on failure."""
        sw = _ShellWord(self, word, env)
        try:
            result, words = trampoline(sw.process_stop_on(None, sw.raw_escapes))
        except _ShellError as e:
            raise ShellExpansionError(word, str(e), hint=e.hint) from None
        return WordResult(result, words, sw.matches, sw.nonmatches)

    def process_word(self, word: str, env: Mapping[str, str] | EnvGetter) -> str:
        """Expanded word as one string (spaces kept)."""
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str] | EnvGetter) -> list[str]:
        """Expanded word split on unquoted whitespace (after expansion, as BuildKit does)."""
        return self.process(word, env).words

    def process_word_with_matches(
        self, word: str, env: Mapping[str, str] | EnvGetter
    ) -> tuple[str, set[str], set[str]]:
        """``(result, names found in env, names looked up but unset)``."""
        r = self.process(word, env)
        return r.result, r.matched, r.unmatched


def process_word(word: str, env: Mapping[str, str] | EnvGetter, escape: str = "\\") -> str:
    return Lexer(escape).process_word(word, env)


def process_words(word: str, env: Mapping[str, str] | EnvGetter, escape: str = "\\") -> list[str]:
    return Lexer(escape).process_words(word, env)
