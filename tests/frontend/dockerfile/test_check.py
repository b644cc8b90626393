"""Lint checks named and worded like BuildKit's build checks."""

from __future__ import annotations

from typing import Any

import pytest

from xarch.frontend.dockerfile.check import (
    CheckConfig,
    CheckReport,
    CheckWarning,
    LintError,
    check,
    parse_check_options,
)
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.stages import BaseImageInfo
from xarch.oci.platform import Platform

AMD64 = Platform.parse("linux/amd64")


def lint(src: str, **kw: Any) -> CheckReport:
    kw.setdefault("target_platform", AMD64)
    return check(src.encode(), "Dockerfile", **kw)


def rules(src: str, **kw: Any) -> list[tuple[str, int | None]]:
    return [(w.rule, w.line) for w in lint(src, **kw)]


def only(src: str, rule: str, **kw: Any) -> list[CheckWarning]:
    return [w for w in lint(src, **kw) if w.rule == rule]


CLEAN = """\
ARG VERSION=3.19
FROM alpine:${VERSION} AS build
WORKDIR /src
ENV APP=demo
LABEL org.opencontainers.image.title="demo"
RUN echo "$APP" > /out
FROM scratch
COPY --from=build /out /out
ENTRYPOINT ["/out"]
CMD ["--help"]
"""


def test_clean_dockerfile_has_no_warnings() -> None:
    assert lint(CLEAN) == []


def test_stage_name_casing() -> None:
    [w] = only("FROM alpine AS Builder\n", "StageNameCasing")
    assert w.message == "Stage name 'Builder' should be lowercase"
    assert w.line == 1
    assert w.format() == "WARN: StageNameCasing - Stage name 'Builder' should be lowercase (line 1)"


def test_from_as_casing() -> None:
    [w] = only("FROM alpine as build\n", "FromAsCasing")
    assert w.message == "'as' and 'FROM' keywords' casing do not match"
    assert only("from alpine AS build\n", "FromAsCasing")[0].message == (
        "'AS' and 'from' keywords' casing do not match"
    )
    assert not only("from alpine as build\n", "FromAsCasing")
    assert not only("FROM alpine AS build\n", "FromAsCasing")


def test_consistent_instruction_casing() -> None:
    src = "FROM alpine\nRUN a\nrun b\nRUN c\nRun d\n"
    ws = only(src, "ConsistentInstructionCasing")
    assert [(w.line, w.message) for w in ws] == [
        (3, "Command 'run' should match the case of the command majority (uppercase)"),
        (5, "Command 'Run' should match the case of the command majority (uppercase)"),
    ]


def test_consistent_casing_lower_majority() -> None:
    src = "from alpine\nrun a\nRUN b\n"
    [w] = only(src, "ConsistentInstructionCasing")
    assert w.message == "Command 'RUN' should match the case of the command majority (lowercase)"


def test_consistent_casing_ignores_global_args() -> None:
    assert not only("arg A=1\nFROM alpine\nRUN x\n", "ConsistentInstructionCasing")


def test_duplicate_and_reserved_stage_names() -> None:
    src = "FROM alpine AS a\nFROM alpine AS a\nFROM alpine AS scratch\nFROM alpine AS context\n"
    assert [(w.rule, w.line) for w in lint(src) if w.rule != "UndefinedVar"] == [
        ("DuplicateStageName", 2),
        ("ReservedStageName", 3),
        ("ReservedStageName", 4),
    ]
    assert only(src, "DuplicateStageName")[0].message == (
        'Duplicate stage name "a", stage names should be unique'
    )
    assert only(src, "ReservedStageName")[0].message == (
        'Stage name should not use the same name as reserved stage "scratch"'
    )


def test_json_args_recommended() -> None:
    ws = only("FROM alpine\nCMD echo hi\nENTRYPOINT run.sh\n", "JSONArgsRecommended")
    assert [(w.line, w.message) for w in ws] == [
        (
            2,
            "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
        ),
        (
            3,
            "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
        ),
    ]


def test_json_args_not_reported_with_shell_or_json() -> None:
    assert not only('FROM alpine\nCMD ["a"]\n', "JSONArgsRecommended")
    assert not only('FROM alpine\nSHELL ["/bin/bash", "-c"]\nCMD echo hi\n', "JSONArgsRecommended")
    # SHELL is inherited through FROM <stage>
    assert not only(
        'FROM alpine AS a\nSHELL ["/bin/sh", "-c"]\nFROM a\nCMD x\n', "JSONArgsRecommended"
    )
    # or comes from the base image config when the engine knows it
    info = BaseImageInfo(shell=("pwsh", "-c"))
    assert not only("FROM img\nCMD x\n", "JSONArgsRecommended", base_image=lambda st: info)


