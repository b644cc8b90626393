"""Unit tests for the Dockerfile parser: Go-compatible quoting, API shape, edge cases."""

from __future__ import annotations

import pytest

from xarch.errors import InputError
from xarch.frontend.dockerfile._line_parsers import (
    _extract_flags_bytes,
    _extract_flags_slow,
    extract_builder_flags,
    go_lower,
    go_quote,
    go_quote_list,
    go_trim_space,
    parse_words,
    split_command,
)
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import (
    MAX_LINE_BYTES,
    Heredoc,
    Node,
    ParseResult,
    Warning,
    dump,
    parse,
    suggest_instruction,
)

# --- Go's strconv.Quote ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("abc", '"abc"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00", '"\\x00"'),
        ("\x1b[0m", '"\\x1b[0m"'),
        ("\x7f", '"\\x7f"'),
        ("♥☃", '"♥☃"'),
        ("\u00a0", '"\\u00a0"'),  # a space other than U+0020 is not printable in Go
        ("\u0085", '"\\u0085"'),
        ("\u200b", '"\\u200b"'),  # format character
        ("\u2028", '"\\u2028"'),
        ("\ue000", '"\\ue000"'),  # private use
        ("\U000f0000", '"\\U000f0000"'),  # supplementary private use
        ("\U0001f600", '"\U0001f600"'),
        ("\ufffd", '"\ufffd"'),
        ("caf\udce9", '"caf\\xe9"'),  # invalid UTF-8 byte 0xE9 (surrogate-escaped)
        ("\udcff\udc80", '"\\xff\\x80"'),
    ],
)
def test_go_quote(value: str, quoted: str) -> None:
    assert go_quote(value) == quoted


def test_go_quote_list() -> None:
    assert go_quote_list(["--a=b", "--c"]) == '["--a=b" "--c"]'
    assert go_quote_list(['--x="y"']) == '["--x=\\"y\\""]'


def test_go_lower_and_trim() -> None:
    assert go_lower("RUN") == "run"
    assert go_lower("\u0130X") == "ix"  # unicode.ToLower maps one rune to one rune
    assert go_lower("R\udce9N") == "r\ufffdn"  # strings.Map re-encodes invalid bytes
    assert go_trim_space("\u3000\x85 a b\u00a0\t") == "a b"
    assert go_trim_space("\x1ca\x1c") == "\x1ca\x1c"  # not a space in Go


# --- line-level helpers -------------------------------------------------------------


def test_split_command() -> None:
    assert split_command("  RUN   --a=1 --b  echo hi  ") == ("RUN", ["--a=1", "--b"], "echo hi")
    assert split_command("CMD") == ("CMD", [], "")
    assert split_command("COPY --from=x") == ("COPY", ["--from=x"], "")


@pytest.mark.parametrize(
    "line",
    [
        "--a=1 --b=2 rest of line",
        "--a='x y' --b rest",
        '--a="x \\" y" rest',
        "--a=\\ b rest",
        "-- --x",
        "--a --",
        "--a=b\\",
        "--a='unterminated",
        "--x\u00e0y rest",  # UTF-8 C3 A0: the A0 byte ends the word, as in BuildKit
        "\t--a=1\x85--b rest",
        "",
        "--",
        "-x",
    ],
)
def test_flags_fast_path_matches_slow_path(line: str) -> None:
    raw = line.encode("utf-8", "surrogateescape")
    assert _extract_flags_bytes(raw) == _extract_flags_slow(raw)


def test_flags_are_read_as_latin1_bytes() -> None:
    rest, flags = extract_builder_flags("--chown=jos\u00e9 a b")
    assert flags == ["--chown=jos\u00c3\u00a9"]
    assert rest == "a b"


