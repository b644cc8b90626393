"""Dockerfile parser: a faithful port of BuildKit's ``frontend/dockerfile/parser``.

``parse()`` turns a Dockerfile into the same low-level tree BuildKit builds (its ``Node``),
so that ``dump()`` prints byte for byte what BuildKit's ``Node.Dump()`` prints. The tree is
deliberately raw: quotes are kept, variables are not expanded and unknown instructions are
accepted; the instruction layer interprets it.

Text is handled as ``str`` decoded with ``surrogateescape``, so bytes that are not UTF-8
survive (BuildKit works on bytes) and are quoted as ``\\xNN`` by ``dump()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from xarch.frontend.dockerfile._directives import (
    Directive,
    DirectiveError,
    DirectiveParser,
    detect_syntax,
    parse_directive,
)
from xarch.frontend.dockerfile._line_parsers import (
    DISPATCH,
    GO_SPACES,
    LineParseError,
    ShellLexError,
    ShellWords,
    from_bytes,
    go_lower,
    go_quote,
    go_quote_list,
    go_trim_space,
    split_command,
    to_bytes,
)
from xarch.frontend.dockerfile.errors import DockerfileError

__all__ = [
    "INSTRUCTIONS",
    "MAX_LINE_BYTES",
    "Directive",
    "DockerfileError",
    "Heredoc",
    "Node",
    "ParseResult",
    "Warning",
    "chomp_heredoc_content",
    "detect_syntax",
    "dump",
    "heredocs_from_line",
    "parse",
    "parse_directive",
    "parse_heredoc",
    "suggest_instruction",
]

# bufio.Scanner's default limit (MaxScanTokenSize - 1): longer lines are an error.
MAX_LINE_BYTES = 65535
DEFAULT_ESCAPE = "\\"

INSTRUCTIONS = (
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)

# Instructions whose arguments may open heredocs; ONBUILD may wrap one of them.
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
_HEREDOC_COMPOUND = frozenset({"onbuild"})

_EMPTY_CONTINUATION_DETAIL = "Empty continuation lines will become errors in a future release"
_EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"


@dataclass(eq=False)
class Heredoc:
    """A here-document an instruction takes (``<<NAME``); content is raw (never chomped)."""

    name: str
    content: str
    expand: bool
    chomp: bool
    file_descriptor: int = 0


@dataclass(eq=False, slots=True)
class Node:
    """BuildKit's parser.Node.

    An instruction node has ``value`` = the keyword (lower-cased), ``next`` = its first
    argument node, and the argument nodes chain through ``next``. ONBUILD's single argument
    node has an empty value and the wrapped instruction in ``children``. The root node has
    one child per instruction.
    """

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)

    def dump(self) -> str:
        """Node.Dump(), exactly (iterative, so deep ONBUILD nesting cannot overflow)."""
        stack: list[_DumpFrame] = [_DumpFrame(self)]
        result = ""
        while stack:
            frame = stack[-1]
            if frame.pending is not None:
                frame.parts.append("(" + result + ")\n" if frame.pending.is_child else " " + result)
                frame.pending = None
            while frame.index < len(frame.items):
                item = frame.items[frame.index]
                frame.index += 1
                if item.is_child or item.node.children:
                    frame.pending = item
                    stack.append(_DumpFrame(item.node))
                    break
                frame.parts.append(" " + go_quote(item.node.value))
            else:
                stack.pop()
                result = go_trim_space("".join(frame.parts))
        return result

    def args(self) -> list[str]:
        """Values of the ``next`` chain (the instruction's arguments)."""
        out: list[str] = []
        n = self.next
        while n is not None:
            out.append(n.value)
            n = n.next
        return out

    def iter_args(self) -> list[Node]:
        out: list[Node] = []
        n = self.next
        while n is not None:
            out.append(n)
            n = n.next
        return out

    @property
    def is_json(self) -> bool:
        return bool(self.attributes.get("json"))


@dataclass(frozen=True)
class _DumpItem:
    node: Node
    is_child: bool


class _DumpFrame:
    __slots__ = ("index", "items", "parts", "pending")

    def __init__(self, node: Node) -> None:
        self.parts = [go_lower(node.value)]
        if node.flags:
            self.parts.append(" " + go_quote_list(node.flags))
        self.items = [_DumpItem(c, True) for c in node.children]
        n = node.next
        while n is not None:
            self.items.append(_DumpItem(n, False))
            n = n.next
        self.index = 0
        self.pending: _DumpItem | None = None


@dataclass(frozen=True)
class Warning:  # mirrors BuildKit's parser.Warning (shadows the builtin on purpose)
    short: str
    detail: str
    line: int
    url: str = _EMPTY_CONTINUATION_URL


@dataclass
class ParseResult:
    ast: Node
    warnings: list[Warning]
    escape_token: str
    directives: dict[str, str]  # lower-cased name -> value (syntax, escape, check)
    directive_lines: dict[str, int] = field(default_factory=dict)


def dump(result_or_node: ParseResult | Node) -> str:
    """What ``xarch dockerfile parse --dump`` prints: root.Dump() + "\\n" (TestParseCases)."""
    node = result_or_node.ast if isinstance(result_or_node, ParseResult) else result_or_node
    return node.dump() + "\n"


# ---------------------------------------------------------------------------------------
# Heredoc helpers
# ---------------------------------------------------------------------------------------

# ^(\d*)<<(-?)\s*([^<]*)$ with Go's ASCII \d and \s.
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_MAX_UINT64 = (1 << 64) - 1


def parse_heredoc(src: str) -> Heredoc | None:
    """ParseHeredoc: the heredoc a word names (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``), or None.

    Raises DockerfileError for a malformed delimiter such as ``<<'EOF``.
    """
    try:
        return _heredoc_from_word(src)
    except ShellLexError as e:
        raise DockerfileError(str(e), source_line=src) from None


def _heredoc_from_word(src: str) -> Heredoc | None:
    m = _RE_HEREDOC.match(src)
    if m is None:
        return None
    digits, dash, rest = m.groups()
    if rest == "":
        return None
    # strconv.ParseUint with its error ignored: "" is 0, an overflow saturates.
    fd = min(int(digits), _MAX_UINT64) if digits else 0
    words = ShellWords(raw_quotes=False, raw_escapes=False).process_words(rest)
    if len(words) != 1:
        return None
    raw = ShellWords(raw_quotes=True, raw_escapes=False).process_words(rest)
    if len(raw) != len(words):
        raise ShellLexError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word = words[0]
    # Quotes that vanish when quotes are processed mean part of the name was quoted, and
    # a quoted delimiter disables expansion (escaped quotes count the same on both sides).
    quoted = (raw[0].count("'") + raw[0].count('"')) != (word.count("'") + word.count('"'))
    return Heredoc(name=word, content="", expand=not quoted, chomp=dash == "-", file_descriptor=fd)


def heredocs_from_line(line: str) -> list[Heredoc]:
    """heredocsFromLine: every heredoc a (joined) instruction line opens, in order."""
    try:
        words = ShellWords(raw_quotes=True, raw_escapes=True).process_words(line)
    except ShellLexError:
        words = []  # BuildKit ignores a lexing error here: no heredocs
    docs: list[Heredoc] = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc_content(src: str) -> str:
    """ChompHeredocContent: strip leading tabs from every line (``<<-``)."""
    return _RE_LEADING_TABS.sub("", src)


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


def _escape_regex_fn(escape: str) -> Callable[[str], tuple[str, bool]]:
    """trimContinuationCharacter for one escape token.

    BuildKit's regex is ``([^E])E[ \\t]*$|^E[ \\t]*$``: a trailing escape token continues the
    line unless it is itself escaped; a line holding only the token continues too.
    """

    def trim(line: str) -> tuple[str, bool]:
        body = line.rstrip(" \t")
        if not body.endswith(escape):
            return line, True
        if len(body) == 1:
            return "", False
        if body[-2] == escape:
            return line, True
        return body[:-1], False

    return trim


def _is_comment(line: str) -> bool:
    return line.lstrip(GO_SPACES).startswith("#")


def _split_lines(text: str) -> list[str]:
    """BuildKit's scanLines: split after each \\n, keeping it; no empty last line."""
    parts = text.split("\n")
    last = parts.pop()
    lines = [p + "\n" for p in parts]
    if last:
        lines.append(last)
    return lines


def _byte_len(s: str) -> int:
    return len(s) if s.isascii() else len(to_bytes(s))


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


class _Parser:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.escape = DEFAULT_ESCAPE
        self.trim_continuation = _escape_regex_fn(DEFAULT_ESCAPE)
        self.directive_parser = DirectiveParser("#")
        self.directives: dict[str, str] = {}
        self.directive_lines: dict[str, int] = {}

    def error(
        self, message: str, line: int | None, source: str | None = None, hint: str | None = None
    ) -> DockerfileError:
        return DockerfileError(
            message, filename=self.filename, line=line or None, source_line=source, hint=hint
        )

    def possible_directive(self, token: str, line_no: int) -> bool:
        try:
            d = self.directive_parser.parse_line(token)
        except DirectiveError as e:
            raise self.error(str(e), line_no, token) from None
        if d is None:
            return False
        if d.name == "escape":
            if d.value not in ("`", "\\"):
                raise self.error(
                    f"invalid escape token '{d.value}' does not match ` or \\", line_no, token
                )
            self.escape = d.value
            self.trim_continuation = _escape_regex_fn(d.value)
        self.directives[d.name] = d.value
        self.directive_lines[d.name] = line_no
        return True

    def process_line(self, raw: str, strip_left: bool, line_no: int) -> tuple[str, bool]:
        token = _trim_newline(raw)
        if strip_left:
            token = token.lstrip(GO_SPACES)
        ok = self.possible_directive(token, line_no)
        if _is_comment(token):
            token = ""
        return token, ok

    def node_from_line(self, line: str, comments: list[str]) -> Node:
        """newNodeFromLine; ONBUILD nests iteratively so any depth parses like in Go."""
        outer: list[Node] = []
        while True:
            cmd, flags, args = split_command(line, self.escape)
            key = go_lower(cmd)
            node = Node(
                value=key,
                original=line,
                flags=flags,
                prev_comment=comments if not outer else [],
            )
            if key == "onbuild":
                if not args:
                    break
                outer.append(node)
                line = args
                continue
            fn = DISPATCH.get(key)
            if fn is None:
                node.next = Node()  # parseIgnore: an unknown instruction keeps one empty arg
            else:
                values, is_json = fn(args, self.escape)
                if is_json:
                    node.attributes = {"json": True}
                node.next = _chain(values)
            break
        while outer:
            parent = outer.pop()
            parent.next = Node(children=[node])
            node = parent
        return node

    def parse(self, text: str) -> ParseResult:
        if text.startswith("\ufeff"):
            text = text[1:]  # BOM on the first line
        lines = _split_lines(text)
        too_long_at = None
        for i, ln in enumerate(lines):
            if len(ln) > MAX_LINE_BYTES // 4 and _byte_len(ln.rstrip("\n")) > MAX_LINE_BYTES:
                too_long_at = i
                lines = lines[:i]  # the scanner stops there
                break

        root = Node(start_line=-1)
        warnings: list[Warning] = []
        comments: list[str] = []
        current = 0
        total = len(lines)
        idx = 0
        while idx < total:
            raw = lines[idx]
            idx += 1
            if raw.lstrip(GO_SPACES).startswith("#"):
                # BuildKit drops the line's first *byte*, even when that byte starts a
                # multi-byte space such as U+3000 (the rest then reads as invalid bytes).
                rest = raw[1:] if raw.isascii() else from_bytes(to_bytes(raw)[1:])
                comment = go_trim_space(rest)
                if comment == "":
                    comments = []
                else:
                    comments.append(comment)
            token, is_directive = self.process_line(raw, True, current + 1)
            if is_directive and comments:
                comments.pop()
            current += 1
            start_line = current
            buf, end_of_line = self.trim_continuation(token)
            if end_of_line and buf == "":
                continue
            parts = [buf]
            empty_continuation = False
            while not end_of_line and idx < total:
                raw = lines[idx]
                idx += 1
                token, _ = self.process_line(raw, False, current + 1)
                current += 1
                if _is_comment(raw):
                    continue
                if token.lstrip(GO_SPACES) == "":
                    empty_continuation = True
                    continue
                token, end_of_line = self.trim_continuation(token)
                parts.append(token)
            line = "".join(parts)

            if empty_continuation:
                warnings.append(
                    Warning(
                        short="Empty continuation line found in: " + line,
                        detail=_EMPTY_CONTINUATION_DETAIL,
                        line=current,
                    )
                )

            try:
                child = self.node_from_line(line, comments)
            except LineParseError as e:
                raise self.error(str(e), start_line, line) from None

            if "<<" in line and _can_contain_heredoc(child):
                try:
                    docs = heredocs_from_line(line)
                except DockerfileError as e:
                    raise self.error(e.message, start_line, line) from None
                for doc in docs:
                    terminated = False
                    body: list[str] = []
                    while idx < total:
                        raw = lines[idx]
                        idx += 1
                        current += 1
                        candidate = _trim_newline(raw)
                        if doc.chomp:
                            candidate = candidate.lstrip("\t")
                        if candidate == doc.name:
                            terminated = True
                            break
                        body.append(raw)
                    if not terminated:
                        raise self.error("unterminated heredoc", start_line, line)
                    doc.content = "".join(body)
                    child.heredocs.append(doc)

            child.start_line = start_line
            child.end_line = current
            if root.start_line < 0:
                root.start_line = start_line
            root.end_line = current
            root.children.append(child)
            comments = []

        if root.start_line < 0:
            raise self.error(
                "file with no instructions",
                None,
                hint="a Dockerfile needs at least one instruction, e.g. FROM",
            )
        if too_long_at is not None:
            raise self.error(
                f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}",
                too_long_at + 1,
            )
        return ParseResult(
            ast=root,
            warnings=warnings,
            escape_token=self.escape,
            directives=dict(self.directives),
            directive_lines=dict(self.directive_lines),
        )


