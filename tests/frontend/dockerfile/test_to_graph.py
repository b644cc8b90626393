"""Dockerfile -> graph + image config, per platform (BuildKit dockerfile2llb semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.stages import parse_stages
from xarch.frontend.dockerfile.to_graph import (
    Converter,
    ConvertOptions,
    ResolvedImage,
    StageResult,
    dest_path,
    normalize_workdir,
)
from xarch.graph.ops import CopyOp, ExecOp, ImageOp, MkdirOp
from xarch.oci.platform import Platform

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
ARMV7 = Platform.parse("linux/arm/v7")


class FakeResolver:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.config = config or {"config": {"Env": ["PATH=/usr/bin:/bin", "BASE=1"], "Cmd": ["sh"]},
                                 "history": [{"created_by": "base layer"}]}

    def resolve(self, ref: str, platform: Platform) -> ResolvedImage:
        self.calls.append((ref, str(platform)))
        cfg = {"architecture": platform.architecture, "os": platform.os, **self.config}
        return ResolvedImage(ref=f"docker.io/library/{ref}", manifest_digest="sha256:" + "b" * 64,
                             platform=platform, config=cfg)


def convert(df: str, platform: Platform = AMD64, *, build_args: dict[str, str] | None = None,
            target: str | None = None, resolver: FakeResolver | None = None,
            opts: ConvertOptions | None = None) -> StageResult:
    pr = parse(df.encode())
    plan = parse_stages(pr, build_args=build_args or {}, target_platform=platform, build_platform=AMD64,
                        target=target)
    return Converter(plan, resolver or FakeResolver(), opts).convert(platform)


def history(res: StageResult) -> list[str]:
    return [h.entry["created_by"] for h in res.history]


def test_metadata_instructions_set_config_and_history() -> None:
    res = convert(
        "FROM base\nENV A=1 B=$A\nLABEL x=y\nUSER app\nEXPOSE 80 53/udp\nVOLUME /data\n"
        "STOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\nWORKDIR /w\nCMD echo hi\n"
    )
    c = res.config["config"]
    # one ENV line is expanded with the env *before* it (Docker semantics): B sees no A yet
    assert c["Env"] == ["PATH=/usr/bin:/bin", "BASE=1", "A=1", "B="]
    assert c["Labels"] == {"x": "y"}
    assert c["User"] == "app"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert c["StopSignal"] == "SIGTERM"
    assert c["Shell"] == ["/bin/bash", "-c"]
    assert c["WorkingDir"] == "/w"
    assert c["Cmd"] == ["/bin/bash", "-c", "echo hi"] and c["ArgsEscaped"] is True
    assert history(res) == [
        "base layer", "ENV A=1 B=", "LABEL x=y", "USER app", "EXPOSE [53/udp 80/tcp]",
        "VOLUME [/data]", "STOPSIGNAL SIGTERM", "SHELL [/bin/bash -c]", "WORKDIR /w",
        'CMD ["/bin/bash" "-c" "echo hi"]',
    ]
    assert [h.entry.get("empty_layer") for h in res.history[1:]] == [True] * 7 + [None, True]
    assert isinstance(res.vertex.op, MkdirOp) and res.vertex.op.user == "app"


def test_entrypoint_resets_cmd_unless_set_in_stage() -> None:
    c = convert('FROM base\nENTRYPOINT ["/app"]\n').config["config"]
    assert c["Entrypoint"] == ["/app"] and "Cmd" not in c
    c = convert('FROM base\nCMD ["x"]\nENTRYPOINT ["/app"]\n').config["config"]
    assert c["Cmd"] == ["x"]


def test_run_exec_op_env_args_and_history_prefix() -> None:
    res = convert("FROM base\nARG V=1\nENV E=e\nWORKDIR /src\nRUN make $V\n", build_args={"V": "2"})
    op = res.vertex.op
    assert isinstance(op, ExecOp)
    assert op.args == ("/bin/sh", "-c", "make $V")
    assert "V=2" in op.env and "E=e" in op.env and op.cwd == "/src"
    assert history(res)[-1] == "RUN |1 V=2 /bin/sh -c make $V # buildkit"


def test_build_platform_stage_is_shared_across_targets() -> None:
    df = ("FROM --platform=$BUILDPLATFORM base AS build\nRUN echo shared > /s\nARG TARGETARCH\n"
          "RUN echo $TARGETARCH > /t\nFROM base\nCOPY --from=build /t /s /\n")
    graphs = {p: convert(df, p) for p in (AMD64, ARM64, ARMV7)}
    shared = [{v.digest for v in g.vertex.walk() if isinstance(v.op, ExecOp) and "shared" in v.op.args[-1]}
              for g in graphs.values()]
    assert len(set.union(*shared)) == 1
    per_target = {v.digest for g in graphs.values() for v in g.vertex.walk()
                  if isinstance(v.op, ExecOp) and "TARGETARCH" in v.op.args[-1]}
    assert len(per_target) == 3
    for p, g in graphs.items():
        assert g.platform == p
        runs = [v.op for v in g.vertex.walk() if isinstance(v.op, ExecOp)]
        assert all(r.platform == AMD64 for r in runs)  # the build stage runs natively


def test_copy_dest_and_sources() -> None:
    res = convert("FROM base\nWORKDIR /app\nCOPY a b ./\nCOPY --chown=1:2 --chmod=640 x y\n")
    ops = [v.op for v in res.vertex.walk() if isinstance(v.op, CopyOp)]
    assert ops[0].dest == "/app/" and ops[0].sources == ("a", "b")
    assert ops[1].dest == "/app/y" and ops[1].chown == "1:2" and ops[1].chmod == "640"
    with pytest.raises(DockerfileError, match="must be a directory and end with a /"):
        convert("FROM base\nCOPY a b /dst\n")


def test_copy_from_image_and_stage_index() -> None:
    r = FakeResolver()
    res = convert("FROM base AS a\nRUN x\nFROM base\nCOPY --from=0 /x /x\nCOPY --from=other:1 /y /y\n", resolver=r)
    copies = [v for v in res.vertex.walk() if isinstance(v.op, CopyOp)]
    assert isinstance(copies[1].inputs[1].op, ImageOp) and copies[1].inputs[1].op.ref.endswith("other:1")
    assert isinstance(copies[0].inputs[1].op, ExecOp)
    with pytest.raises(DockerfileError):
        convert("FROM base\nCOPY --from=5 /x /x\n")


def test_scratch_defaults_and_labels_option() -> None:
    res = convert("FROM scratch\nCOPY x /x\n", opts=ConvertOptions(labels={"l": "v"}))
    assert res.config["config"]["Env"][0].startswith("PATH=")
    assert res.config["config"]["WorkingDir"] == "/"
    assert res.config["config"]["Labels"] == {"l": "v"}


def test_heredoc_run_with_shebang_becomes_a_script() -> None:
    res = convert("FROM base\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n")
    op = res.vertex.op
    assert isinstance(op, ExecOp)
    # as BuildKit v0.32: the shell still runs it (and the history says so)
    assert op.args == ("/bin/sh", "-c", "/dev/pipes/EOF")
    assert op.inline_files[0][1].startswith("#!/bin/sh")
    assert history(convert("FROM base\nARG W=1\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n"))[-1] == \
        "RUN |1 W=1 /bin/sh -c /dev/pipes/EOF # buildkit"
    res = convert("FROM base\nRUN <<EOF\necho hi\nEOF\n")
    assert res.vertex.op.args == ("/bin/sh", "-c", "echo hi\n")  # type: ignore[attr-defined]


def test_run_mounts_map_to_specs() -> None:
    res = convert("FROM base AS src\nFROM base\nRUN --mount=type=cache,target=/root/.cache "
                  "--mount=type=bind,from=src,source=/etc,target=/mnt --mount=type=secret,id=tok true\n")
    op = res.vertex.op
    assert isinstance(op, ExecOp)
    kinds = {m.type: m for m in op.mounts}
    assert kinds["cache"].cache_id == "/root/.cache" and not kinds["cache"].readonly
    assert kinds["bind"].input == 1 and kinds["bind"].source == "/etc"
    assert kinds["secret"].secret_id == "tok" and kinds["secret"].target == "/run/secrets/tok"


def test_source_date_epoch_sets_history_created() -> None:
    res = convert("FROM base\nENV A=1\n", opts=ConvertOptions(source_date_epoch=0))
    assert res.history[-1].entry["created"] == "1970-01-01T00:00:00Z"


def test_onbuild_triggers_of_base_run_first() -> None:
    r = FakeResolver({"config": {"OnBuild": ["RUN echo trigger"]}})
    res = convert("FROM base\nRUN echo mine\n", resolver=r)
    runs = [v.op.args[-1] for v in res.vertex.walk() if isinstance(v.op, ExecOp)]
    assert runs == ["echo trigger", "echo mine"]
    assert "OnBuild" not in res.config["config"]


@pytest.mark.parametrize(("cur", "path", "want"), [
    ("/", "a", "/a"), ("/a", "b/../c", "/a/c"), ("/a", "/x/", "/x"), ("", ".", "/"),
])
def test_normalize_workdir(cur: str, path: str, want: str) -> None:
    assert normalize_workdir(cur, path) == want


@pytest.mark.parametrize(("wd", "dest", "want"), [
    ("/app", ".", "/app/"), ("/app", "x", "/app/x"), ("/app", "x/", "/app/x/"), ("/", "/abs/./y", "/abs/y"),
])
def test_dest_path(wd: str, dest: str, want: str) -> None:
    assert dest_path(wd, dest) == want


def test_expose_ranges_expand_like_nat_parse_port_specs() -> None:
    c = convert("FROM base\nEXPOSE 9000-9002/udp 80\n").config["config"]
    assert c["ExposedPorts"] == {"9000/udp": {}, "9001/udp": {}, "9002/udp": {}, "80/tcp": {}}


def test_empty_cmd_and_entrypoint_are_omitted() -> None:
    c = convert('FROM base\nCMD []\n').config["config"]
    assert "Cmd" not in c and c["ArgsEscaped"] is True
    c = convert('FROM base\nENTRYPOINT []\n').config["config"]
    assert "Entrypoint" not in c and "Cmd" not in c


def test_healthcheck_history_is_go_percent_plus_v_of_the_struct() -> None:
    # BuildKit v0.32: fmt.Sprintf("HEALTHCHECK %+v", *d.image.Config.Healthcheck)
    res = convert('FROM base\nHEALTHCHECK --interval=5s --timeout=1500ms --start-period=1m30s '
                  '--start-interval=500ms --retries=4 CMD wget -q "x y" || exit 1\n')
    assert history(res)[-1] == (
        'HEALTHCHECK {Test:[CMD-SHELL wget -q "x y" || exit 1] Interval:5s Timeout:1.5s '
        "StartPeriod:1m30s StartInterval:500ms Retries:4}")
    assert history(convert("FROM base\nHEALTHCHECK NONE\n"))[-1] == \
        "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}"
    assert history(convert("FROM base\nHEALTHCHECK --retries=10 --timeout=250ms CMD [\"t\"]\n"))[-1] \
        == "HEALTHCHECK {Test:[CMD t] Interval:0s Timeout:250ms StartPeriod:0s StartInterval:0s Retries:10}"


@pytest.mark.parametrize(("ns", "want"), [
    (0, "0s"), (999, "999ns"), (1_500, "1.5\u00b5s"), (2_000_000, "2ms"), (1_000_000_000, "1s"),
    (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (1_250_000_000, "1.25s"),
])
def test_go_duration_string(ns: int, want: str) -> None:
    from xarch.frontend.dockerfile.to_graph import _go_duration
    assert _go_duration(ns) == want


def test_go_quote_matches_strconv_quote() -> None:
    from xarch.frontend.dockerfile.to_graph import _go_quote
    assert _go_quote('a"b\\c\n\t\x01\x7fé') == '"a\\"b\\\\c\\n\\t\\x01\\x7fé"'


def test_copy_add_history_carries_parents_chown_chmod_as_buildkit() -> None:
    # BuildKit v0.32's dispatchCopy: --parents, --chown, --chmod in that order (expanded),
    # never --link, --exclude, --from, --checksum, --keep-git-dir
    res = convert(
        "FROM base AS s\nFROM base\nARG U=7 M=0750\n"
        "COPY --chmod=$M --parents --link --exclude=*.log --chown=${U}:8 a/b.txt /dst/\n"
        "COPY --from=s --chown=1 /x /y\n"
        "ADD --chmod=0755 --chown=1:2 --checksum=sha256:" + "a" * 64 + " http://h/r /opt/r\n"
        "ADD --keep-git-dir https://github.com/o/r.git /src\n"
        "COPY --chmod=0700 <<EOT /noexp.sh\necho\nEOT\n"
        "COPY a b ./\n"
    )
    assert [h for h in history(res) if h.startswith(("COPY", "ADD"))] == [
        "COPY --parents --chown=7:8 --chmod=0750 a/b.txt /dst/ # buildkit",
        "COPY --chown=1 /x /y # buildkit",
        "ADD --chown=1:2 --chmod=0755 http://h/r /opt/r # buildkit",
        "ADD https://github.com/o/r.git /src # buildkit",
        "COPY --chmod=0700 <<EOT /noexp.sh # buildkit",
        "COPY a b ./ # buildkit",
    ]
    ops = [v.op for v in res.vertex.walk() if isinstance(v.op, CopyOp)]
    assert any(op.chmod == "0750" for op in ops)  # --chmod is expanded, as in BuildKit


def test_workdir_history_and_mkdir_keep_the_path_as_written() -> None:
    # BuildKit v0.32 (system.NormalizeWorkdir) keeps an absolute path as written and joins
    # (cleans) a relative one; the config's WorkingDir is the clean path
    res = convert("FROM base\nWORKDIR //a//b/\nWORKDIR ./c/.\nWORKDIR /x/../y\nWORKDIR /\n")
    assert history(res)[-4:] == ["WORKDIR //a//b/", "WORKDIR /a/b/c", "WORKDIR /x/../y", "WORKDIR /"]
    mkdirs = [v.op.path for v in res.vertex.walk() if isinstance(v.op, MkdirOp)]
    assert sorted(mkdirs) == ["//a//b/", "/a/b/c", "/x/../y"]
    assert res.config["config"]["WorkingDir"] == "/"
    assert convert("FROM base\nWORKDIR /x/../y\n").config["config"]["WorkingDir"] == "/y"


def test_child_stage_env_beats_the_arg_it_inherits() -> None:
    # BuildKit's dispatchState.init lays the parent's config Env over the inherited state, so
    # in a stage FROM another one an ENV wins over an ARG of the same name set after it
    df = ("FROM base AS one\nARG V\nENV V=env-$V\nARG V=again\nRUN echo $V\n"
          "FROM one\nRUN echo $V\n")
    res = convert(df, build_args={"V": "cli"})
    child = res.vertex.op
    parent = res.vertex.inputs[0].op
    assert isinstance(child, ExecOp) and isinstance(parent, ExecOp)
    assert "V=cli" in parent.env and "V=env-cli" in child.env
    assert history(res)[-2:] == ["RUN |1 V=cli /bin/sh -c echo $V # buildkit",
                                 "RUN |1 V=env-cli /bin/sh -c echo $V # buildkit"]