def test_maintainer_deprecated() -> None:
    [w] = only("FROM alpine\nMAINTAINER me\n", "MaintainerDeprecated")
    assert (w.line, w.message) == (
        2,
        "Maintainer instruction is deprecated in favor of using label",
    )


def test_undefined_arg_in_from() -> None:
    [w] = only("ARG VERSON=1\nFROM alpine:$VERSION\n", "UndefinedArgInFrom")
    assert w.line == 2
    assert w.message == "FROM argument 'VERSION' is not declared (did you mean VERSON?)"
    assert not only("ARG V\nFROM alpine${V:+:}$V\n", "UndefinedArgInFrom")
    assert not only("FROM alpine:$TARGETARCH\n", "UndefinedArgInFrom")


def test_workdir_relative_path() -> None:
    [w] = only("FROM alpine\nWORKDIR app\n", "WorkdirRelativePath")
    assert (
        w.message == 'Relative workdir "app" can have unexpected results if the base image changes'
    )
    assert not only("FROM alpine\nWORKDIR /app\nWORKDIR sub\n", "WorkdirRelativePath")
    # inherited through FROM <stage>
    assert not only("FROM alpine AS a\nWORKDIR /x\nFROM a\nWORKDIR y\n", "WorkdirRelativePath")
    # expanded before the check
    assert not only("FROM alpine\nARG D=/abs\nWORKDIR $D\n", "WorkdirRelativePath")


def test_undefined_var() -> None:
    [w] = only("FROM alpine\nENV APP_NAME=/x\nCOPY $APP_NAM /x\n", "UndefinedVar")
    assert w.line == 3
    assert w.message == "Usage of undefined variable '$APP_NAM' (did you mean $APP_NAME?)"


def test_undefined_var_not_for_declared_args_or_path() -> None:
    src = "FROM alpine\nARG A\nENV P=$PATH:/x\nWORKDIR /$A\nRUN echo $NOT_CHECKED_IN_RUN\n"
    assert not only(src, "UndefinedVar")


def test_undefined_var_uses_base_image_env() -> None:
    src = "FROM golang\nENV X=$GOPATH\n"
    assert only(src, "UndefinedVar")
    info = BaseImageInfo(env=("PATH=/bin", "GOPATH=/go"))
    assert not only(src, "UndefinedVar", base_image=lambda st: info)


def test_multiple_instructions_disallowed() -> None:
    src = (
        'FROM alpine\nCMD ["a"]\nHEALTHCHECK NONE\nCMD ["b"]\nHEALTHCHECK NONE\nENTRYPOINT ["x"]\n'
    )
    ws = only(src, "MultipleInstructionsDisallowed")
    assert [(w.line, w.message) for w in ws] == [
        (
            2,
            "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
        ),
        (
            3,
            "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used",
        ),
    ]


def test_multiple_instructions_per_stage() -> None:
    assert not only(
        'FROM alpine AS a\nCMD ["a"]\nFROM a\nCMD ["b"]\n', "MultipleInstructionsDisallowed"
    )


def test_legacy_key_value_format() -> None:
    ws = only("FROM alpine\nENV A 1\nLABEL b c\nENV OK=1\n", "LegacyKeyValueFormat")
    assert [(w.line, w.message) for w in ws] == [
        (2, '"ENV key=value" should be used instead of legacy "ENV key value" format'),
        (3, '"LABEL key=value" should be used instead of legacy "LABEL key value" format'),
    ]


def test_from_platform_flag_const_disallowed() -> None:
    [w] = only("FROM --platform=linux/amd64 alpine\n", "FromPlatformFlagConstDisallowed")
    assert w.message == 'FROM --platform flag should not use constant value "linux/amd64"'
    # allowed when the stage name says which platform it is, or when a variable is used
    assert not only(
        "FROM --platform=linux/amd64 alpine AS build-amd64\n", "FromPlatformFlagConstDisallowed"
    )
    assert not only("FROM --platform=$BUILDPLATFORM alpine\n", "FromPlatformFlagConstDisallowed")


def test_redundant_target_platform() -> None:
    [w] = only("FROM --platform=$TARGETPLATFORM alpine\n", "RedundantTargetPlatform")
    assert w.message == (
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"
    )


