"""Stages, ARG scoping, platform ARGs, pruning and per-stage expansion (dockerfile2llb)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import NotFoundError
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.instructions import (
    Arg,
    ArgSpec,
    Cmd,
    Copy,
    Env,
    Expose,
    Label,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.stages import (
    BaseImageInfo,
    BuildPlan,
    ExpandedCommand,
    Stage,
    TargetNotFoundError,
    default_path_env,
    parse_stages,
)
from xarch.oci.platform import Platform

AMD64 = Platform.parse("linux/amd64")


def plan(
    src: str,
    *,
    build_args: dict[str, str] | None = None,
    platform: str = "linux/amd64",
    build: str = "linux/amd64",
    target: str | None = None,
    filename: str = "Dockerfile",
) -> BuildPlan:
    return parse_stages(
        parse(src.encode(), filename),
        build_args=build_args or {},
        target_platform=Platform.parse(platform),
        build_platform=Platform.parse(build),
        target=target,
        filename=filename,
    )


def cmds(p: BuildPlan, stage: int | str = -1, **kw: Any) -> list[ExpandedCommand]:
    st = p.stages[stage] if isinstance(stage, int) else p.stage(stage)
    return p.stage_commands(st, **kw)


def labels(p: BuildPlan, stage: int | str = -1, **kw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for ec in cmds(p, stage, **kw):
        if isinstance(ec.command, Label):
            out.update((kv.key, kv.value) for kv in ec.command.pairs)
    return out


# ------------------------------------------------------------------------ global ARGs in FROM


def test_global_arg_default_in_from() -> None:
    p = plan("ARG V=3.19\nFROM alpine:$V")
    assert p.stages[0].base_name == "alpine:3.19"
    assert p.stages[0].base_name_raw == "alpine:$V"
    assert "V" in p.stages[0].used_global_args


def test_build_arg_overrides_global_default() -> None:
    p = plan("ARG V=3.19\nFROM alpine:${V}", build_args={"V": "3.20"})
    assert p.stages[0].base_name == "alpine:3.20"


def test_global_arg_default_uses_earlier_global_and_platform_args() -> None:
    p = plan("ARG A=img\nARG B=${A}-$TARGETARCH\nFROM $B", platform="linux/arm64")
    assert p.stages[0].base_name == "img-arm64"


def test_global_arg_without_value_is_unset_in_from() -> None:
    p = plan("ARG TAG\nFROM alpine${TAG:+:}$TAG")
    assert p.stages[0].base_name == "alpine"
    p = plan("ARG TAG\nFROM alpine${TAG:+:}$TAG", build_args={"TAG": "edge"})
    assert p.stages[0].base_name == "alpine:edge"


def test_build_arg_not_declared_globally_is_invisible_in_from() -> None:
    p = plan("FROM alpine${TAG:+:}$TAG", build_args={"TAG": "edge"})
    assert p.stages[0].base_name == "alpine"
    assert any(w.rule == "UnusedBuildArg" for w in p.warnings)


def test_global_arg_not_visible_in_stage_without_redeclare() -> None:
    p = plan("ARG V=1\nFROM scratch\nLABEL v=$V")
    assert labels(p) == {"v": ""}
    assert cmds(p)[0].undefined == {"V"}


def test_redeclared_global_arg_gets_global_default() -> None:
    p = plan("ARG V=1\nFROM scratch\nARG V\nLABEL v=$V")
    assert labels(p) == {"v": "1"}


def test_redeclared_global_arg_takes_build_arg() -> None:
    p = plan("ARG V=1\nFROM scratch\nARG V\nLABEL v=$V", build_args={"V": "9"})
    assert labels(p) == {"v": "9"}


def test_stage_default_beats_global_default() -> None:
    p = plan("ARG V=1\nFROM scratch\nARG V=2\nLABEL v=$V")
    assert labels(p) == {"v": "2"}


def test_build_arg_beats_stage_default() -> None:
    p = plan("FROM scratch\nARG V=2\nLABEL v=$V", build_args={"V": "3"})
    assert labels(p) == {"v": "3"}


def test_stage_arg_without_value_is_unset_but_declared() -> None:
    p = plan("FROM scratch\nARG V\nLABEL v=$V")
    assert labels(p) == {"v": ""}
    assert all(not ec.undefined for ec in cmds(p))  # declared ARGs are never "undefined"


def test_arg_visible_only_after_declaration() -> None:
    p = plan("FROM scratch\nLABEL before=$V\nARG V=x\nLABEL after=$V")
    assert labels(p) == {"before": "", "after": "x"}


def test_arg_scope_ends_with_stage() -> None:
    p = plan("FROM scratch\nARG V=x\nFROM scratch\nLABEL v=$V")
    assert labels(p, 1) == {"v": ""}


def test_arg_default_expands_env_and_previous_args() -> None:
    p = plan("FROM scratch\nENV BASE=/opt\nARG A=$BASE/a\nARG B=${A}/b\nLABEL b=$B")
    assert labels(p) == {"b": "/opt/a/b"}


def test_arg_multiple_pairs_resolved() -> None:
    p = plan("ARG G=g\nFROM scratch\nARG G X=1 Y", build_args={"Y": "y"})
    arg = cmds(p)[0].command
    assert isinstance(arg, Arg)
    assert arg.pairs == (ArgSpec("G", "g"), ArgSpec("X", "1"), ArgSpec("Y", "y"))


# ------------------------------------------------------------------------ platform ARGs


@pytest.mark.parametrize(
    ("platform", "arch", "variant"),
    [("linux/amd64", "amd64", ""), ("linux/arm64", "arm64", ""), ("linux/arm/v7", "arm", "v7")],
)
def test_target_platform_args_per_platform(platform: str, arch: str, variant: str) -> None:
    src = (
        "FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT\n"
        "LABEL p=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH variant=$TARGETVARIANT"
    )
    p = plan(src, platform=platform)
    assert labels(p) == {"p": platform, "os": "linux", "arch": arch, "variant": variant}


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64", "linux/arm/v7"])
def test_target_platform_args_in_from_without_declaration(platform: str) -> None:
    p = plan("FROM example/app:$TARGETARCH$TARGETVARIANT", platform=platform)
    pl = Platform.parse(platform)
    assert p.stages[0].base_name == f"example/app:{pl.architecture}{pl.variant}"


def test_platform_args_not_visible_in_stage_without_arg() -> None:
    p = plan("FROM scratch\nLABEL a=$TARGETARCH", platform="linux/arm64")
    assert labels(p) == {"a": ""}
    assert cmds(p)[0].undefined == {"TARGETARCH"}


def test_build_platform_args() -> None:
    src = (
        "FROM scratch\nARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\n"
        "LABEL p=$BUILDPLATFORM os=$BUILDOS a=$BUILDARCH v=$BUILDVARIANT"
    )
    p = plan(src, platform="linux/arm64", build="linux/arm/v7")
    assert labels(p) == {"p": "linux/arm/v7", "os": "linux", "a": "arm", "v": "v7"}


def test_build_arg_overrides_automatic_platform_arg() -> None:
    p = plan("FROM scratch\nARG TARGETARCH\nLABEL a=$TARGETARCH", build_args={"TARGETARCH": "x"})
    assert labels(p) == {"a": "x"}
    assert not any(w.rule == "UnusedBuildArg" for w in p.warnings)


def test_targetstage_arg() -> None:
    src = "FROM scratch AS one\nARG TARGETSTAGE\nLABEL t=$TARGETSTAGE\nFROM scratch AS two"
    assert labels(plan(src), "one") == {"t": "two"}
    assert labels(plan(src, target="one"), "one") == {"t": "one"}


def test_from_platform_build_platform() -> None:
    p = plan(
        "FROM --platform=$BUILDPLATFORM golang AS build\nFROM alpine",
        platform="linux/arm64",
        build="linux/amd64",
    )
    b = p.stage("build")
    assert b.platform == AMD64
    assert b.uses_build_platform
    assert not p.stages[1].uses_build_platform
    assert p.effective_platform(b) == AMD64
    assert p.effective_platform(1) == Platform.parse("linux/arm64")


def test_from_platform_braced_build_platform() -> None:
    p = plan("FROM --platform=${BUILDPLATFORM} golang")
    assert p.stages[0].uses_build_platform


def test_stage_from_stage_inherits_platform() -> None:
    p = plan(
        "FROM --platform=$BUILDPLATFORM golang AS build\nFROM build AS more",
        platform="linux/arm64",
        build="linux/amd64",
    )
    assert p.effective_platform(p.stage("more")) == AMD64


def test_const_platform_parsed_and_normalized() -> None:
    p = plan("FROM --platform=linux/aarch64 alpine")
    assert p.stages[0].platform == Platform.parse("linux/arm64")


def test_stage_commands_for_other_platform() -> None:
    p = plan("FROM scratch\nARG TARGETARCH\nLABEL a=$TARGETARCH")
    assert labels(p) == {"a": "amd64"}
    assert labels(p, platform=Platform.parse("linux/arm/v7")) == {"a": "arm"}
    other = p.for_platform(Platform.parse("linux/arm64"))
    assert other.target_platform == Platform.parse("linux/arm64")
    assert labels(other) == {"a": "arm64"}
    assert p.for_platform(AMD64) is p


def test_for_platform_keeps_target() -> None:
    p = plan("FROM scratch AS a\nFROM scratch AS b", target="a")
    assert p.for_platform(Platform.parse("linux/arm64")).target.name == "a"


# ------------------------------------------------------------------------ ENV/ARG precedence


def test_env_after_arg_wins() -> None:
    # Docker's documented example: ENV after ARG overrides the build-arg.
    src = "FROM scratch\nARG V\nENV V=v1.0.0\nLABEL v=$V"
    assert labels(plan(src, build_args={"V": "v2.0.1"})) == {"v": "v1.0.0"}


def test_arg_after_env_last_write_wins() -> None:
    # BuildKit writes ARG values into the same environment: the later write wins.
    src = "FROM scratch\nENV V=env\nARG V=arg\nLABEL v=$V"
    assert labels(plan(src)) == {"v": "arg"}


def test_arg_without_value_keeps_env() -> None:
    src = "FROM scratch\nENV V=env\nARG V\nLABEL v=$V"
    assert labels(plan(src)) == {"v": "env"}


def test_env_from_arg() -> None:
    src = "FROM scratch\nARG VERSION=1.2\nENV APP_VERSION=$VERSION\nLABEL v=$APP_VERSION"
    assert labels(plan(src)) == {"v": "1.2"}


def test_env_pairs_expand_with_previous_env_only() -> None:
    src = "FROM scratch\nENV A=old\nENV A=new B=$A"
    p = plan(src)
    env = p.final_state(0).env_dict()
    assert (env["A"], env["B"]) == ("new", "old")


def test_child_stage_inherits_env_and_args() -> None:
    src = "FROM scratch AS parent\nARG X=1\nENV Y=2\nFROM parent\nLABEL x=$X y=$Y"
    p = plan(src)
    assert labels(p) == {"x": "1", "y": "2"}
    assert dict(cmds(p)[0].build_args) == {"X": "1"}


def test_path_default_for_scratch_and_images() -> None:
    p = plan("FROM alpine\nENV P=$PATH")
    assert p.final_state(0).env_dict()["P"] == default_path_env("linux")


def test_base_image_env_used() -> None:
    p = plan("FROM golang\nENV X=$GOLANG_VERSION\nLABEL x=$X")

    def info(st: Stage) -> BaseImageInfo:
        assert st.base_name == "golang"
        return BaseImageInfo(env=("PATH=/go/bin", "GOLANG_VERSION=1.22"))

    assert labels(p, base_image=info) == {"x": "1.22"}
    assert p.final_state(0, base_image=info).env_dict()["PATH"] == "/go/bin"


def test_base_image_onbuild_runs_first() -> None:
    p = plan("FROM base\nLABEL b=$A")
    out = cmds(p, base_image=lambda st: BaseImageInfo(onbuild=("ENV A=from-onbuild",)))
    assert out[0].from_onbuild
    assert isinstance(out[0].command, Env)
    assert out[0].command.location == (1, 1)
    assert labels(p, base_image=lambda st: BaseImageInfo(onbuild=("ENV A=from-onbuild",))) == {
        "b": "from-onbuild"
    }


def test_proxy_args_need_no_declaration() -> None:
    p = plan(
        "FROM scratch\nRUN true\nLABEL p=$HTTP_PROXY",
        build_args={"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost"},
    )
    assert p.proxy_env == {"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost"}
    assert not p.warnings
    # not part of the expansion environment (BuildKit passes them to RUN only)
    assert labels(p) == {"p": ""}
    assert all("HTTP_PROXY" not in ec.state.env_dict() for ec in cmds(p))


# ------------------------------------------------------------------------ expansion per instruction


def test_expandable_instructions() -> None:
    src = (
        "FROM scratch\nARG D=/srv U=app S=SIGTERM\n"
        "WORKDIR $D\nUSER $U\nVOLUME $D/data\nSTOPSIGNAL $S\nCMD echo $D\n"
        "COPY --chown=$U a $D/\n"
    )
    out = [ec.command for ec in cmds(plan(src))]
    assert isinstance(out[1], Workdir) and out[1].path == "/srv"
    assert isinstance(out[2], User) and out[2].user == "app"
    assert isinstance(out[3], Volume) and out[3].volumes == ("/srv/data",)
    assert isinstance(out[4], StopSignal) and out[4].signal == "SIGTERM"
    assert isinstance(out[5], Cmd) and out[5].cmd_line == ("echo $D",)  # not expanded
    assert isinstance(out[6], Copy) and (out[6].chown, out[6].dest) == ("app", "/srv/")


def test_copy_from_not_expanded() -> None:
    p = plan("FROM scratch AS b\nFROM scratch\nARG S=b\nCOPY --from=$S a b")
    c = cmds(p)[1].command
    assert isinstance(c, Copy) and c.from_ == "$S"


def test_expose_word_splitting() -> None:
    p = plan('FROM scratch\nENV PORTS="80 443/tcp"\nEXPOSE $PORTS 9000')
    e = cmds(p)[1].command
    assert isinstance(e, Expose)
    assert e.ports == ("80", "443/tcp", "9000")


def test_copy_heredoc_expansion() -> None:
    src = "FROM scratch\nARG N=world\nCOPY <<EOF /a\nhello $N \"q\"\nEOF\nCOPY <<'EOF' /b\nhello $N\nEOF\n"
    out = cmds(plan(src))
    a, b = out[1].command, out[2].command
    assert isinstance(a, Copy) and a.heredocs[0].data == 'hello world "q"\n'
    assert isinstance(b, Copy) and b.heredocs[0].data == "hello $N\n"


def test_run_mounts_expanded_per_platform() -> None:
    src = "FROM scratch\nARG TARGETARCH\nRUN --mount=type=cache,target=/c,id=c-$TARGETARCH true"
    for pf, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        r = cmds(plan(src, platform=pf))[1].command
        assert isinstance(r, Run)
        assert r.mounts[0].id == f"c-{arch}"
        assert r.cmd_line == ("true",)


def test_run_env_and_build_args_visible() -> None:
    p = plan("FROM scratch\nARG A=1\nENV B=2\nRUN echo")
    run = cmds(p)[2]
    assert run.state.env_dict()["A"] == "1"
    assert run.state.env_dict()["B"] == "2"
    assert run.build_args == (("A", "1"),)


def test_escape_token_backtick() -> None:
    p = plan("# escape=`\nFROM scratch\nENV A=x\nWORKDIR C:\\dir\\$A")
    w = cmds(p)[1].command
    assert isinstance(w, Workdir)
    assert w.path == "C:\\dir\\x"


def test_required_variable_error_in_stage_has_line() -> None:
    p = plan("FROM scratch\n\nWORKDIR ${DIR:?set DIR}")
    with pytest.raises(DockerfileError) as ei:
        cmds(p)
    assert ei.value.line == 3
    assert str(ei.value).startswith("Dockerfile:3: ")
    assert "set DIR" in str(ei.value)


def test_required_variable_error_in_from() -> None:
    with pytest.raises(DockerfileError) as ei:
        plan("ARG IMG\nFROM ${IMG:?pass --build-arg IMG}")
    assert ei.value.line == 2


def test_undefined_vars_reported() -> None:
    p = plan("FROM scratch\nENV A=1\nLABEL x=$A$B y=${C:-d}")
    assert cmds(p)[1].undefined >= {"B"}


# ------------------------------------------------------------------------ stages, targets, pruning


def test_stage_names_and_indexes() -> None:
    p = plan("FROM alpine AS Builder\nFROM builder\nFROM scratch")
    assert [s.name for s in p.stages] == ["builder", None, None]
    assert [s.display_name for s in p.stages] == ["builder", "stage-1", "stage-2"]
    assert p.stages[1].base_stage == 0
    assert p.stages[2].is_scratch
    assert p.target.index == 2


def test_from_later_stage_name_is_an_image() -> None:
    p = plan("FROM later\nFROM scratch AS later")
    assert p.stages[0].base_stage is None
    assert p.stages[0].external_images == ("later",)


def test_target_selection_case_insensitive() -> None:
    p = plan("FROM scratch AS a\nFROM scratch AS b", target="A")
    assert p.target.name == "a"


def test_target_not_found() -> None:
    with pytest.raises(TargetNotFoundError) as ei:
        plan("FROM scratch AS a\nFROM scratch AS b", target="nope")
    assert isinstance(ei.value, NotFoundError)
    assert 'target stage "nope" could not be found' in str(ei.value)
    assert "stages: a, b" in str(ei.value)


def test_pruning() -> None:
    src = (
        "FROM alpine AS base\n"
        "FROM base AS deps\n"
        "FROM scratch AS assets\n"
        "FROM alpine AS cachefrom\n"
        "FROM alpine AS unused\n"
        "FROM golang AS build\n"
        "COPY --from=deps / /\n"
        "COPY --from=2 /a /a\n"
        "RUN --mount=type=cache,from=cachefrom,target=/c true\n"
        "COPY --from=nginx:latest /etc/nginx /etc/nginx\n"
        "FROM scratch\n"
        "COPY --from=build /out /\n"
    )
    p = plan(src)
    assert p.needed == {0, 1, 2, 3, 5, 6}
    assert [s.display_name for s in p.needed_stages] == [
        "base", "deps", "assets", "cachefrom", "build", "stage-6",
    ]  # fmt: skip
    assert p.stage("build").external_images == ("golang", "nginx:latest")
    assert p.stage("build").deps == {1, 2, 3}
    p2 = plan(src, target="unused")
    assert p2.needed == {4}


def test_copy_from_case_insensitive_name() -> None:
    p = plan("FROM scratch AS builder\nFROM scratch\nCOPY --from=Builder / /")
    assert p.stages[1].deps == {0}


def test_mount_from_index_is_an_image_like_buildkit() -> None:
    p = plan("FROM scratch AS a\nFROM scratch\nRUN --mount=from=0,target=/x true")
    assert p.stages[1].deps == frozenset()
    assert p.stages[1].external_images == ("0",)


@pytest.mark.parametrize("ref", ["5", "-1", "+9"])
def test_copy_from_invalid_index(ref: str) -> None:
    with pytest.raises(DockerfileError) as ei:
        plan(f"FROM scratch\n\nCOPY --from={ref} a b")
    assert ei.value.line == 3
    assert f"invalid stage index {int(ref)}" in str(ei.value)


def test_copy_from_later_stage_rejected_when_needed() -> None:
    src = "FROM scratch AS a\nCOPY --from=b x y\nFROM scratch AS b"
    with pytest.raises(DockerfileError) as ei:
        plan(src, target="a")
    assert 'cannot copy from stage "b", it needs to be defined before current stage "a"' in str(
        ei.value
    )
    assert ei.value.line == 2
    # not needed: no error (BuildKit only dispatches reachable stages)
    assert plan(src, target="b").needed == {2 - 1}


def test_circular_dependency() -> None:
    with pytest.raises(DockerfileError, match="circular dependency detected on stage: a"):
        plan("FROM scratch AS a\nCOPY --from=a x y")


def test_onbuild_triggers_from_parent_stage() -> None:
    src = (
        "FROM scratch AS dep\n"
        "FROM scratch AS parent\n"
        "ONBUILD COPY --from=dep /x /x\n"
        "ONBUILD ENV T=1\n"
        "FROM parent AS child\n"
        "LABEL t=$T\n"
    )
    p = plan(src)
    child = p.stage("child")
    assert [type(t).__name__ for t in child.triggers] == ["Copy", "Env"]
    assert all(t.location == child.location for t in child.triggers)
    assert 0 in child.deps
    assert p.needed == {0, 1, 2}
    out = cmds(p, "child")
    assert [ec.from_onbuild for ec in out] == [True, True, False]
    assert labels(p, "child") == {"t": "1"}
    assert len(p.stage("parent").onbuild) == 2


def test_unparsable_trigger_reported_at_child_from() -> None:
    src = "FROM scratch AS parent\nONBUILD RUN --bogus true\nFROM parent AS child\n"
    with pytest.raises(DockerfileError) as ei:
        plan(src)
    assert ei.value.line == 3
    assert "unknown flag: --bogus" in str(ei.value)


# ------------------------------------------------------------------------ errors


def test_instruction_before_from() -> None:
    with pytest.raises(DockerfileError) as ei:
        plan("ENV A=1\nFROM scratch")
    assert str(ei.value).startswith("Dockerfile:1: no build stage in current context")


def test_only_args_no_stage() -> None:
    with pytest.raises(DockerfileError, match="dockerfile contains no stages to build"):
        plan("ARG A=1\n")


def test_blank_base_name() -> None:
    with pytest.raises(DockerfileError) as ei:
        plan("ARG IMG\nFROM $IMG")
    assert str(ei.value).startswith("Dockerfile:2: base name ($IMG) should not be blank")


def test_bad_platform_value() -> None:
    with pytest.raises(DockerfileError) as ei:
        plan("\nFROM --platform=linux/amd64/v2/x alpine")
    assert ei.value.line == 2
    assert "failed to parse platform linux/amd64/v2/x" in str(ei.value)


def test_empty_platform_value() -> None:
    with pytest.raises(DockerfileError, match="empty platform value from expression \\$NOPE"):
        plan("FROM --platform=$NOPE alpine")


def test_unknown_instruction_error_through_plan() -> None:
    with pytest.raises(DockerfileError) as ei:
        plan("FROM alpine\nFORM alpine", filename="app.Dockerfile")
    assert str(ei.value) == "app.Dockerfile:2: unknown instruction: FORM (did you mean FROM?)"


def test_unused_build_args_warning() -> None:
    p = plan(
        "ARG G\nFROM scratch\nARG S\n",
        build_args={"G": "1", "S": "2", "EXTRA": "3", "BUILDKIT_INLINE_CACHE": "1"},
    )
    [w] = p.warnings
    assert w.rule == "UnusedBuildArg"
    assert w.message == "one or more build-args [EXTRA] were not consumed"


def test_build_arg_used_only_in_unneeded_stage_is_unused() -> None:
    p = plan("FROM scratch AS a\nARG X\nFROM scratch AS b", build_args={"X": "1"})
    assert [w.rule for w in p.warnings] == ["UnusedBuildArg"]
    assert not plan(
        "FROM scratch AS a\nARG X\nFROM scratch AS b", build_args={"X": "1"}, target="a"
    ).warnings


def test_empty_continuation_warning_passed_through() -> None:
    p = plan("FROM scratch\nRUN echo a \\\n\n  b\n")
    assert [(w.rule, w.line) for w in p.warnings] == [("NoEmptyContinuation", p.warnings[0].line)]
    assert p.warnings[0].line is not None


def test_stage_lookup_helpers() -> None:
    p = plan("FROM scratch AS a\nFROM scratch")
    assert p.stage(0).name == "a"
    assert p.stage("A").index == 0
    with pytest.raises(DockerfileError, match="invalid stage index 7"):
        p.stage(7)
    with pytest.raises(NotFoundError):
        p.stage("zzz")


# ------------------------------------------------------------------------ more semantics


def test_arg_pairs_see_earlier_pairs_of_same_instruction() -> None:
    assert labels(plan("FROM scratch\nARG A=1 B=${A}2\nLABEL b=$B")) == {"b": "12"}


def test_env_quotes_removed_by_expansion() -> None:
    assert labels(plan('FROM scratch\nENV A="two words"\nLABEL a=$A')) == {"a": "two words"}


def test_history_build_args_include_valueless_args() -> None:
    p = plan("FROM scratch\nARG A\nARG B=2\nARG A\nRUN true")
    assert cmds(p)[3].build_args == (("A", ""), ("B", "2"))


def test_empty_platform_flag_means_none() -> None:
    p = plan("FROM --platform= alpine")
    assert p.stages[0].platform is None


def test_mount_from_stage_dependency() -> None:
    p = plan("FROM scratch AS cache\nFROM scratch\nRUN --mount=type=bind,from=CACHE,target=/x true")
    assert p.stages[1].deps == {0}


def test_all_stages_validates_unneeded_stages() -> None:
    src = "FROM scratch AS a\nCOPY --from=b x y\nFROM scratch AS b"
    assert plan(src).needed == {1}
    with pytest.raises(DockerfileError, match="needs to be defined before"):
        parse_stages(
            parse(src.encode()).ast, target_platform=AMD64, build_platform=AMD64, all_stages=True
        )


def test_duplicate_stage_name_last_wins_for_copy_from() -> None:
    p = plan("FROM scratch AS x\nFROM scratch AS x\nFROM scratch\nCOPY --from=x a b")
    assert p.stages[2].deps == {1}


_SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._/:", min_size=1, max_size=20)


@given(default=_SAFE, glob=_SAFE, override=st.one_of(st.none(), _SAFE))
def test_arg_precedence_property(default: str, glob: str, override: str | None) -> None:
    """build-arg > stage default > global default, for any plain value."""
    build_args = {"V": override} if override is not None else {}
    with_default = plan(
        f"ARG V={glob}\nFROM scratch\nARG V={default}\nLABEL v=$V", build_args=build_args
    )
    no_default = plan(f"ARG V={glob}\nFROM scratch\nARG V\nLABEL v=$V", build_args=build_args)
    assert labels(with_default) == {"v": override if override is not None else default}
    assert labels(no_default) == {"v": override if override is not None else glob}


def test_build_platform_stage_same_commands_for_every_target() -> None:
    src = (
        "FROM --platform=$BUILDPLATFORM golang AS tools\nRUN go install x\n"
        "FROM --platform=$BUILDPLATFORM golang AS cross\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build\n"
        "FROM alpine\nCOPY --from=tools / /\nCOPY --from=cross / /\n"
    )
    amd = plan(src, platform="linux/amd64", build="linux/amd64")
    arm = amd.for_platform(Platform.parse("linux/arm64"))
    assert arm.stage("tools").platform == AMD64
    assert amd.stage_commands("tools") == arm.stage_commands("tools")
    assert amd.stage_commands("cross") != arm.stage_commands("cross")


def test_expand_for_stage_function() -> None:
    from xarch.frontend.dockerfile.stages import expand_for_stage

    p = plan("FROM scratch\nARG TARGETARCH\nWORKDIR /$TARGETARCH")
    out = expand_for_stage(p, 0, Platform.parse("linux/arm64"))
    w = out[1].command
    assert isinstance(w, Workdir) and w.path == "/arm64"


def test_workdir_state_tracking() -> None:
    p = plan("FROM scratch\nWORKDIR /a\nWORKDIR b/../c\nWORKDIR //x//y")
    out = cmds(p)
    assert [ec.state.workdir for ec in out] == ["", "/a", "/a/c"]
    assert p.final_state(0).workdir == "/x/y"


def test_mount_from_later_stage_rejected() -> None:
    src = "FROM scratch AS a\nRUN --mount=from=b,target=/b true\nFROM scratch AS b"
    with pytest.raises(DockerfileError, match='cannot mount from stage "b"') as ei:
        plan(src, target="a")
    assert ei.value.line == 2
