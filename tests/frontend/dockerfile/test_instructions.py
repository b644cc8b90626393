"""Typed instructions: every instruction, every flag, BuildKit's argument rules and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import vectors
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.instructions import (
    Add,
    Arg,
    ArgSpec,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    _Fail,
    iter_instructions,
    parse_duration,
    parse_mount,
    parse_mount_from,
    resolve_mount,
)
from xarch.frontend.dockerfile.parser import parse


def one(src: str, filename: str = "Dockerfile") -> Instruction:
    got = list(iter_instructions(parse(src.encode(), filename).ast, filename=filename))
    assert len(got) == 1, got
    return got[0]


def error(src: str, filename: str = "Dockerfile") -> DockerfileError:
    with pytest.raises(DockerfileError) as ei:
        list(iter_instructions(parse(src.encode(), filename).ast, filename=filename))
    return ei.value


# --------------------------------------------------------------------------------- FROM


def test_from_plain() -> None:
    f = one("FROM alpine:3.19")
    assert isinstance(f, From)
    assert (f.base_name, f.stage_name, f.platform) == ("alpine:3.19", None, None)
    assert f.location == (1, 1)
    assert f.original == "FROM alpine:3.19"
    assert f.keyword == "FROM"


def test_from_as_lowercases_name() -> None:
    f = one("FROM golang AS Builder")
    assert isinstance(f, From)
    assert f.stage_name == "builder"
    assert f.stage_name_raw == "Builder"
    assert f.as_keyword == "AS"


def test_from_platform_flag_kept_raw() -> None:
    f = one("FROM --platform=$BUILDPLATFORM golang AS b")
    assert isinstance(f, From)
    assert f.platform == "$BUILDPLATFORM"


@pytest.mark.parametrize("src", ["FROM a b", "FROM a AS", "FROM a AS b c"])
def test_from_argument_count(src: str) -> None:
    assert "FROM requires either one or three arguments" in str(error(src))


@pytest.mark.parametrize("name", ["1abc", "a$b", "-x", "a/b"])
def test_from_invalid_stage_name(name: str) -> None:
    e = error(f"FROM alpine AS {name}")
    assert "invalid name for build stage" in e.message


def test_from_unknown_flag() -> None:
    e = error("FROM --plat=linux/amd64 alpine")
    assert str(e).startswith("Dockerfile:1: unknown flag: --plat")


def test_from_platform_flag_needs_value() -> None:
    assert "missing a value on flag: --platform" in error("FROM --platform alpine").message


def test_from_duplicate_flag() -> None:
    e = error("FROM --platform=a --platform=b alpine")
    assert "duplicate flag specified: --platform" in e.message


# --------------------------------------------------------------------------------- RUN


def test_run_shell_form() -> None:
    r = one("RUN echo hello   world")
    assert isinstance(r, Run)
    assert r.cmd_line == ("echo hello   world",)
    assert r.prepend_shell is True
    assert (r.network, r.security, r.mounts) == ("default", "sandbox", ())


def test_run_exec_form() -> None:
    r = one('RUN ["echo", "a b"]')
    assert isinstance(r, Run)
    assert r.cmd_line == ("echo", "a b")
    assert r.prepend_shell is False


def test_run_heredoc() -> None:
    r = one("RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(r, Run)
    assert r.cmd_line == ("<<EOF",)
    assert len(r.heredocs) == 1
    assert r.heredocs[0].name == "EOF"
    assert r.heredocs[0].data == "echo hi\n"
    assert r.location == (1, 3)


@pytest.mark.parametrize("mode", ["default", "none", "host"])
def test_run_network_modes(mode: str) -> None:
    r = one(f"RUN --network={mode} true")
    assert isinstance(r, Run)
    assert r.network == mode
    assert "network" in r.flags_used


def test_run_bad_network() -> None:
    assert "unsupported network mode 'bridge'" in error("RUN --network=bridge true").message


@pytest.mark.parametrize("mode", ["sandbox", "insecure"])
def test_run_security(mode: str) -> None:
    r = one(f"RUN --security={mode} true")
    assert isinstance(r, Run)
    assert r.security == mode


def test_run_bad_security() -> None:
    assert "security 'root' is not valid" in error("RUN --security=root true").message


def test_run_unknown_flag_message_and_line() -> None:
    e = error("FROM a\n\nRUN --foo=bar true")
    assert str(e).startswith("Dockerfile:3: unknown flag: --foo")
    assert e.line == 3


def test_run_flag_must_start_with_dashes() -> None:
    # The parser only treats leading "--x" words as flags, so feed BFlags directly.
    from xarch.frontend.dockerfile.instructions import BFlags

    bf = BFlags(["-x"])
    bf.add_bool("x")
    with pytest.raises(_Fail, match="should start with --"):
        bf.parse()


def test_bflags_double_dash_stops() -> None:
    from xarch.frontend.dockerfile.instructions import BFlags

    bf = BFlags(["--a", "--", "--unknown"])
    a = bf.add_bool("a")
    bf.parse()
    assert a.value == "true"


def test_run_multiple_mounts() -> None:
    r = one("RUN --mount=type=cache,target=/c --mount=type=secret,id=tok true")
    assert isinstance(r, Run)
    assert [m.type for m in r.mounts] == ["cache", "secret"]
    assert r.mount_specs == ("type=cache,target=/c", "type=secret,id=tok")


def test_run_mount_with_variable_is_deferred() -> None:
    r = one("RUN --mount=type=cache,target=/c,uid=$UID true")
    assert isinstance(r, Run)
    assert r.mounts == ()
    assert r.mount_specs == ("type=cache,target=/c,uid=$UID",)
    expanded = r.expand(lambda w: w.replace("$UID", "1000"))
    assert isinstance(expanded, Run)
    assert expanded.mounts[0].uid == 1000


def test_run_mount_from_variable_rejected() -> None:
    e = error("RUN --mount=from=$X,target=/x true")
    assert "doesn't support variable expansion, define alias stage instead" in e.message


def test_run_mount_error_has_line() -> None:
    e = error("FROM a\nRUN --mount=type=nope,target=/x true")
    assert e.line == 2
    assert "unsupported mount type 'nope'" in e.message


# --------------------------------------------------------------------------------- --mount


def test_mount_defaults_bind() -> None:
    m = parse_mount("target=/x")
    assert m == Mount(type="bind", target="/x", readonly=True)


@pytest.mark.parametrize(
    ("spec", "readonly"),
    [
        ("type=bind,target=/x", True),
        ("type=cache,target=/x", False),
        ("type=tmpfs,target=/x", False),
        ("type=secret,id=a", True),
        ("type=ssh", True),
        ("type=bind,target=/x,rw", False),
        ("type=bind,target=/x,readwrite", False),
        ("type=cache,target=/x,ro", True),
        ("type=cache,target=/x,readonly", True),
        ("type=cache,target=/x,ro=true", True),
        ("type=cache,target=/x,readonly=false", False),
        ("type=bind,target=/x,rw=false", True),
        ("type=bind,target=/x,rw=1", False),
        ("type=bind,target=/x,readwrite=T", False),
    ],
)
def test_mount_readonly(spec: str, readonly: bool) -> None:
    assert parse_mount(spec).readonly is readonly


@pytest.mark.parametrize("key", ["target", "dst", "destination", "TARGET"])
def test_mount_target_aliases(key: str) -> None:
    assert parse_mount(f"{key}=/t").target == "/t"


@pytest.mark.parametrize("key", ["source", "src"])
def test_mount_source_aliases(key: str) -> None:
    assert parse_mount(f"{key}=/s,target=/t").source == "/s"


def test_mount_cache_fields() -> None:
    m = parse_mount(
        "type=cache,target=/c,id=x,sharing=LOCKED,mode=0700,uid=1,gid=2,from=stage,source=sub"
    )
    assert m.type == "cache"
    assert (m.id, m.sharing, m.mode, m.uid, m.gid) == ("x", "locked", 0o700, 1, 2)
    assert (m.from_, m.source) == ("stage", "sub")


@pytest.mark.parametrize("sharing", ["shared", "private", "locked"])
def test_mount_sharing_values(sharing: str) -> None:
    assert parse_mount(f"type=cache,target=/c,sharing={sharing}").sharing == sharing


def test_mount_secret_fields() -> None:
    m = parse_mount("type=secret,id=aws,target=/root/.aws/credentials,required,mode=0440,env=AWS")
    assert (m.id, m.target, m.required, m.mode, m.env) == (
        "aws",
        "/root/.aws/credentials",
        True,
        0o440,
        "AWS",
    )


def test_mount_ssh_required_value() -> None:
    assert parse_mount("type=ssh,required=false").required is False
    assert parse_mount("type=ssh,required=true").required is True


def test_mount_tmpfs_size() -> None:
    assert parse_mount("type=tmpfs,target=/t,size=64m").size_limit == 64 * 1024 * 1024
    assert parse_mount("type=tmpfs,target=/t,size=1g").size_limit == 1 << 30
    assert parse_mount("type=tmpfs,target=/t,size=512").size_limit == 512


def test_mount_csv_quoting() -> None:
    m = parse_mount('type=bind,"source=a,b",target=/t')
    assert m.source == "a,b"


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        ("type=foo", "unsupported mount type 'foo'"),
        ("type=bind,sharing=locked,target=/x", "invalid cache sharing set for bind mount"),
        ("type=cache,sharing=weird,target=/x", "unsupported sharing value 'weird'"),
        ("type=bind,mode=0700,target=/x", 'mode not allowed for "bind" type mounts'),
        ("type=tmpfs,uid=1,target=/x", 'uid not allowed for "tmpfs" type mounts'),
        ("type=bind,gid=1,target=/x", 'gid not allowed for "bind" type mounts'),
        ("type=cache,mode=999,target=/x", "invalid value 999 for mode"),
        ("type=cache,uid=-1,target=/x", "invalid value -1 for uid"),
        ("type=cache,gid=x,target=/x", "invalid value x for gid"),
        ("type=cache,uid=4294967296,target=/x", "invalid value 4294967296 for uid"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,id=a,source=b", "both source and id can't be set"),
        ("type=secret,id=a,from=x", "secret mount should not have a from"),
        ("type=secret,id=a,sharing=shared", "secret mount should not define sharing"),
        ("type=bind,required,target=/x", "unexpected key 'required' for mount type 'bind'"),
        ("type=cache,required=true,target=/x", "unexpected key 'required' for mount type 'cache'"),
        ("type=cache,size=1m,target=/x", "unexpected key 'size' for mount type 'cache'"),
        ("type=tmpfs,size=lots,target=/x", "invalid value for size: lots"),
        ("type=bind,ro=maybe,target=/x", "invalid value for ro: maybe"),
        ("type=bind,foo=bar,target=/x", "unexpected key 'foo' in 'foo=bar'"),
        ("type=bind,nokey,target=/x", "invalid field 'nokey' must be a key=value pair"),
    ],
)
def test_mount_errors(spec: str, msg: str) -> None:
    with pytest.raises(_Fail) as ei:
        parse_mount(spec)
    assert msg in ei.value.message


def test_mount_type_typo_suggests() -> None:
    with pytest.raises(_Fail) as ei:
        parse_mount("type=cahce,target=/x")
    assert ei.value.hint == "did you mean cache?"


def test_mount_unknown_key_suggests() -> None:
    with pytest.raises(_Fail) as ei:
        parse_mount("type=bind,targte=/x")
    assert ei.value.hint == "did you mean target?"


def test_mount_from_extraction() -> None:
    assert parse_mount_from("type=bind,from=builder,target=/x") == "builder"
    assert parse_mount_from("type=cache,target=/x") == ""


def test_resolve_cache_defaults() -> None:
    m = resolve_mount(parse_mount("type=cache,target=cache"), workdir="/app")
    assert (m.target, m.id, m.sharing, m.mode, m.uid, m.gid) == (
        "/app/cache",
        "/app/cache",
        "shared",
        0o755,
        0,
        0,
    )


def test_resolve_secret_defaults() -> None:
    m = resolve_mount(parse_mount("type=secret,id=npmrc"))
    assert (m.id, m.target, m.mode, m.env) == ("npmrc", "/run/secrets/npmrc", 0o400, None)
    m = resolve_mount(parse_mount("type=secret,target=/etc/tok"))
    assert (m.id, m.target) == ("tok", "/etc/tok")
    m = resolve_mount(parse_mount("type=secret,id=tok,env=TOKEN"))
    assert (m.target, m.env) == ("", "TOKEN")
    m = resolve_mount(parse_mount("type=secret,id=tok,env="))
    assert m.env == "tok"


def test_resolve_ssh_defaults() -> None:
    m = resolve_mount(parse_mount("type=ssh"), index=2)
    assert (m.id, m.target, m.mode) == ("default", "/run/buildkit/ssh_agent.2", 0o600)


def test_resolve_root_target_rejected() -> None:
    with pytest.raises(ValueError, match="invalid mount target"):
        resolve_mount(parse_mount("type=bind,target=/"))


@given(st.text(max_size=60))
def test_parse_mount_never_crashes(spec: str) -> None:
    try:
        parse_mount(spec)
    except _Fail:
        pass


# --------------------------------------------------------------------------------- COPY / ADD


def test_copy_all_flags() -> None:
    c = one(
        "COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md "
        "--exclude=.git a b /dst/"
    )
    assert isinstance(c, Copy)
    assert c.sources == ("a", "b")
    assert c.dest == "/dst/"
    assert (c.from_, c.chown, c.chmod, c.link, c.parents) == ("build", "1:2", "0755", True, True)
    assert c.excludes == ("*.md", ".git")


def test_copy_json_form() -> None:
    c = one('COPY ["a b", "/c d/"]')
    assert isinstance(c, Copy)
    assert (c.sources, c.dest) == (("a b",), "/c d/")


def test_copy_needs_destination() -> None:
    e = error("COPY onlyone")
    assert "COPY requires at least two arguments" in e.message


def test_copy_link_false() -> None:
    c = one("COPY --link=false a /b")
    assert isinstance(c, Copy)
    assert c.link is False


def test_copy_bool_flag_bad_value() -> None:
    e = error("COPY --link=maybe a /b")
    assert "expecting boolean value for flag --link, not: maybe" in e.message


def test_copy_bool_flag_empty_value() -> None:
    assert "missing a value on flag: --link" in error("COPY --link= a /b").message


def test_copy_heredoc_source() -> None:
    c = one("COPY <<EOF /etc/motd\nhello $NAME\nEOF\n")
    assert isinstance(c, Copy)
    assert c.sources == ()
    assert c.heredocs[0].path == "EOF"
    assert c.heredocs[0].data == "hello $NAME\n"
    assert c.heredocs[0].expand is True


def test_copy_heredoc_quoted_no_expand_and_chomp() -> None:
    c = one("COPY <<-'EOT' /f\n\tindented\nEOT\n")
    assert isinstance(c, Copy)
    assert c.heredocs[0].expand is False
    assert c.heredocs[0].data == "indented\n"


def test_copy_heredoc_as_destination_rejected() -> None:
    assert (
        "COPY cannot accept a heredoc as a destination" in error("COPY a <<EOF\nx\nEOF\n").message
    )


def test_copy_rejects_add_only_flags() -> None:
    assert "unknown flag: --checksum" in error("COPY --checksum=sha256:x a /b").message


def test_add_all_flags() -> None:
    a = one(
        "ADD --chown=u --chmod=644 --link --keep-git-dir --checksum=sha256:abc --unpack=false "
        "--exclude=x https://example.com/a.tgz /dst"
    )
    assert isinstance(a, Add)
    assert (a.chown, a.chmod, a.link, a.keep_git_dir, a.checksum, a.unpack) == (
        "u",
        "644",
        True,
        True,
        "sha256:abc",
        False,
    )
    assert a.excludes == ("x",)


def test_add_unpack_default_is_none() -> None:
    a = one("ADD a.tar /x")
    assert isinstance(a, Add)
    assert a.unpack is None


def test_add_rejects_from() -> None:
    assert "unknown flag: --from" in error("ADD --from=x a /b").message


def test_add_needs_destination() -> None:
    assert "ADD requires at least two arguments" in error("ADD a").message


# --------------------------------------------------------------------------------- ENV / LABEL / ARG


def test_env_pairs_and_legacy() -> None:
    e = one('ENV A=1 B="two words"')
    assert isinstance(e, Env)
    assert e.pairs == (KeyValue("A", "1"), KeyValue("B", '"two words"'))
    legacy = one("ENV KEY some value")
    assert isinstance(legacy, Env)
    assert legacy.pairs == (KeyValue("KEY", "some value", legacy=True),)


def test_env_no_flags() -> None:
    assert "unknown flag: --x" in error("ENV --x=1 A=b").message


def test_label_pairs() -> None:
    lab = one('LABEL org.opencontainers.image.title="x" b=c')
    assert isinstance(lab, Label)
    assert [p.key for p in lab.pairs] == ["org.opencontainers.image.title", "b"]


def test_arg_forms() -> None:
    a = one("ARG A B=2 C=")
    assert isinstance(a, Arg)
    assert a.pairs == (ArgSpec("A"), ArgSpec("B", "2"), ArgSpec("C", ""))


def test_arg_blank_name() -> None:
    assert "ARG names can not be blank" in error("ARG =x").message


def test_arg_value_with_equals() -> None:
    a = one("ARG URL=http://x?a=b")
    assert isinstance(a, Arg)
    assert a.pairs == (ArgSpec("URL", "http://x?a=b"),)


# --------------------------------------------------------------------------------- CMD / ENTRYPOINT / SHELL


def test_cmd_forms() -> None:
    c = one("CMD echo hi")
    assert isinstance(c, Cmd)
    assert (c.cmd_line, c.prepend_shell) == (("echo hi",), True)
    c = one('CMD ["a", "b"]')
    assert isinstance(c, Cmd)
    assert (c.cmd_line, c.prepend_shell) == (("a", "b"), False)
    c = one("CMD []")
    assert isinstance(c, Cmd)
    assert c.cmd_line == ()


def test_entrypoint_forms() -> None:
    e = one('ENTRYPOINT ["/bin/app", "--flag"]')
    assert isinstance(e, Entrypoint)
    assert e.cmd_line == ("/bin/app", "--flag")
    assert e.prepend_shell is False


def test_shell_json_required() -> None:
    s = one('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]')
    assert isinstance(s, Shell)
    assert s.shell == ("/bin/bash", "-eo", "pipefail", "-c")
    assert "SHELL requires the arguments to be in JSON form" in error("SHELL /bin/bash -c").message
    assert "SHELL requires at least one argument" in error("SHELL []").message


# --------------------------------------------------------------------------------- HEALTHCHECK


def test_healthcheck_cmd_shell_with_flags() -> None:
    h = one(
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s "
        "--retries=3 CMD curl -f http://localhost/"
    )
    assert isinstance(h, Healthcheck)
    assert h.test == ("CMD-SHELL", "curl -f http://localhost/")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        30 * 10**9,
        5 * 10**9,
        60 * 10**9,
        2 * 10**9,
        3,
    )


def test_healthcheck_exec_form() -> None:
    h = one('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(h, Healthcheck)
    assert h.test == ("CMD", "/bin/check", "-q")


def test_healthcheck_none() -> None:
    h = one("HEALTHCHECK NONE")
    assert isinstance(h, Healthcheck)
    assert h.test == ("NONE",)


@pytest.mark.parametrize(
    ("src", "msg"),
    [
        ("HEALTHCHECK NONE extra", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", 'unknown type "RUN" in HEALTHCHECK'),
        ("HEALTHCHECK --interval=1us CMD x", 'interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=abc CMD x", "invalid value for --timeout"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", "invalid value for --retries"),
        ("HEALTHCHECK --foo=1 CMD x", "unknown flag: --foo"),
    ],
)
def test_healthcheck_errors(src: str, msg: str) -> None:
    assert msg in error(src).message


def test_healthcheck_zero_interval_means_unset() -> None:
    h = one("HEALTHCHECK --interval=0s CMD x")
    assert isinstance(h, Healthcheck)
    assert h.interval == 0


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", int(1.5 * 3600 * 10**9)),
        ("300ms", 300 * 10**6),
        ("2us", 2000),
        ("2µs", 2000),
        ("7ns", 7),
        ("-2s", -2 * 10**9),
        (".5s", 5 * 10**8),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "1.s.", "--1s", "1s2"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_duration(text)


# --------------------------------------------------------------------------------- misc instructions


def test_simple_instructions() -> None:
    assert one("WORKDIR /app") == Workdir(
        path="/app", keyword="WORKDIR", original="WORKDIR /app", location=(1, 1)
    )
    u = one("USER 1000:1000")
    assert isinstance(u, User)
    assert u.user == "1000:1000"
    s = one("STOPSIGNAL SIGKILL")
    assert isinstance(s, StopSignal)
    assert s.signal == "SIGKILL"
    m = one("MAINTAINER Jane <j@x>")
    assert isinstance(m, Maintainer)
    assert m.maintainer == "Jane <j@x>"


def test_single_string_instructions_keep_spaces() -> None:
    # WORKDIR/USER/STOPSIGNAL take the rest of the line as one argument, like BuildKit.
    w = one("WORKDIR /my dir")
    assert isinstance(w, Workdir)
    assert w.path == "/my dir"


def test_expose_sorted_like_buildkit() -> None:
    e = one("EXPOSE 8080 443/tcp 80")
    assert isinstance(e, Expose)
    assert e.ports == ("443/tcp", "80", "8080")


def test_volume_forms() -> None:
    v = one('VOLUME ["/a", "/b"]')
    assert isinstance(v, Volume)
    assert v.volumes == ("/a", "/b")
    v = one("VOLUME /x /y")
    assert isinstance(v, Volume)
    assert v.volumes == ("/x", "/y")
    assert "VOLUME specified can not be an empty string" in error('VOLUME [""]').message


@pytest.mark.parametrize(
    ("src", "msg"),
    [
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("WORKDIR --x=1 /a", "unknown flag: --x"),
    ],
)
def test_argument_counts(src: str, msg: str) -> None:
    assert msg in error(src).message


def test_onbuild() -> None:
    o = one("ONBUILD RUN echo hi")
    assert isinstance(o, Onbuild)
    assert o.expression == "RUN echo hi"
    assert o.trigger_keyword == "RUN"


def test_onbuild_keeps_flags_and_heredoc() -> None:
    o = one("ONBUILD COPY --from=x a b")
    assert isinstance(o, Onbuild)
    assert o.expression == "COPY --from=x a b"
    o = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(o, Onbuild)
    assert o.expression == "RUN <<EOF\necho hi\nEOF"


@pytest.mark.parametrize(
    ("src", "msg"),
    [
        ("ONBUILD FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ],
)
def test_onbuild_rejected_triggers(src: str, msg: str) -> None:
    assert msg in error(src).message


# --------------------------------------------------------------------------------- errors & robustness


def test_unknown_instruction_suggests() -> None:
    e = error("FROM a\n" + "\n" * 10 + "FORM alpine")
    assert str(e) == "Dockerfile:12: unknown instruction: FORM (did you mean FROM?)"


def test_unknown_instruction_no_suggestion() -> None:
    e = error("XYZZYQUUX a")
    assert str(e) == "Dockerfile:1: unknown instruction: XYZZYQUUX"


def test_error_uses_filename() -> None:
    e = error("RUN --bad true", filename="build/Containerfile")
    assert str(e).startswith("build/Containerfile:1: unknown flag: --bad")


def test_keyword_casing_preserved() -> None:
    r = one("run echo hi")
    assert r.keyword == "run"
    assert r.name == "run"


def test_multiline_location() -> None:
    r = one("RUN echo a \\\n  && echo b \\\n  && echo c")
    assert r.location == (1, 3)


PARSER_CASES = "buildkit-parser/testfiles"


def _conformance_testfiles() -> list[Path]:
    d = vectors.location(PARSER_CASES)
    return sorted(p / "Dockerfile" for p in d.iterdir()) if d.is_dir() else []


@vectors.parametrize(PARSER_CASES, "path", _conformance_testfiles(), ids=lambda p: p.parent.name)
def test_conformance_testfiles_parse_or_fail_cleanly(path: Path) -> None:
    """Every upstream parser case either types cleanly or fails with a DockerfileError."""
    result = parse(path.read_bytes(), str(path))
    for node in result.ast.children:
        try:
            list(iter_instructions(type(result.ast)(children=[node]), filename=str(path)))
        except DockerfileError as e:
            assert e.line == node.start_line


def test_healthcheck_none_ignores_flags_like_buildkit() -> None:
    h = one("HEALTHCHECK --interval=5s NONE")
    assert isinstance(h, Healthcheck)
    assert h.test == ("NONE",)
    assert h.interval == 0


def test_from_empty_platform_is_none() -> None:
    f = one("FROM --platform= alpine")
    assert isinstance(f, From)
    assert f.platform is None


@given(st.text(max_size=30))
def test_parse_duration_total(text: str) -> None:
    try:
        parse_duration(text)
    except ValueError as e:
        assert str(e).startswith("time: ")
