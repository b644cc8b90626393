"""Our own golden cases (testdata/<case>/{Dockerfile,result[,heredocs.json]} and testdata/fail).

Each ``result`` was derived by reasoning from BuildKit's parser source, for features the
shared BuildKit vectors do not cover (heredocs, backtick escape, flags, CRLF, BOM, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import dump, parse

TESTDATA = Path(__file__).resolve().parent / "testdata"
CASES = sorted(p.name for p in TESTDATA.iterdir() if p.is_dir() and p.name != "fail")
FAIL_CASES = sorted(p.name for p in (TESTDATA / "fail").iterdir() if p.is_dir())

# What each failing case must say (the parser's message, without file:line).
FAIL_MESSAGES = {
    "env-word-without-equals": 'Syntax error - can\'t find = in "B". Must be of the form: name=value',
    "healthcheck-non-string-json": "when using JSON array syntax, arrays must be comprised of strings only",
    "invalid-escape-directive": "invalid escape token 'x' does not match ` or \\",
    "label-single-word": "LABEL must have two arguments",
    "nested-json": "when using JSON array syntax, arrays must be comprised of strings only",
    "onbuild-bad-env": "ENV must have two arguments",
    "only-directives-and-comments": "file with no instructions",
    "repeated-directive": "only one syntax parser directive can be used",
    "unterminated-chomp-heredoc": "unterminated heredoc",
    "unterminated-heredoc": "unterminated heredoc",
}


def test_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len(FAIL_CASES) >= 6
    assert set(FAIL_CASES) == set(FAIL_MESSAGES)


@pytest.mark.parametrize("name", CASES)
def test_golden_dump(name: str) -> None:
    case = TESTDATA / name
    result = parse((case / "Dockerfile").read_bytes())
    assert dump(result).encode("utf-8") == (case / "result").read_bytes()


@pytest.mark.parametrize("name", CASES)
def test_golden_heredocs(name: str) -> None:
    case = TESTDATA / name
    result = parse((case / "Dockerfile").read_bytes())
    got = [
        [
            {
                "name": h.name,
                "content": h.content,
                "expand": h.expand,
                "chomp": h.chomp,
                "fd": h.file_descriptor,
            }
            for h in child.heredocs
        ]
        for child in result.ast.children
    ]
    expected_file = case / "heredocs.json"
    if expected_file.exists():
        assert got == json.loads(expected_file.read_text(encoding="utf-8"))
    else:
        assert not any(got)


@pytest.mark.parametrize("name", FAIL_CASES)
def test_golden_failures(name: str) -> None:
    data = (TESTDATA / "fail" / name / "Dockerfile").read_bytes()
    with pytest.raises(DockerfileError) as info:
        parse(data, filename=f"{name}/Dockerfile")
    err = info.value
    assert err.message == FAIL_MESSAGES[name]
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"{name}/Dockerfile")


def test_golden_metadata() -> None:
    """Directives, escape token and warnings of the golden cases that exercise them."""
    r = parse((TESTDATA / "check-and-syntax-directives" / "Dockerfile").read_bytes())
    assert r.directives == {
        "syntax": "docker/dockerfile:1.7",
        "check": "skip=JSONArgsRecommended;error=true",
    }
    assert r.escape_token == "\\"
    assert r.ast.children[0].prev_comment == ["an ordinary comment"]
    assert r.ast.children[1].prev_comment == ["check=error=false is just a comment here"]

    r = parse((TESTDATA / "backtick-escape" / "Dockerfile").read_bytes())
    assert r.escape_token == "`"
    assert r.directives == {"escape": "`"}

    r = parse((TESTDATA / "bom" / "Dockerfile").read_bytes())
    assert r.directives == {"syntax": "docker/dockerfile:1"}

    r = parse((TESTDATA / "comments-in-continuation" / "Dockerfile").read_bytes())
    assert [w.line for w in r.warnings] == [8]
    assert [(c.start_line, c.end_line) for c in r.ast.children] == [(1, 1), (2, 8), (9, 11)]

    r = parse((TESTDATA / "directive-after-instruction" / "Dockerfile").read_bytes())
    assert r.escape_token == "\\" and r.directives == {}

    r = parse((TESTDATA / "crlf-line-endings" / "Dockerfile").read_bytes())
    assert [(c.start_line, c.end_line) for c in r.ast.children] == [
        (1, 1),
        (2, 3),
        (5, 5),
        (6, 6),
        (7, 9),
        (10, 10),
    ]