def test_flags_use_the_escape_token() -> None:
    """BuildKit v0.32 splits flags with the Dockerfile's escape token (corpus case
    escape-mount-flag): with escape=` a backslash is kept and a backtick escapes."""
    line = r"--mount=type=tmpfs,target=C:\cache --x=a`b cmd"
    assert extract_builder_flags(line) == ("cmd", ["--mount=type=tmpfs,target=C:cache", "--x=a`b"])
    assert extract_builder_flags(line, "`") == (
        "cmd", ["--mount=type=tmpfs,target=C:\\cache", "--x=ab"])
    assert split_command(r"RUN --m=a\b --n=`c x", "`") == ("RUN", ["--m=a\\b", "--n=c"], "x")
    # an escaped space stays in the word
    assert extract_builder_flags("--n=a` b x", "`") == ("x", ["--n=a b"])
    # quoted values: the token escapes inside quotes too, a backslash stays
    assert extract_builder_flags('--a="x\\y`"z" r', "`") == ("r", ['--a=x\\y"z'])
    raw = b"--m=a\\b --n=`c rest"
    assert _extract_flags_bytes(raw, 0x60) == _extract_flags_slow(raw, 0x60)
    with pytest.raises(ValueError):
        extract_builder_flags("--a=1 x", "ab")


def test_parser_passes_the_escape_directive_to_flags() -> None:
    node = parse("# escape=`\nFROM a\nRUN --mount=target=C:\\cache ls\n").ast.children[1]
    assert node.flags == ["--mount=target=C:\\cache"]
    node = parse("FROM a\nRUN --mount=target=C:\\cache ls\n").ast.children[1]
    assert node.flags == ["--mount=target=C:cache"]


def test_parse_words_escape_token() -> None:
    assert parse_words("a`  b c", "`") == ["a` ", "b", "c"]
    assert parse_words('\'a b\' "c\\" d"', "\\") == ["'a b'", '"c\\" d"']
    assert parse_words("x\\", "\\") == ["x"]
    assert parse_words("''", "\\") == ["''"]


# --- API shape ----------------------------------------------------------------------


def test_public_api_shape() -> None:
    r = parse(b"FROM a\nCOPY --from=b <<EOF /x\nbody\nEOF\n")
    assert isinstance(r, ParseResult)
    assert r.escape_token == "\\"
    assert r.directives == {}
    assert r.warnings == []
    root = r.ast
    assert isinstance(root, Node)
    assert [c.value for c in root.children] == ["from", "copy"]
    copy = root.children[1]
    assert copy.flags == ["--from=b"]
    assert copy.args() == ["<<EOF", "/x"]
    assert copy.original == "COPY --from=b <<EOF /x"
    assert (copy.start_line, copy.end_line) == (2, 4)
    assert copy.attributes == {}
    doc = copy.heredocs[0]
    assert isinstance(doc, Heredoc)
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "body\n", True, False)
    assert dump(r) == dump(root) == '(from "a")\n(copy ["--from=b"] "<<EOF" "/x")\n'
    assert copy.dump() == '(copy ["--from=b"] "<<EOF" "/x")'[1:-1]


def test_json_attribute_and_prev_comments() -> None:
    r = parse('# one\n# two\nFROM a\n#\n# three\nCMD ["x"]\nRUN y\n')
    from_, cmd, run = r.ast.children
    assert from_.prev_comment == ["one", "two"]
    assert cmd.prev_comment == ["three"]  # an empty "#" line resets the comment block
    assert run.prev_comment == []
    assert cmd.attributes == {"json": True} and cmd.is_json
    assert run.attributes == {}


def test_node_value_is_lowercased_original_kept() -> None:
    node = parse("FrOm Alpine").ast.children[0]
    assert node.value == "from"
    assert node.original == "FrOm Alpine"
    assert node.args() == ["Alpine"]


def test_warning_type() -> None:
    r = parse("FROM a\nRUN a \\\n\n b\n")
    assert r.warnings == [r.warnings[0]]
    w = r.warnings[0]
    assert isinstance(w, Warning)
    assert w.short == "Empty continuation line found in: RUN a  b"
    assert w.line == 4
    assert "future release" in w.detail


def test_str_and_bytes_inputs_agree() -> None:
    text = "FROM a\nLABEL x=\u2603\nRUN \udce9\n"
    assert dump(parse(text)) == dump(parse(text.encode("utf-8", "surrogateescape")))


# --- errors -------------------------------------------------------------------------


def test_error_is_input_error_with_location() -> None:
    with pytest.raises(DockerfileError) as info:
        parse(b"FROM a\n\nENV onlykey\n", filename="sub/Dockerfile.dev")
    err = info.value
    assert isinstance(err, InputError)
    assert err.filename == "sub/Dockerfile.dev"
    assert err.line == 3
    assert err.source_line == "ENV onlykey"
    assert str(err) == "sub/Dockerfile.dev:3: ENV must have two arguments | ENV onlykey"


