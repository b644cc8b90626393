"""BuildKit's line parsers (line_parsers.go, split_command.go) and the Go behaviour they rely on.

The parser works on ``str`` decoded from bytes with ``surrogateescape``: every byte that is
not valid UTF-8 becomes one code point U+DC80..U+DCFF, just as Go's decoder yields one
``RuneError`` per invalid byte. These helpers know that convention.
"""

from __future__ import annotations

import json
import re
import unicodedata

from xarch.frontend.dockerfile.shell import Step, _Words, trampoline

__all__ = [
    "DISPATCH",
    "ERR_NOT_STRING_ARRAY",
    "GO_SPACES",
    "LineParseError",
    "ShellLexError",
    "ShellWords",
    "extract_builder_flags",
    "from_bytes",
    "go_is_space",
    "go_lower",
    "go_quote",
    "go_quote_list",
    "go_trim_space",
    "latin1_from_bytes",
    "parse_json",
    "parse_maybe_json",
    "parse_maybe_json_to_list",
    "parse_name_val",
    "parse_words",
    "split_command",
    "to_bytes",
]

# unicode.IsSpace: the Latin-1 spaces plus the White_Space property (Python's isspace()
# also accepts U+001C..U+001F, which Go does not).
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_SET = frozenset(GO_SPACES)

_REPLACEMENT = "\ufffd"


def go_is_space(ch: str) -> bool:
    return ch in _SPACE_SET


def go_trim_space(s: str) -> str:
    """strings.TrimSpace."""
    return s.strip(GO_SPACES)


def from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def to_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def latin1_from_bytes(data: bytes) -> str:
    """Go's ``string(rune(b))`` for each byte: how BuildKit reads flags byte by byte."""
    return data.decode("latin-1")


def _is_escaped_byte(ch: str) -> bool:
    return "\udc80" <= ch <= "\udcff"


def _lower_char(ch: str) -> str:
    if _is_escaped_byte(ch):
        return _REPLACEMENT  # strings.Map re-encodes an invalid byte as U+FFFD
    low = ch.lower()
    if len(low) != 1:
        # unicode.ToLower maps one rune to one rune; only U+0130 has a longer Python lowering.
        return "i" if ch == "\u0130" else ch
    return low


def go_lower(s: str) -> str:
    """strings.ToLower (invalid bytes become U+FFFD, as strings.Map does)."""
    if s.isascii():
        return s.lower()
    return "".join(_lower_char(c) for c in s)


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _quote_char(ch: str) -> str:
    esc = _SIMPLE_ESCAPES.get(ch)
    if esc is not None:
        return esc
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:
        return f"\\x{cp - 0xDC00:02x}"  # an invalid UTF-8 byte
    if _go_is_print(ch):
        return ch
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if 0xD800 <= cp <= 0xDFFF:
        return "\\ufffd"  # not a valid rune: Go writes the replacement character
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _go_is_print(ch: str) -> bool:
    # strconv.IsPrint: L, M, N, P, S and U+0020. Python's isprintable() excludes exactly
    # Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs-but-space, the same set (modulo Unicode version).
    return ch.isprintable()


def go_quote(s: str) -> str:
    """strconv.Quote."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return '"' + "".join(map(_quote_char, s)) + '"'


def go_quote_list(items: list[str]) -> str:
    """fmt.Sprintf("%q", []string{...})."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def is_go_letter(ch: str) -> bool:
    """unicode.IsLetter."""
    return unicodedata.category(ch).startswith("L")


def is_go_digit(ch: str) -> bool:
    """unicode.IsDigit (category Nd only)."""
    return unicodedata.category(ch) == "Nd"


# ---------------------------------------------------------------------------------------
# Line parsers: each takes the instruction's argument text and returns the values of the
# node chain BuildKit would build, plus whether the arguments were a JSON array.
# ---------------------------------------------------------------------------------------

ERR_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"

# BuildKit's reWhitespace / tokenWhitespace.
RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_GO_SPACE_RUN = re.compile(f"[{re.escape(GO_SPACES)}]+")
_RE_INVALID_BYTE = re.compile("[\udc80-\udcff]")

# unicode.IsSpace(rune(b)) for a single byte, as BuildKit tests bytes in
# extractBuilderFlags and parseHealthConfig (0x85 and 0xA0 count as spaces there).
_LATIN1_SPACE_BYTES = frozenset(b"\t\n\v\f\r \x85\xa0")
# The same bytes as they appear in our surrogate-escaped text.
_LATIN1_SPACE_CHARS = frozenset("\t\n\v\f\r \udc85\udca0")


