"""Platform strings are taken as given, by one parser: surrounding whitespace and empty parts
are errors everywhere (never stripped), with the same message everywhere."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xarch.builder.bootstrap import parse_platforms as bootstrap_parse_platforms
from xarch.errors import InputError, UsageError
from xarch.oci.platform import Platform, parse_platform, parse_platforms

EXAMPLES = int(os.environ.get("XARCH_HYPOTHESIS_EXAMPLES", "300"))
EMPTY = "invalid platform '': expected 'os/arch[/variant]', e.g. 'linux/amd64'"

PADDED = ["linux/amd64\n", "linux/amd64\r\n", " linux/amd64", "linux/amd64 ", "\tarm64",
          "linux/arm/v7\u3000", "\n"]


@pytest.mark.parametrize("spec", PADDED)
def test_surrounding_whitespace_is_an_error(spec: str) -> None:
    with pytest.raises(InputError) as exc:
        Platform.parse(spec)
    msg = str(exc.value)
    assert "leading or trailing whitespace" in msg and repr(spec) in msg
    assert "\n" not in msg and "\r" not in msg  # one line: the string is shown escaped


@pytest.mark.parametrize("spec", PADDED)
def test_every_reader_rejects_whitespace_alike(spec: str) -> None:
    with pytest.raises(InputError) as direct:
        Platform.parse(spec)
    for read in (parse_platform, lambda s: parse_platforms([s]), lambda s: bootstrap_parse_platforms([s])):
        with pytest.raises(UsageError) as exc:
            read(spec)
        assert exc.value.message == direct.value.message


@pytest.mark.parametrize(
    ("values", "where"),
    [([""], ""), ([","], " in ','"), (["linux/amd64,"], " in 'linux/amd64,'"),
     ([",linux/amd64"], " in ',linux/amd64'"), (["linux/amd64", ""], "")],
)
def test_empty_platform_is_one_message(values: list[str], where: str) -> None:
    with pytest.raises(InputError) as exc:
        Platform.parse("")
    assert exc.value.message == EMPTY
    for read in (parse_platforms, bootstrap_parse_platforms):
        with pytest.raises(UsageError) as u:
            read(values)
        assert u.value.message == EMPTY + where
    with pytest.raises(UsageError) as one:
        parse_platform("")
    assert one.value.message == EMPTY


def test_space_after_comma_is_an_error_as_in_buildx() -> None:
    with pytest.raises(UsageError, match="leading or trailing whitespace"):
        parse_platforms(["linux/amd64, linux/arm64"])


def test_lists_are_split_normalized_and_deduplicated() -> None:
    got = parse_platforms(["linux/amd64,linux/arm64", "x86_64", "aarch64,linux/arm/v7"])
    assert [str(p) for p in got] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert parse_platforms([]) == ()
    assert bootstrap_parse_platforms(["arm64,amd64"]) == parse_platforms(["arm64,amd64"])


_SPECS = st.sampled_from(["linux/amd64", "arm64", "linux/arm/v7", "windows/amd64", "x86_64",
                          "linux/riscv64", "LINUX/ARM64"])
_SPACE = st.text(alphabet=" \t\n\r\v\f\u3000\xa0", min_size=1, max_size=3)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_SPECS, min_size=1, max_size=4), _SPACE, st.integers(0, 3), st.booleans())
def test_one_answer_for_one_string(specs: list[str], space: str, at: int, before: bool) -> None:
    joined = ",".join(specs)
    want = tuple(dict.fromkeys(Platform.parse(s) for s in specs))
    assert parse_platforms([joined]) == want == bootstrap_parse_platforms([joined])
    # pad one part: every reader refuses it, with the message naming that part
    i = at % len(specs)
    padded = [*specs]
    padded[i] = space + padded[i] if before else padded[i] + space
    with pytest.raises(UsageError) as exc:
        parse_platforms([",".join(padded)])
    assert repr(padded[i]) in exc.value.message and "whitespace" in exc.value.message