def _chain(values: list[str]) -> Node | None:
    head: Node | None = None
    for v in reversed(values):
        head = Node(value=v, next=head)
    return head


def _can_contain_heredoc(node: Node) -> bool:
    if node.value in _HEREDOC_COMPOUND and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value in _HEREDOC_INSTRUCTIONS and not node.attributes.get("json")


def _to_text(data: bytes | str) -> str:
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = data.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8
        return from_bytes(raw)
    return from_bytes(data)


def parse(data: bytes | str, filename: str = "Dockerfile") -> ParseResult:
    """Parse a Dockerfile the way BuildKit's parser.Parse does.

    Raises DockerfileError (and nothing else) for input BuildKit's parser rejects.
    """
    return _Parser(filename).parse(_to_text(data))


# ---------------------------------------------------------------------------------------
# "did you mean ...?" for the instruction layer
# ---------------------------------------------------------------------------------------


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: Levenshtein plus adjacent transpositions."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def suggest_instruction(word: str) -> str | None:
    """The known instruction closest to ``word`` (upper-case), if it is plausibly a typo."""
    w = word.upper()
    if not w or w in INSTRUCTIONS or len(w) > 32:
        return None
    best: tuple[int, str] | None = None
    for name in INSTRUCTIONS:
        d = _edit_distance(w, name)
        if best is None or d < best[0]:
            best = (d, name)
    if best is None:
        return None
    dist, name = best
    limit = 1 if len(w) <= 3 else 2
    if dist <= limit and dist < len(w):
        return name
    return None