def test_secrets_used_in_arg_or_env() -> None:
    ws = only(
        "FROM alpine\nARG GITHUB_TOKEN\nENV DB_PASSWORD=x PUBLIC_KEY=y MONKEY=z\n",
        "SecretsUsedInArgOrEnv",
    )
    assert [w.message for w in ws] == [
        'Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")',
        'Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")',
    ]


def test_no_empty_continuation() -> None:
    ws = only("FROM alpine\nRUN echo a \\\n\n  b\n", "NoEmptyContinuation")
    assert len(ws) == 1
    assert ws[0].message == "Empty continuation line"


def test_skip_directive() -> None:
    src = "# check=skip=StageNameCasing,FromAsCasing\nFROM alpine as Build\nMAINTAINER x\n"
    assert [w.rule for w in lint(src)] == ["MaintainerDeprecated"]


def test_skip_all() -> None:
    assert lint("# check=skip=all\nFROM alpine as Build\nMAINTAINER x\n") == []


def test_error_directive_raises() -> None:
    src = "# check=error=true\nFROM alpine\nMAINTAINER x\nCMD x\n"
    report = lint(src)
    assert isinstance(report, CheckReport)
    assert report.error_on_warning
    assert report.warnings == list(report)
    with pytest.raises(LintError):
        report.raise_for_errors()
    with pytest.raises(LintError) as ei:
        lint(src, raise_on_error=True)
    assert "lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated" in str(
        ei.value
    )
    assert [w.rule for w in ei.value.warnings] == ["MaintainerDeprecated", "JSONArgsRecommended"]
    assert len(lint(src)) == 2


def test_error_directive_without_warnings_is_fine() -> None:
    report = lint("# check=error=true\nFROM alpine\n", raise_on_error=True)
    assert report == []
    assert report.error_on_warning
    report.raise_for_errors()


def test_no_directive_never_raises() -> None:
    report = lint("FROM alpine\nMAINTAINER x\n", raise_on_error=True)
    assert not report.error_on_warning
    assert [w.rule for w in report] == ["MaintainerDeprecated"]


def test_skip_and_error_combined() -> None:
    src = "# check=skip=MaintainerDeprecated;error=true\nFROM alpine\nMAINTAINER x\n"
    assert lint(src, raise_on_error=True) == []


@pytest.mark.parametrize(
    ("value", "cfg"),
    [
        ("", CheckConfig()),
        ("skip=A,B", CheckConfig(skip=frozenset({"A", "B"}))),
        ("skip= A , B ", CheckConfig(skip=frozenset({"A", "B"}))),
        ("skip=all", CheckConfig(skip_all=True)),
        ("error=true", CheckConfig(error=True)),
        ("error=1;skip=X", CheckConfig(skip=frozenset({"X"}), error=True)),
        ("error=false", CheckConfig()),
    ],
)
def test_parse_check_options(value: str, cfg: CheckConfig) -> None:
    assert parse_check_options(value) == cfg


@pytest.mark.parametrize("value", ["bogus", "foo=bar", "error=maybe"])
def test_parse_check_options_errors(value: str) -> None:
    with pytest.raises(DockerfileError, match="failed to parse check options"):
        parse_check_options(value)


def test_bad_check_directive_in_file() -> None:
    with pytest.raises(DockerfileError, match="failed to parse check options"):
        lint("# check=nonsense\nFROM alpine\n")


def test_warnings_sorted_by_line_and_formats() -> None:
    ws = lint("FROM alpine as B\nMAINTAINER me\n")
    assert [w.line for w in ws] == sorted(w.line or 0 for w in ws)
    w = ws[0]
    assert w.short().startswith(f"{w.rule}: ")
    assert str(w) == w.format()
    assert w.url == "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
    assert w.description == "Stage names should be lowercase"


def test_target_limits_dispatch_checks() -> None:
    src = 'FROM alpine AS a\nCMD x\nFROM alpine AS b\nCMD ["y"]\n'
    assert [w.line for w in only(src, "JSONArgsRecommended")] == [2]
    assert only(src, "JSONArgsRecommended", target="b") == []


def test_parse_errors_propagate() -> None:
    with pytest.raises(DockerfileError) as ei:
        lint("FROM alpine\nFORM x\n")
    assert str(ei.value) == "Dockerfile:2: unknown instruction: FORM (did you mean FROM?)"