def test_error_str_is_one_line() -> None:
    err = DockerfileError(
        "unknown instruction: FORM",
        line=12,
        source_line="FORM alpine\r\nmore",
        hint="did you mean FROM?",
    )
    assert str(err) == (
        "Dockerfile:12: unknown instruction: FORM (did you mean FROM?) | FORM alpine  more"
    )
    assert str(DockerfileError("boom")) == "Dockerfile: boom"


def test_error_line_for_continued_instruction() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUN ok\nLABEL \\\n  lonely\n")
    assert info.value.line == 3


def test_max_line_length_boundary() -> None:
    ok = b"FROM a\nLABEL x=" + b"a" * (MAX_LINE_BYTES - len(b"LABEL x=")) + b"\n"
    parse(ok)
    parse(ok.rstrip(b"\n"))  # the same limit without a final newline
    too_long = b"FROM a\nLABEL x=" + b"a" * (MAX_LINE_BYTES + 1 - len(b"LABEL x=")) + b"\n"
    with pytest.raises(DockerfileError, match="greater than max allowed size of 65535") as info:
        parse(too_long)
    assert info.value.line == 2
    # The limit counts bytes, not characters.
    multibyte = "FROM a\nLABEL x=" + "\u2603" * 21845 + "\n"
    with pytest.raises(DockerfileError, match="max allowed size"):
        parse(multibyte)
    # No instruction before the long line: BuildKit reports the empty file instead.
    with pytest.raises(DockerfileError, match="file with no instructions"):
        parse(b"#" * 70000)


def test_unterminated_heredoc_reports_instruction_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUN <<A <<B\nx\nA\ny\n")
    assert info.value.message == "unterminated heredoc"
    assert info.value.line == 2


# --- behaviours worth pinning --------------------------------------------------------


def test_deep_onbuild_nesting_does_not_overflow() -> None:
    depth = 5000
    r = parse("ONBUILD " * depth + "RUN x\n")
    out = dump(r)
    assert out == "(" + "onbuild (" * depth + 'run "x"' + ")" * depth + ")\n"


def test_heredoc_in_onbuild_and_lexing_errors() -> None:
    r = parse("FROM a\nONBUILD COPY <<F /f\ncontent\nF\n")
    assert r.ast.children[1].heredocs[0].content == "content\n"
    # An unterminated quote makes BuildKit's line lexer fail: no heredocs at all.
    r = parse("FROM a\nRUN <<EOF echo 'oops\nEOF\n")
    assert r.ast.children[1].heredocs == []
    assert [c.value for c in r.ast.children] == ["from", "run", "eof"]


def test_heredoc_terminator_matching() -> None:
    # Only the whole line (minus its newline) ends a heredoc; <<- also strips tabs.
    r = parse("FROM a\nRUN <<EOF\n EOF\nEOF \nEOF\r\n")
    assert r.ast.children[1].heredocs[0].content == " EOF\nEOF \n"
    r = parse("FROM a\nRUN <<-EOF\n\t\tEOF\n")
    assert r.ast.children[1].heredocs[0].content == ""


def test_empty_continuation_and_escape_only_lines() -> None:
    r = parse("\\\nFROM a\n")
    assert dump(r) == '(from "a")\n'
    assert r.ast.children[0].start_line == 1


@pytest.mark.parametrize(
    ("word", "suggestion"),
    [
        ("FORM", "FROM"),
        ("form", "FROM"),
        ("RUNN", "RUN"),
        ("COPPY", "COPY"),
        ("ENTRYPONT", "ENTRYPOINT"),
        ("EVN", "ENV"),
        ("FROM", None),
        ("XYZZY", None),
        ("", None),
    ],
)
def test_suggest_instruction(word: str, suggestion: str | None) -> None:
    assert suggest_instruction(word) == suggestion


def test_prev_comment_quirks() -> None:
    # BuildKit takes the comment text from the untrimmed line minus its first byte.
    r = parse("  # indented\nFROM a\n\u3000# wide\nRUN b\n")
    assert r.ast.children[0].prev_comment == ["# indented"]
    assert r.ast.children[1].prev_comment == ["\udc80\udc80# wide"]
    # A directive line is not a comment of the first instruction.
    r = parse("# syntax=x\n# about FROM\nFROM a\n")
    assert r.ast.children[0].prev_comment == ["about FROM"]
