"""BuildKit's own parser test vectors (shared/conformance/buildkit-parser), all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.vectors import vectors
from xarch.frontend.dockerfile._directives import DirectiveParser
from xarch.frontend.dockerfile._line_parsers import (
    ERR_NOT_STRING_ARRAY,
    LineParseError,
    parse_json,
    parse_name_val,
    parse_words,
)
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import (
    chomp_heredoc_content,
    detect_syntax,
    dump,
    heredocs_from_line,
    parse,
    parse_directive,
    parse_heredoc,
)

SUITE = "buildkit-parser"
POSITIVE = [
    "ADD-COPY-with-JSON", "args", "brimstone-consuldock", "brimstone-docker-consul",
    "continue-at-eof", "continueIndent", "cpuguy83-nagios", "docker", "env", "escape",
    "escape-after-comment", "escape-nonewline", "escape-with-syntax", "escapes", "flags",
    "health", "influxdb", "jeztah-invalid-json-json-inside-string",
    "jeztah-invalid-json-json-inside-string-double", "jeztah-invalid-json-single-quotes",
    "jeztah-invalid-json-unterminated-bracket", "jeztah-invalid-json-unterminated-string",
    "json", "kartar-entrypoint-oddities", "lk4d4-the-edge-case-generator", "mail",
    "multiple-volumes", "mumble", "nginx", "tf2", "trailing-backslash", "weechat", "znc",
]  # fmt: skip
NEGATIVE = ["empty_dockerfile", "env_no_value", "only_comments", "shykes-nested-json"]


@pytest.fixture(scope="module")
def suite() -> Path:
    return vectors(SUITE)


@pytest.fixture(scope="module")
def misc(suite: Path) -> dict[str, Any]:
    return json.loads((suite / "extra" / "misc_cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def heredoc_cases(suite: Path) -> dict[str, Any]:
    return json.loads((suite / "extra" / "heredoc_cases.json").read_text(encoding="utf-8"))


def _table(tables: dict[str, Any], prefix: str) -> Any:
    """misc_cases.json keys carry explanations after the Go test name."""
    matches = [v for k, v in tables.items() if k == prefix or k.startswith(prefix + " ")]
    assert len(matches) == 1, f"table {prefix!r} not found exactly once"
    return matches[0]


def test_suite_has_every_case(suite: Path) -> None:
    assert sorted(p.name for p in (suite / "testfiles").iterdir()) == sorted(POSITIVE)
    assert sorted(p.name for p in (suite / "testfiles-negative").iterdir()) == sorted(NEGATIVE)


@pytest.mark.parametrize("name", POSITIVE)
def test_parse_cases(suite: Path, name: str) -> None:
    case = suite / "testfiles" / name
    expected = (case / "result").read_bytes().replace(b"\r\n", b"\n")
    actual = dump(parse((case / "Dockerfile").read_bytes()))
    assert actual.encode("utf-8") == expected


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_cases(suite: Path, name: str) -> None:
    with pytest.raises(DockerfileError):
        parse((suite / "testfiles-negative" / name / "Dockerfile").read_bytes())


def test_negative_messages(suite: Path) -> None:
    neg = suite / "testfiles-negative"
    expected = {
        "empty_dockerfile": "file with no instructions",
        "only_comments": "file with no instructions",
        "env_no_value": "ENV must have two arguments",
        "shykes-nested-json": ERR_NOT_STRING_ARRAY,
    }
    for name, message in expected.items():
        with pytest.raises(DockerfileError) as info:
            parse((neg / name / "Dockerfile").read_bytes())
        assert info.value.message == message
        assert str(info.value).startswith("Dockerfile")


# --- misc_cases.json -----------------------------------------------------------------


def test_parse_words(misc: dict[str, Any]) -> None:
    cases = _table(misc, "TestParseWords")
    assert cases
    for case in cases:
        assert parse_words(case["input"], "\\") == case["expect"], case


def test_line_numbers(suite: Path, misc: dict[str, Any]) -> None:
    spec = _table(misc, "TestParseIncludesLineNumbers")
    data = (suite / "extra" / spec["dockerfile"]).resolve().read_bytes()
    ast = parse(data).ast
    assert ast.start_line == spec["root_StartLine"]
    assert ast.end_line == spec["root_EndLine"]
    assert len(ast.children) == spec["num_children"]
    assert [[c.start_line, c.end_line] for c in ast.children] == spec["children_start_end"]


def test_empty_continuation_warnings(misc: dict[str, Any]) -> None:
    spec = _table(misc, "TestParseWarnsOnEmptyContinutationLine")
    result = parse(spec["dockerfile"])
    assert len(result.warnings) == spec["num_warnings"]
    for needle in spec["warning0_short_contains"]:
        assert needle in result.warnings[0].short
    for needle in spec["warning1_short_contains"]:
        assert needle in result.warnings[1].short
    assert spec["warning0_detail0_contains"] in result.warnings[0].detail
    prefix = spec["full_short_format"].split("<", 1)[0]
    assert all(w.short.startswith(prefix) for w in result.warnings)


def test_scanner_error(misc: dict[str, Any]) -> None:
    spec = _table(misc, "TestParseReturnsScannerErrors")
    text = spec["dockerfile"].replace("<'a' * 65536>", "a" * 65536)
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert info.value.message == spec["error"]


def test_json_arrays_of_strings(misc: dict[str, Any]) -> None:
    spec = _table(misc, "TestJSONArraysOfStrings")
    for src, expected in spec["valid"]:
        assert parse_json(src) == expected, src
        node = parse("CMD " + src).ast.children[0]
        assert node.args() == expected
        assert node.attributes == {"json": True}
    invalid = _table(spec, "invalid_not_string_array")
    assert invalid
    for src in invalid:
        with pytest.raises(LineParseError, match="arrays must be comprised of strings only"):
            parse_json(src)
        with pytest.raises(DockerfileError, match="comprised of strings only"):
            parse("CMD " + src)


def test_directives_parse_all(misc: dict[str, Any]) -> None:
    cases = _table(misc, "TestDirectives")
    for case in cases:
        got = [[d.name, d.value] for d in DirectiveParser().parse_all(case["input"])]
        assert got == case["directives"], case


def _check_detect(case: dict[str, Any], got: tuple[str, str, int] | None) -> None:
    assert (got is not None) == case["ok"], case
    ref, cmdline, line = got if got is not None else ("", "", 0)
    if "ref" in case:
        assert ref == case["ref"], case
    if "cmdline" in case:
        assert cmdline == case["cmdline"], case
    if "line" in case:
        assert line == case["line"], case


def _case_bytes(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case.get("input_hex_prefix", "")) + case["input"].encode("utf-8")


def test_detect_syntax(misc: dict[str, Any]) -> None:
    cases = _table(misc, "TestDetectSyntax")
    assert cases
    for case in cases:
        _check_detect(case, detect_syntax(_case_bytes(case)))


def test_parse_directive_check(misc: dict[str, Any]) -> None:
    cases = _table(misc, "TestParseDirective")
    assert cases
    for case in cases:
        _check_detect(case, parse_directive("check", _case_bytes(case)))


def test_directive_regex_and_errors(misc: dict[str, Any]) -> None:
    assert "syntax, escape, check" in misc["directive_regex"]
    for name in ("syntax", "escape", "check"):
        value = "`" if name == "escape" else "x"
        with pytest.raises(DockerfileError, match=f"only one {name} parser directive can be used"):
            parse(f"# {name}={value}\n#{name.upper()} = {value}\nFROM a\n")
    template = misc["escape_token_error"]
    with pytest.raises(DockerfileError) as info:
        parse("# escape=x\nFROM a\n")
    assert info.value.message == template.replace("<s>", "x")


def test_parse_name_val(misc: dict[str, Any]) -> None:
    cases = _table(misc, "TestParseNameVal")
    for case in cases:
        if "error" in case:
            with pytest.raises(LineParseError) as info:
                parse_name_val(case["input"], case["key"], "\\")
            assert str(info.value) == case["error"]
        else:
            assert parse_name_val(case["input"], case["key"], "\\") == case["nodes"]


# --- heredoc_cases.json --------------------------------------------------------------


def test_heredoc_extraction(suite: Path, heredoc_cases: dict[str, Any]) -> None:
    spec = heredoc_cases["TestParseExtractsHeredoc"]
    ast = parse((suite / "extra" / spec["dockerfile"]).read_bytes()).ast
    expected = spec["expected_children_heredocs_from_index_1"]
    assert len(ast.children) == len(expected) + 1
    for child, want in zip(ast.children[1:], expected):
        got = [
            {
                "Name": h.name,
                "Content": h.content,
                "Expand": h.expand,
                "Chomp": h.chomp,
                "FileDescriptor": h.file_descriptor,
            }
            for h in child.heredocs
        ]
        assert (got or None) == want, child.original


def test_heredocs_never_in_dump(suite: Path, heredoc_cases: dict[str, Any]) -> None:
    spec = heredoc_cases["TestParseExtractsHeredoc"]
    out = dump(parse((suite / "extra" / spec["dockerfile"]).read_bytes()))
    assert "hello world" not in out.replace('"hello world"', "")
    assert "print('hello world')" not in out


def test_json_form_disables_heredocs(suite: Path, heredoc_cases: dict[str, Any]) -> None:
    spec = heredoc_cases["TestParseJSONHeredoc"]
    ast = parse((suite / "extra" / spec["dockerfile"]).read_bytes()).ast
    assert len(ast.children) == 4
    for child in ast.children[1:4]:
        assert child.heredocs == []
        assert child.attributes == {"json": True}


def test_heredoc_chomp(heredoc_cases: dict[str, Any]) -> None:
    spec = heredoc_cases["TestHeredocChomp"]
    assert chomp_heredoc_content(spec["input"]) == spec["ChompHeredocContent"]


def test_parse_heredoc_helpers(heredoc_cases: dict[str, Any]) -> None:
    spec = heredoc_cases["TestParseHeredocHelpers"]
    for src in spec["ParseHeredoc_valid_name_EOF"]:
        doc = parse_heredoc(src)
        assert doc is not None and doc.name == "EOF", src
    for src in spec["ParseHeredoc_error"]:
        with pytest.raises(DockerfileError):
            parse_heredoc(src)
    for src in spec["ParseHeredoc_not_heredoc_nil_no_error"]:
        assert parse_heredoc(src) is None, src


def test_heredocs_from_line(heredoc_cases: dict[str, Any]) -> None:
    # As the Go test does: every heredoc found must carry the expected name in order.
    cases = heredoc_cases["TestHeredocsFromLine"]
    assert cases
    for case in cases:
        found = heredocs_from_line(case["line"])
        assert len(found) <= len(case["names"]), case
        for doc, name in zip(found, case["names"]):
            assert doc.name == name, case
    # The cases BuildKit actually resolves (not vacuous in the Go test).
    assert [h.name for h in heredocs_from_line("RUN <<EOF <<EOF2")] == ["EOF", "EOF2"]
    assert [h.name for h in heredocs_from_line("RUN << -EOF")] == ["-EOF"]
    assert heredocs_from_line("RUN 4<<EOF")[0].file_descriptor == 4