class LineParseError(Exception):
    """An instruction's arguments that BuildKit's parser rejects."""


def replace_invalid(s: str) -> str:
    """Invalid bytes to U+FFFD, as Go does when it decodes then re-encodes runes."""
    if s.isascii():
        return s
    return _RE_INVALID_BYTE.sub("\ufffd", s)


def split_command(line: str, escape: str = "\\") -> tuple[str, list[str], str]:
    """splitCommand: the keyword (case kept), the leading ``--flags`` and the rest.
    ``escape`` is the Dockerfile's escape token (the ``# escape=`` directive)."""
    cmdline = RE_WHITESPACE.split(go_trim_space(line), maxsplit=1)
    flags: list[str] = []
    args = ""
    if len(cmdline) == 2:
        args, flags = extract_builder_flags(cmdline[1], escape)
    return cmdline[0], flags, go_trim_space(args)


def extract_builder_flags(line: str, escape: str = "\\") -> tuple[str, list[str]]:
    """extractBuilderFlags: BuildKit reads bytes here, and each byte becomes one Latin-1 rune.

    The escape character inside flag words is the Dockerfile's escape token, as in BuildKit
    v0.32 (its splitCommand gets the directives): with ``# escape=`` a backtick escapes and a
    backslash is an ordinary character (``--mount=target=C:\\cache`` keeps it)."""
    if len(escape) != 1 or not escape.isascii():
        raise ValueError(f"invalid escape token {escape!r}")
    i = 0
    n = len(line)
    while i < n and line[i] in _LATIN1_SPACE_CHARS:
        i += 1
    if not line.startswith("--", i):
        return line[i:], []  # the common case, with no flag at all
    rest, words = _extract_flags_bytes(to_bytes(line), ord(escape))
    return from_bytes(rest), [latin1_from_bytes(w) for w in words]


_RE_BYTE_WORD = re.compile(rb"[^\t\n\v\f\r \x85\xa0]+")


def _extract_flags_bytes(line: bytes, escape: int = 0x5C) -> tuple[bytes, list[bytes]]:
    # Fast path: flag words without quotes or escape characters are taken verbatim.
    words: list[bytes] = []
    for m in _RE_BYTE_WORD.finditer(line):
        w = m.group()
        if not w.startswith(b"--"):
            return line[m.start() :], words
        if b"'" in w or b'"' in w or escape in w:
            return _extract_flags_slow(line, escape)
        if w == b"--":
            return line[m.end() :], words
        words.append(w)
    return b"", words


def _extract_flags_slow(line: bytes, escape: int = 0x5C) -> tuple[bytes, list[bytes]]:
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[bytes] = []
    phase = in_spaces
    word = bytearray()
    quote = 0
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos != n else -1
        if phase == in_spaces:
            if pos == n:
                break
            if ch in _LATIN1_SPACE_BYTES:
                pos += 1
                continue
            if ch != 0x2D or pos + 1 == n or line[pos + 1] != 0x2D:
                return line[pos:], words
            phase = in_word
        if pos == n:
            if word != b"--" and (blank_ok or word):
                words.append(bytes(word))
            break
        if phase == in_word:
            if ch in _LATIN1_SPACE_BYTES:
                phase = in_spaces
                if word == b"--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(bytes(word))
                word = bytearray()
                blank_ok = False
                pos += 1
                continue
            if ch in (0x27, 0x22):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # a backslash at the end is dropped
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return b"", words


def parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on spaces outside quotes; quotes and escapes are kept."""
    rest = replace_invalid(rest)
    if "'" not in rest and '"' not in rest and escape not in rest:
        return [w for w in _RE_GO_SPACE_RUN.split(rest) if w]
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    n = len(rest)
    pos = 0
    while True:
        ch = rest[pos] if pos != n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch in _SPACE_SET:
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if ch in _SPACE_SET:
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the very end is dropped
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def parse_name_val(rest: str, key: str, escape: str) -> list[str]:
    """parseNameVal (ENV, LABEL): ``k v...`` -> k, v, "" ; ``k=v ...`` -> k, v, "=" each."""
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise LineParseError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise LineParseError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        k, v = word.split("=", 1)
        out += (k, v, "=")
    return out


def parse_strings_whitespace_delimited(rest: str) -> list[str]:
    if rest == "":
        return []
    return RE_WHITESPACE.split(rest)


def parse_string(rest: str) -> list[str]:
    return [rest] if rest else []


class _NotJSON(Exception):
    pass


def _go_number(s: str) -> float:
    # encoding/json decodes numbers into float64; one out of range is an Unmarshal error.
    f = float(s)
    if f in (float("inf"), float("-inf")):
        raise _NotJSON(s)
    return f


def _no_constant(s: str) -> object:
    raise _NotJSON(s)  # NaN / Infinity are not JSON


_JSON_DECODER = json.JSONDecoder(
    parse_float=_go_number, parse_int=_go_number, parse_constant=_no_constant
)


def parse_json(rest: str) -> list[str] | None:
    """parseJSON: the strings of a JSON array, None if not one; raises for non-strings."""
    rest = rest.lstrip(GO_SPACES)
    if not rest.startswith("["):
        return None
    try:
        value = _JSON_DECODER.decode(rest)
    except (ValueError, _NotJSON):
        return None
    except RecursionError:
        # Deeply nested arrays are valid JSON to Go (up to 10000 levels) and so not strings.
        raise LineParseError(ERR_NOT_STRING_ARRAY) from None
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise LineParseError(ERR_NOT_STRING_ARRAY)
        # Go replaces invalid UTF-8 and unpaired surrogate escapes with U+FFFD.
        if not item.isascii():
            item = _RE_SURROGATE.sub("\ufffd", item)
        out.append(item)
    return out


_RE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_maybe_json(rest: str) -> tuple[list[str], bool]:
    if rest == "":
        return [], False
    values = parse_json(rest)
    if values is not None:
        return values, True
    return [rest], False


def parse_maybe_json_to_list(rest: str) -> tuple[list[str], bool]:
    values = parse_json(rest)
    if values is not None:
        return values, True
    return parse_strings_whitespace_delimited(rest), False


def parse_health_config(rest: str) -> tuple[list[str], bool]:
    """parseHealthConfig: the type word (found byte by byte), then parseMaybeJSON."""
    b = to_bytes(rest)
    n = len(b)
    sep = 0
    while sep < n and b[sep] not in _LATIN1_SPACE_BYTES:
        sep += 1
    nxt = sep
    while nxt < n and b[nxt] in _LATIN1_SPACE_BYTES:
        nxt += 1
    if sep == 0:
        return [], False
    cmd, is_json = parse_maybe_json(from_bytes(b[nxt:]))
    return [from_bytes(b[:sep]), *cmd], is_json


# Instruction keyword (lower-case) -> line parser returning (values, is_json).
def _ws(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_strings_whitespace_delimited(rest), False


def _str(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_string(rest), False


def _env(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_name_val(rest, "ENV", escape), False


def _label(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_name_val(rest, "LABEL", escape), False


def _arg(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_words(rest, escape), False


def _maybe_json(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_maybe_json(rest)


def _maybe_json_list(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_maybe_json_to_list(rest)


def _health(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_health_config(rest)


DISPATCH = {
    "add": _maybe_json_list,
    "arg": _arg,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _env,
    "expose": _ws,
    "from": _ws,
    "healthcheck": _health,
    "label": _label,
    "maintainer": _str,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _str,
    "user": _str,
    "volume": _maybe_json_list,
    "workdir": _str,
}


# ---------------------------------------------------------------------------------------
# The part of BuildKit's shell.Lex (ProcessWords with an empty environment and
# SkipUnsetEnv) that the parser uses to find heredoc words. Variables are never expanded
# here: with no environment and SkipUnsetEnv, ``$x`` and ``${x...}`` stay as written.
# ---------------------------------------------------------------------------------------


class ShellLexError(Exception):
    pass


_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ShellWords:
    """shell.Lex with escape ``\\``, SkipUnsetEnv, no environment; RawQuotes/RawEscapes set."""

    def __init__(self, *, raw_quotes: bool, raw_escapes: bool) -> None:
        self.raw_quotes = raw_quotes
        self.raw_escapes_default = raw_escapes
        self.escape = "\\"
        self._s = ""
        self._pos = 0
        self._raw_escapes = raw_escapes

    def process_words(self, word: str) -> list[str]:
        # text/scanner decodes runes: an invalid byte is read as U+FFFD, a leading BOM skipped.
        s = replace_invalid(word)
        if s.startswith("\ufeff"):
            s = s[1:]
        self._s = s
        self._pos = 0
        self._raw_escapes = self.raw_escapes_default
        # nesting runs on the shell lexer's explicit stack: no depth limit, no RecursionError
        _, words = trampoline(self._process_stop_on("", self._raw_escapes))
        return words

    # scanner helpers
    def _peek(self) -> str:
        return self._s[self._pos] if self._pos < len(self._s) else ""

    def _next(self) -> str:
        if self._pos < len(self._s):
            ch = self._s[self._pos]
            self._pos += 1
            return ch
        return ""

    def _process_stop_on(self, stop: str, raw_escapes: bool) -> Step[tuple[str, list[str]]]:
        saved = self._raw_escapes
        self._raw_escapes = raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while self._pos < len(self._s):
                ch = self._s[self._pos]
                if stop and ch == stop:
                    self._pos += 1
                    return "".join(result), words.get_words()
                if ch in "$'\"<":
                    if ch == "$":
                        tmp = yield self._process_dollar()
                        result.append(tmp)
                        words.add_string(tmp)
                    else:
                        if ch == "'":
                            tmp = self._process_single_quote()
                        elif ch == '"':
                            tmp = yield self._process_double_quote()
                        else:
                            tmp = self._process_possible_heredoc()
                        result.append(tmp)
                        words.add_raw_string(tmp)
                    continue
                ch = self._next()
                if ch == self.escape:
                    if self._raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self._next()
                    if ch == "":
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise ShellLexError(
                    f"unexpected end of statement while looking for matching {stop}"
                )
            return "".join(result), words.get_words()
        finally:
            self._raw_escapes = saved

    def _process_single_quote(self) -> str:
        out: list[str] = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self._next()
            if ch == "":
                raise ShellLexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _process_double_quote(self) -> Step[str]:
        out: list[str] = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            pk = self._peek()
            if pk == "":
                raise ShellLexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if pk == '"':
                ch = self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if pk == "$":
                out.append((yield self._process_dollar()))
                continue
            ch = self._next()
            if ch == self.escape:
                if self._raw_escapes:
                    out.append(ch)
                nxt = self._peek()
                if nxt == "":
                    continue  # the loop then reports the missing quote
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _process_possible_heredoc(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space: list[str] = []
        while (pk := self._peek()) and pk in _SPACE_SET:
            space.append(pk)
            self._next()
        return "<<" + "".join(space)

    def _process_dollar(self) -> Step[str]:
        self._next()
        if self._peek() != "{":
            name = self._process_name()
            return "$" + name if name else "$"
        self._next()
        pk = self._peek()
        if pk == "":
            raise ShellLexError("syntax error: missing '}'")
        if pk in "{}:":
            raise ShellLexError("syntax error: bad substitution")
        name = self._process_name()
        ch = self._next()
        if ch == "}":
            return "${" + name + "}"
        chs = ch if ch else "\ufffd"  # string(scanner.EOF) is U+FFFD in Go
        if ch == ":":
            ch = self._next()
            chs += ch if ch else "\ufffd"
            return (yield self._modifier(name, chs, "#%"))
        if ch and ch in "+-?#%":
            return (yield self._modifier(name, chs, "#%", first=ch))
        if ch == "/":
            if self._peek() == "/":
                self._next()
                chs += "/"
            try:
                pattern, _ = yield self._process_stop_on("/", True)
            except ShellLexError:
                if self._peek() == "":
                    raise ShellLexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                repl, _ = yield self._process_stop_on("}", True)
            except ShellLexError:
                if self._peek() == "":
                    raise ShellLexError("syntax error: missing '}'") from None
                raise
            # SkipUnsetEnv: Go formats "${%s/%s/%s}" (one slash even for //)
            return "${" + name + "/" + pattern + "/" + repl + "}"
        raise ShellLexError(f"unsupported modifier ({chs}) in substitution")

    def _modifier(self, name: str, chs: str, raw_for: str, first: str | None = None) -> Step[str]:
        op = first if first is not None else chs[-1:]
        try:
            word, _ = yield self._process_stop_on("}", op in raw_for and op != "")
        except ShellLexError:
            if self._peek() == "":
                raise ShellLexError("syntax error: missing '}'") from None
            raise
        return "${" + name + chs + word + "}"

    def _process_name(self) -> str:
        name: list[str] = []
        while (ch := self._peek()) != "":
            if not name and is_go_digit(ch):
                while (d := self._peek()) != "" and is_go_digit(d):
                    name.append(self._next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self._next()
            if not (is_go_letter(ch) or is_go_digit(ch) or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)
