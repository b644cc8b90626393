"""Stages, ARG scoping and per-stage variable expansion (BuildKit's dockerfile2llb, minus LLB).

``parse_stages`` groups the typed instructions into stages for one target platform, expands
every ``FROM`` (base name and ``--platform``) with the global ARGs, picks the target, and works
out which stages the target needs. ``BuildPlan.stage_commands`` then replays a stage the way
BuildKit's dispatcher does and returns every command with its variables expanded.

Scoping, exactly as BuildKit:

* global ARGs (before the first FROM) + the automatic platform ARGs are visible only in FROM
  lines (base name and ``--platform``);
* inside a stage an ARG is visible after it is declared; ``ARG NAME`` without a default takes
  the ``--build-arg`` value, else the global value (meta ARG or automatic platform ARG);
  ``--build-arg`` beats any default;
* ARG and ENV write to the same environment, the later write wins (so ``ENV`` after ``ARG``
  overrides it, as documented by Docker); a stage built ``FROM`` another stage inherits its
  environment, ARGs included;
* proxy ARGs (``HTTP_PROXY``...) need no declaration: they reach ``RUN`` through
  ``BuildPlan.proxy_env`` and are not part of the expansion environment or history.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from xarch.errors import NotFoundError
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.instructions import (
    Add,
    Arg,
    ArgSpec,
    Copy,
    Env,
    Expose,
    From,
    Instruction,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Workdir,
    expand_instruction,
    go_clean,
    parse_instruction,
    parse_mount_from,
)
from xarch.frontend.dockerfile.shell import Lexer
from xarch.oci.platform import Platform

__all__ = [
    "AUTOMATIC_PLATFORM_ARGS",
    "EXPANDING_INSTRUCTIONS",
    "PROXY_ARGS",
    "BaseImageInfo",
    "BuildPlan",
    "ExpandedCommand",
    "PlanWarning",
    "Stage",
    "StageState",
    "TargetNotFoundError",
    "default_args",
    "default_path_env",
    "expand_for_stage",
    "parse_stages",
    "uses_build_platform",
]

PROXY_ARGS: tuple[str, ...] = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)  # fmt: skip
AUTOMATIC_PLATFORM_ARGS: tuple[str, ...] = (
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
)  # fmt: skip
# BuildKit frontend options passed as build-args; never "unused".
_FRONTEND_ARG_RE = re.compile(r"^(BUILDKIT_[A-Z0-9_]+|SOURCE_DATE_EPOCH)$")
# ARGs that configure the frontend and are not exported to the environment.
_NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})
_EMPTY_IMAGE = "scratch"
_BUILD_PLATFORM_RE = re.compile(r"^\$(?:BUILDPLATFORM|\{BUILDPLATFORM\})$")

Env_ = tuple[tuple[str, str], ...]


class TargetNotFoundError(NotFoundError):
    """``--target`` names no stage."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class PlanWarning:
    """A non-fatal finding (rule names follow BuildKit's where one exists)."""

    rule: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class BaseImageInfo:
    """What the engine knows about a stage's external base image (from its config)."""

    env: tuple[str, ...] = ()  # "KEY=value"
    onbuild: tuple[str, ...] = ()  # config OnBuild triggers, run first in the stage
    shell: tuple[str, ...] = ()
    workdir: str = ""


@dataclass(frozen=True)
class StageState:
    """The dispatch state BuildKit carries through a stage (what expansion can see)."""

    env: Env_ = ()  # ENV + ARG values + base image env, in definition order
    build_args: tuple[tuple[str, str | None], ...] = ()  # ARGs declared so far (value or None)
    shell: tuple[str, ...] = ()  # SHELL in effect (empty: the default)
    workdir: str = ""
    workdir_set: bool = False  # an absolute WORKDIR happened in this Dockerfile's chain
    # The image config's Env (base image env + ENV, no ARGs): a stage FROM this one lays it
    # over the inherited env, so an ENV beats an ARG of the same name there (BuildKit's init).
    image_env: Env_ = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def lookup(self, key: str) -> str | None:
        return dict(self.env).get(key)


@dataclass(frozen=True)
class ExpandedCommand:
    """One command of a stage, its variables expanded, with the state it runs in."""

    command: Instruction
    state: StageState  # state *before* the command (the env RUN sees, ARGs in scope)
    undefined: frozenset[str] = frozenset()  # variables used but unset (UndefinedVar)
    from_onbuild: bool = False

    @property
    def build_args(self) -> tuple[tuple[str, str], ...]:
        """ARGs in scope as BuildKit writes them into a RUN's history line (``|N k=v ...``).

        Every declared ARG once (first position kept), valued from the environment, else its
        own value, else "" (an ARG without value still appears). RUN's actual environment is
        ``state.env``, where ARGs without a value are absent.
        """
        env = self.state.env_dict()
        out: dict[str, str] = {}
        for k, v in self.state.build_args:
            out[k] = env.get(k, v or "")
        return tuple(out.items())


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` and its commands, for one target platform.

    ``base_name`` and ``platform`` are expanded with the global ARGs. ``base_stage`` is the
    index of the stage it builds on (``FROM <stage>``), else ``None`` (an image or scratch).
    ``deps`` are the stages it needs (base, ``COPY --from``, ``RUN --mount from=``, ONBUILD
    triggers); ``external_images`` the image references used the same way.
    """

    index: int
    name: str | None
    base_name: str
    base_name_raw: str
    platform: Platform | None
    platform_raw: str | None
    commands: tuple[Instruction, ...]
    from_: From
    base_stage: int | None = None
    deps: frozenset[int] = frozenset()
    external_images: tuple[str, ...] = ()
    triggers: tuple[Instruction, ...] = ()  # ONBUILD triggers of the base stage, run first
    used_global_args: frozenset[str] = frozenset()

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"

    @property
    def location(self) -> tuple[int, int]:
        return self.from_.location

    @property
    def is_scratch(self) -> bool:
        return self.base_stage is None and self.base_name == _EMPTY_IMAGE

    @property
    def uses_build_platform(self) -> bool:
        """``FROM --platform=$BUILDPLATFORM``: one build serves every target platform."""
        return uses_build_platform(self.from_)

    @property
    def onbuild(self) -> tuple[Onbuild, ...]:
        """ONBUILD instructions recorded by this stage (they go to the image config)."""
        return tuple(c for c in self.commands if isinstance(c, Onbuild))


def uses_build_platform(from_: From) -> bool:
    """Whether a FROM is pinned to the build platform (``--platform=$BUILDPLATFORM``)."""
    return from_.platform is not None and bool(_BUILD_PLATFORM_RE.match(from_.platform.strip()))


def default_path_env(os_: str) -> str:
    """BuildKit's system.DefaultPathEnv: PATH for images that do not set one."""
    if os_ == "windows":
        return "c:\\Windows\\System32;c:\\Windows"
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def default_args(
    target_platform: Platform,
    build_platform: Platform,
    build_args: Mapping[str, str],
    target_stage: str = "",
) -> dict[str, str]:
    """The automatic ARGs of the global scope; a ``--build-arg`` of the same name wins."""
    t, b = target_platform, build_platform
    values = {
        "BUILDPLATFORM": b.format(),
        "BUILDOS": b.os,
        "BUILDARCH": b.architecture,
        "BUILDVARIANT": b.variant,
        "TARGETPLATFORM": str(t),
        "TARGETOS": t.os,
        "TARGETARCH": t.architecture,
        "TARGETVARIANT": t.variant,
        "TARGETSTAGE": target_stage,
    }
    return {k: build_args.get(k, v) for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# Plan


@dataclass(frozen=True)
class _Source:
    """The platform-independent input of a plan, kept so it can be re-evaluated per platform."""

    meta_args: tuple[Arg, ...]
    stage_decls: tuple[tuple[From, tuple[Instruction, ...]], ...]
    escape_token: str
    filename: str
    parser_warnings: tuple[PlanWarning, ...]


@dataclass(frozen=True)
class BuildPlan:
    """Every stage for one target platform, the target, and what the target needs."""

    filename: str
    escape_token: str
    target_platform: Platform
    build_platform: Platform
    build_args: Mapping[str, str]
    meta_args: tuple[Arg, ...]
    global_args: tuple[tuple[str, str], ...]  # what FROM lines see (automatic + meta ARGs)
    declared_meta_args: frozenset[str]
    stages: tuple[Stage, ...]
    target_index: int
    needed: frozenset[int]
    warnings: tuple[PlanWarning, ...] = ()
    lint: tuple[PlanWarning, ...] = ()  # UndefinedArgInFrom and friends (check.py reports them)
    target_name: str | None = None  # the --target asked for (None: the last stage)
    all_stages: bool = False
    _source: _Source | None = field(default=None, repr=False, compare=False)

    # -- lookups -------------------------------------------------------------------------

    @property
    def target(self) -> Stage:
        return self.stages[self.target_index]

    @property
    def needed_stages(self) -> tuple[Stage, ...]:
        """Stages the target needs, in Dockerfile order (the build order)."""
        return tuple(s for s in self.stages if s.index in self.needed)

    @property
    def proxy_env(self) -> dict[str, str]:
        """Proxy build-args: given to every RUN, never declared, never in history."""
        names = {p.lower() for p in PROXY_ARGS}
        return {k: v for k, v in self.build_args.items() if k.lower() in names}

    def stage(self, ref: str | int) -> Stage:
        """A stage by index or (case-insensitive) name."""
        if isinstance(ref, int):
            if not 0 <= ref < len(self.stages):
                raise DockerfileError(f"invalid stage index {ref}", filename=self.filename)
            return self.stages[ref]
        found = _find_stage(self.stages, ref)
        if found is None:
            raise TargetNotFoundError(f"stage {ref!r} not found in {self.filename}")
        return found

    def effective_platform(self, stage: Stage | int) -> Platform:
        """The platform a stage runs on: its base stage's, its ``--platform``, or the target."""
        st = self.stages[stage] if isinstance(stage, int) else stage
        while st.base_stage is not None:
            st = self.stages[st.base_stage]
        return st.platform or self.target_platform

    def for_platform(self, platform: Platform) -> BuildPlan:
        """The same Dockerfile and options evaluated for another target platform."""
        if platform == self.target_platform:
            return self
        assert self._source is not None
        return _build_plan(
            self._source,
            build_args=self.build_args,
            target_platform=platform,
            build_platform=self.build_platform,
            target=self.target_name,
            all_stages=self.all_stages,
        )

    # -- expansion -----------------------------------------------------------------------

    def stage_commands(
        self,
        stage: Stage | int | str,
        platform: Platform | None = None,
        *,
        base_image: Callable[[Stage], BaseImageInfo | None] | None = None,
    ) -> list[ExpandedCommand]:
        """Every command of ``stage`` (ONBUILD triggers first), variables expanded.

        ``platform`` is the target platform to evaluate for (default: the plan's);
        ``base_image`` tells what the engine resolved for an external base image (env,
        ONBUILD triggers, shell, workdir); without it the base is assumed to set only PATH.
        """
        plan = self if platform is None else self.for_platform(platform)
        st = plan.stage(stage) if not isinstance(stage, Stage) else plan.stages[stage.index]
        return plan._expand_stage(st, base_image, {})[0]

    def final_state(
        self,
        stage: Stage | int | str,
        *,
        base_image: Callable[[Stage], BaseImageInfo | None] | None = None,
    ) -> StageState:
        """The state after the stage's last command (what a ``FROM <stage>`` child starts with)."""
        st = self.stage(stage) if not isinstance(stage, Stage) else stage
        return self._expand_stage(st, base_image, {})[1]

    def expand_all(
        self,
        *,
        base_image: Callable[[Stage], BaseImageInfo | None] | None = None,
        only_needed: bool = True,
    ) -> dict[int, list[ExpandedCommand]]:
        """``stage_commands`` for every (needed) stage, sharing the work along FROM chains."""
        memo: dict[int, tuple[list[ExpandedCommand], StageState]] = {}
        out: dict[int, list[ExpandedCommand]] = {}
        for st in self.stages:
            if only_needed and st.index not in self.needed:
                continue
            out[st.index] = self._expand_stage(st, base_image, memo)[0]
        return out

    def _expand_stage(
        self,
        st: Stage,
        base_image: Callable[[Stage], BaseImageInfo | None] | None,
        memo: dict[int, tuple[list[ExpandedCommand], StageState]],
    ) -> tuple[list[ExpandedCommand], StageState]:
        if st.index in memo:
            return memo[st.index]
        # The FROM chain down from the first stage already expanded (or an image), walked
        # without recursion: a Dockerfile may chain thousands of stages.
        chain = [st]
        while (base := chain[-1].base_stage) is not None and base not in memo:
            if any(c.index == base for c in chain):
                break  # a cycle: _check_cycles reports it; do not loop here
            chain.append(self.stages[base])
        for s in reversed(chain):
            self._expand_one(s, base_image, memo)
        return memo[st.index]

    def _expand_one(
        self,
        st: Stage,
        base_image: Callable[[Stage], BaseImageInfo | None] | None,
        memo: dict[int, tuple[list[ExpandedCommand], StageState]],
    ) -> None:
        """Expand ``st`` whose base stage, if any, is in ``memo`` (or part of a cycle)."""
        image_triggers: tuple[Instruction, ...] = ()
        if st.base_stage is not None:
            base = memo.get(st.base_stage)
            state = base[1] if base is not None else StageState()
            inherited = state.env
            for k, v in state.image_env:
                inherited = _add_env(inherited, k, v)
            state = replace(state, env=inherited)
        else:
            info = base_image(st) if base_image is not None else None
            info = info or BaseImageInfo()
            env = [_split_env(e) for e in info.env]
            if not any(k == "PATH" for k, _ in env):
                env.append(("PATH", default_path_env(self.effective_platform(st).os)))
            state = StageState(env=tuple(env), shell=tuple(info.shell), workdir=info.workdir,
                               image_env=tuple(env))
            image_triggers = tuple(
                _parse_trigger(t, st.location, self.filename) for t in info.onbuild
            )
        dispatcher = _Dispatcher(self, state)
        out: list[ExpandedCommand] = []
        for cmd in (*image_triggers, *st.triggers):
            out.append(dispatcher.dispatch(cmd, from_onbuild=True))
        for cmd in st.commands:
            out.append(dispatcher.dispatch(cmd, from_onbuild=False))
        memo[st.index] = (out, dispatcher.state)


def expand_for_stage(
    plan: BuildPlan,
    stage: Stage | int | str,
    platform: Platform | None = None,
    *,
    base_image: Callable[[Stage], BaseImageInfo | None] | None = None,
) -> list[ExpandedCommand]:
    """Function form of :meth:`BuildPlan.stage_commands`."""
    return plan.stage_commands(stage, platform, base_image=base_image)


# Which instructions expand variables, and how (BuildKit's SupportsSingleWordExpansion set):
# ADD/COPY (sources, dest, --chown, --chmod; ADD also --checksum; heredoc bodies unless the
# delimiter is quoted), ENV and LABEL (keys and values), USER, VOLUME, WORKDIR, STOPSIGNAL, EXPOSE
# (with word splitting), ARG (default values only), RUN (--mount values only), FROM (base and
# --platform, global scope). Never: CMD, ENTRYPOINT, HEALTHCHECK, SHELL, MAINTAINER, ONBUILD,
# COPY --from.
EXPANDING_INSTRUCTIONS: frozenset[str] = frozenset(
    {"add", "arg", "copy", "env", "expose", "from", "label", "run", "stopsignal", "user",
     "volume", "workdir"}
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Dispatch (expansion)


def _split_env(entry: str) -> tuple[str, str]:
    k, _, v = entry.partition("=")
    return k, v


def _add_env(env: Env_, key: str, value: str) -> Env_:
    """Replace in place or append (llb AddEnv / BuildKit's addEnv)."""
    items = list(env)
    for i, (k, _) in enumerate(items):
        if k == key:
            items[i] = (key, value)
            return tuple(items)
    return (*items, (key, value))


class _Dispatcher:
    """Replays one stage's commands over a ``StageState`` (BuildKit's ``dispatch``)."""

    def __init__(self, plan: BuildPlan, state: StageState) -> None:
        self.plan = plan
        self.state = state
        self.lexer = Lexer(plan.escape_token)
        # Heredoc bodies are expanded with a backslash lexer that leaves quotes alone.
        self.raw_lexer = Lexer("\\", skip_process_quotes=True)

    def _fail(self, e: DockerfileError, cmd: Instruction) -> DockerfileError:
        return DockerfileError(e.message, filename=self.plan.filename, line=cmd.line, hint=e.hint)

    def _word(self, lexer: Lexer, word: str, unmatched: set[str], cmd: Instruction) -> str:
        try:
            res = lexer.process(word, self.state.env_dict())
        except DockerfileError as e:
            raise self._fail(e, cmd) from None
        unmatched |= res.unmatched
        return res.result

    def dispatch(self, cmd: Instruction, *, from_onbuild: bool) -> ExpandedCommand:
        before = self.state
        unmatched: set[str] = set()

        def expander(w: str) -> str:
            return self._word(self.lexer, w, unmatched, cmd)

        out: Instruction = cmd
        arg_undefined: set[str] = set()
        if isinstance(cmd, Arg):
            out = self._arg(cmd, arg_undefined)
        elif isinstance(cmd, Expose):
            ports: list[str] = []
            for port in cmd.ports:
                try:
                    ports.extend(self.lexer.process(port, self.state.env_dict()).words)
                except DockerfileError as e:
                    raise self._fail(e, cmd) from None
            out = replace(cmd, ports=tuple(ports))
        else:
            out = expand_instruction(cmd, expander, filename=self.plan.filename)
            if isinstance(out, Copy | Add) and any(h.expand for h in out.heredocs):
                out = replace(
                    out, heredocs=tuple(self._heredoc(h, unmatched, cmd) for h in out.heredocs)
                )

        if isinstance(out, Env):
            env, image_env = self.state.env, self.state.image_env
            for p in out.pairs:
                env = _add_env(env, p.key, p.value)
                image_env = _add_env(image_env, p.key, p.value)
            self.state = replace(self.state, env=env, image_env=image_env)
        elif isinstance(out, Workdir):
            wd = out.path
            if not posixpath.isabs(wd):
                wd = posixpath.join("/", self.state.workdir or "/", wd)
            self.state = replace(self.state, workdir=go_clean(wd), workdir_set=True)
        elif isinstance(out, Shell):
            self.state = replace(self.state, shell=out.shell)

        declared = {k for k, _ in before.build_args}
        undefined = {v for v in unmatched if v not in declared} | arg_undefined
        return ExpandedCommand(out, before, frozenset(undefined - _NON_ENV_ARGS), from_onbuild)

    def _heredoc(self, h: SourceContent, unmatched: set[str], cmd: Instruction) -> SourceContent:
        if not h.expand:
            return h
        return replace(h, data=self._word(self.raw_lexer, h.data, unmatched, cmd))

    def _arg(self, cmd: Arg, undefined: set[str]) -> Arg:
        plan = self.plan
        global_args = dict(plan.global_args)
        pairs: list[ArgSpec] = []
        for spec in cmd.pairs:
            key = spec.key
            value = spec.value
            has_value = key in plan.build_args
            if value is None and not has_value and key in global_args:
                value = global_args[key]
            elif has_value:
                value = plan.build_args[key]
            elif value is not None:
                unmatched: set[str] = set()
                value = self._word(self.lexer, value, unmatched, cmd)
                declared = {k for k, _ in self.state.build_args}
                undefined.update(v for v in unmatched if v not in declared)
            if value is not None and key not in _NON_ENV_ARGS:
                self.state = replace(self.state, env=_add_env(self.state.env, key, value))
            self.state = replace(self.state, build_args=(*self.state.build_args, (key, value)))
            pairs.append(ArgSpec(key, value))
        return replace(cmd, pairs=tuple(pairs))


# --------------------------------------------------------------------------------------------
# Building the plan


def _find_stage(stages: Sequence[Stage], name: str) -> Stage | None:
    """Case-insensitive; with duplicate names the last one wins (BuildKit's name map)."""
    low = name.lower()
    for s in reversed(stages):
        if s.name is not None and s.name == low:
            return s
    return None


def _parse_trigger(expression: str, location: tuple[int, int], filename: str) -> Instruction:
    """Parse an ONBUILD trigger; errors point at the FROM of the stage that runs it."""
    from xarch.frontend.dockerfile.parser import parse

    try:
        res = parse(expression, filename)
        children = list(res.ast.children)
        if len(children) != 1:
            raise DockerfileError("onbuild trigger should be a single expression")
        node = children[0]
        node.start_line, node.end_line = location
        ins = parse_instruction(node, filename=filename)
    except DockerfileError as e:
        raise DockerfileError(
            f"ONBUILD trigger {expression.splitlines()[0] if expression else ''!r}: {e.message}",
            filename=filename,
            line=location[0],
            hint=e.hint,
        ) from None
    return ins


def _atoi(s: str) -> int | None:
    """Go ``strconv.Atoi``: optional sign, decimal digits, nothing else."""
    if re.fullmatch(r"[+-]?[0-9]+", s):
        return int(s)
    return None


def _group(
    instructions: Sequence[Instruction], filename: str
) -> tuple[list[Arg], list[tuple[From, list[Instruction]]]]:
    meta: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    for ins in instructions:
        if isinstance(ins, From):
            stages.append((ins, []))
        elif not stages:
            if isinstance(ins, Arg):
                meta.append(ins)
                continue
            raise DockerfileError(
                f"no build stage in current context: {ins.keyword.upper()} before the first FROM",
                filename=filename,
                line=ins.line,
                hint="only ARG, comments and parser directives may precede the first FROM",
            )
        else:
            stages[-1][1].append(ins)
    return meta, stages


def parse_stages(
    ast: Any,
    *,
    build_args: Mapping[str, str] | None = None,
    target_platform: Platform,
    build_platform: Platform | None = None,
    target: str | None = None,
    filename: str = "Dockerfile",
    escape_token: str = "\\",
    parser_warnings: Sequence[Any] = (),
    all_stages: bool = False,
) -> BuildPlan:
    """Group, expand and prune the stages of a parsed Dockerfile for one target platform.

    ``ast`` is ``ParseResult.ast`` (or a ``ParseResult``, whose escape token and warnings
    are then used). ``all_stages`` validates every stage (ONBUILD triggers, stage order)
    instead of only those the target needs, as BuildKit's lint does. Raises :class:`DockerfileError` (``file:line: ...``) for bad input and
    :class:`TargetNotFoundError` for an unknown ``target``.
    """
    if hasattr(ast, "ast") and hasattr(ast, "escape_token"):
        escape_token = ast.escape_token
        parser_warnings = list(getattr(ast, "warnings", ()) or ())
        ast = ast.ast
    instructions = [parse_instruction(n, filename=filename) for n in (ast.children or [])]
    meta, decls = _group(instructions, filename)
    if not decls:
        raise DockerfileError(
            "dockerfile contains no stages to build",
            filename=filename,
            hint="add a FROM instruction (FROM scratch for an empty base)",
        )
    pw = tuple(
        PlanWarning("NoEmptyContinuation", "Empty continuation line", getattr(w, "line", None))
        for w in parser_warnings
    )
    source = _Source(
        meta_args=tuple(meta),
        stage_decls=tuple((f, tuple(cmds)) for f, cmds in decls),
        escape_token=escape_token,
        filename=filename,
        parser_warnings=pw,
    )
    return _build_plan(
        source,
        build_args=dict(build_args or {}),
        target_platform=target_platform,
        build_platform=build_platform or target_platform,
        target=target,
        all_stages=all_stages,
    )


def _build_plan(
    src: _Source,
    *,
    build_args: Mapping[str, str],
    target_platform: Platform,
    build_platform: Platform,
    target: str | None,
    all_stages: bool = False,
) -> BuildPlan:
    filename = src.filename
    lexer = Lexer(src.escape_token)
    decls = src.stage_decls
    lint: list[PlanWarning] = []

    target_name = target or (decls[-1][0].stage_name or "")
    global_args = default_args(target_platform, build_platform, build_args, target_name)

    # Meta ARGs (buildMetaArgs): a build-arg wins; a default is expanded with what precedes it.
    declared_meta: list[str] = []
    for meta_cmd in src.meta_args:
        for spec in meta_cmd.pairs:
            declared_meta.append(spec.key)
            if spec.key in build_args:
                value: str | None = build_args[spec.key]
            elif spec.value is not None:
                try:
                    value = lexer.process(spec.value, global_args).result
                except DockerfileError as e:
                    raise DockerfileError(
                        e.message, filename=filename, line=meta_cmd.line, hint=e.hint
                    ) from None
            else:
                value = None
            if value is not None:
                global_args[spec.key] = value
    known_in_from = set(global_args) | set(declared_meta)

    stages: list[Stage] = []
    for i, (frm, cmds) in enumerate(decls):
        line = frm.line
        try:
            res = lexer.process(frm.base_name, global_args)
        except DockerfileError as e:
            raise DockerfileError(e.message, filename=filename, line=line, hint=e.hint) from None
        used = set(res.matched)
        _lint_from_args(res.unmatched, known_in_from, line, lint)
        if res.result == "":
            raise DockerfileError(
                f"base name ({frm.base_name}) should not be blank",
                filename=filename,
                line=line,
                hint="set the ARG it uses (--build-arg) or give it a default",
            )
        platform: Platform | None = None
        if frm.platform is not None:
            try:
                pres = lexer.process(frm.platform, global_args)
            except DockerfileError as e:
                raise DockerfileError(
                    f"failed to process arguments for platform {frm.platform}: {e.message}",
                    filename=filename,
                    line=line,
                    hint=e.hint,
                ) from None
            _lint_from_args(pres.unmatched, known_in_from, line, lint)
            _lint_platform(frm, pres.result, pres.matched, pres.unmatched, global_args, lint)
            if pres.result == "":
                raise DockerfileError(
                    f"empty platform value from expression {frm.platform}",
                    filename=filename,
                    line=line,
                    hint="the ARGs it uses are unset; e.g. --platform=$BUILDPLATFORM",
                )
            try:
                platform = Platform.parse(pres.result)
            except Exception as e:  # InputError from Platform.parse
                raise DockerfileError(
                    f"failed to parse platform {frm.platform}: {getattr(e, 'message', e)}",
                    filename=filename,
                    line=line,
                ) from None
            used |= pres.matched
        base = _find_stage(stages, res.result)
        stages.append(
            Stage(
                index=i,
                name=frm.stage_name,
                base_name=res.result,
                base_name_raw=frm.base_name,
                platform=platform,
                platform_raw=frm.platform,
                commands=cmds,
                from_=frm,
                base_stage=base.index if base is not None else None,
                used_global_args=frozenset(used),
            )
        )

    if target:
        found = _find_stage(stages, target)
        if found is None:
            names = [s.name for s in stages if s.name]
            raise TargetNotFoundError(
                f'target stage "{target}" could not be found in {filename}',
                hint=f"stages: {', '.join(names)}"
                if names
                else "the Dockerfile names no stages (FROM ... AS <name>)",
            )
        target_index = found.index
    else:
        target_index = len(stages) - 1

    # Dependencies (toCommand): COPY --from=<name|index|image>, RUN --mount from=<name|image>.
    resolved: list[Stage] = []
    for st in stages:
        deps: set[int] = set()
        images: list[str] = []
        if st.base_stage is not None:
            deps.add(st.base_stage)
        elif st.base_name != _EMPTY_IMAGE:
            images.append(st.base_name)
        for cmd in st.commands:
            _command_sources(cmd, stages, deps, images, filename)
        resolved.append(replace(st, deps=frozenset(deps), external_images=tuple(images)))
    stages = resolved

    # ONBUILD triggers of a base stage run at the start of the child (and may add deps).
    # BuildKit only looks at reachable stages, so an unparsable trigger elsewhere is no error.
    needed = _reachable(stages, target_index)
    everything = set(range(len(stages)))
    while True:
        changed = False
        for idx in sorted(everything if all_stages else needed):
            st = stages[idx]
            if st.base_stage is None or st.triggers:
                continue
            parent = stages[st.base_stage]
            triggers = tuple(
                _parse_trigger(o.expression, st.location, filename) for o in parent.onbuild
            )
            if not triggers:
                continue
            deps = set(st.deps)
            images = list(st.external_images)
            for t in triggers:
                _command_sources(t, stages, deps, images, filename)
            stages[idx] = replace(
                st, triggers=triggers, deps=frozenset(deps), external_images=tuple(images)
            )
            changed = True
        if not changed:
            break
        needed = _reachable(stages, target_index)

    _check_cycles(stages, filename)
    for idx in sorted(everything if all_stages else needed):
        st = stages[idx]
        for cmd in (*st.triggers, *st.commands):
            for dep in _stage_refs(cmd, stages):
                if dep.index >= st.index:
                    verb = "mount" if isinstance(cmd, Run) else "copy"
                    raise DockerfileError(
                        f'cannot {verb} from stage "{dep.display_name}", it needs to be defined '
                        f'before current stage "{st.display_name}"',
                        filename=filename,
                        line=cmd.line if cmd.line else st.location[0],
                        hint="move that stage above this one",
                    )

    warnings = list(src.parser_warnings)
    consumed = set(declared_meta) | set(AUTOMATIC_PLATFORM_ARGS) | {"TARGETSTAGE"}
    for idx in needed:
        for cmd in (*stages[idx].triggers, *stages[idx].commands):
            if isinstance(cmd, Arg):
                consumed.update(p.key for p in cmd.pairs)
    proxy = {p.lower() for p in PROXY_ARGS}
    unused = sorted(
        k
        for k in build_args
        if k not in consumed and k.lower() not in proxy and not _FRONTEND_ARG_RE.match(k)
    )
    if unused:
        warnings.append(
            PlanWarning(
                "UnusedBuildArg",
                f"one or more build-args [{' '.join(unused)}] were not consumed",
            )
        )

    return BuildPlan(
        filename=filename,
        escape_token=src.escape_token,
        target_platform=target_platform,
        build_platform=build_platform,
        build_args=dict(build_args),
        meta_args=src.meta_args,
        global_args=tuple(global_args.items()),
        declared_meta_args=frozenset(declared_meta),
        stages=tuple(stages),
        target_index=target_index,
        needed=frozenset(needed),
        warnings=tuple(warnings),
        lint=tuple(lint),
        target_name=target or None,
        all_stages=all_stages,
        _source=src,
    )


def _lint_from_args(
    unmatched: set[str], known: set[str], line: int, lint: list[PlanWarning]
) -> None:
    for name in sorted(unmatched):
        if name in known:
            continue
        msg = f"FROM argument '{name}' is not declared"
        s = _closest(name, sorted(known))
        if s:
            msg += f" (did you mean {s}?)"
        lint.append(PlanWarning("UndefinedArgInFrom", msg, line))


def _lint_platform(
    frm: From,
    result: str,
    matched: set[str],
    unmatched: set[str],
    global_args: Mapping[str, str],
    lint: list[PlanWarning],
) -> None:
    if (
        len(matched) == 1
        and not unmatched
        and "TARGETPLATFORM" in matched
        and global_args.get("TARGETPLATFORM") == result
    ):
        lint.append(
            PlanWarning(
                "RedundantTargetPlatform",
                f"Setting platform to predefined {frm.platform} in FROM is redundant as this "
                "is the default behavior",
                frm.line,
            )
        )
    if matched or unmatched:
        return
    try:
        p = Platform.parse(result)
    except Exception:
        return  # fails later with a proper error
    name = frm.stage_name or ""
    if p.os in name or p.architecture in name:
        return
    lint.append(
        PlanWarning(
            "FromPlatformFlagConstDisallowed",
            f'FROM --platform flag should not use constant value "{result}"',
            frm.line,
        )
    )


def _closest(word: str, options: Sequence[str]) -> str | None:
    from xarch.frontend.dockerfile.instructions import suggest_word

    return suggest_word(word, options)


def _stage_refs(cmd: Instruction, stages: Sequence[Stage]) -> list[Stage]:
    deps: set[int] = set()
    _command_sources(cmd, stages, deps, [], "")
    return [stages[i] for i in sorted(deps)]


def _command_sources(
    cmd: Instruction, stages: Sequence[Stage], deps: set[int], images: list[str], filename: str
) -> None:
    if isinstance(cmd, Copy) and cmd.from_:
        idx = _atoi(cmd.from_)
        if idx is not None:
            if not 0 <= idx < len(stages):
                raise DockerfileError(
                    f"invalid stage index {idx}",
                    filename=filename or "Dockerfile",
                    line=cmd.line,
                    hint=f"the Dockerfile has {len(stages)} stage(s), numbered from 0",
                )
            deps.add(idx)
            return
        found = _find_stage(stages, cmd.from_)
        if found is not None:
            deps.add(found.index)
        elif cmd.from_ not in images:
            images.append(cmd.from_)
    elif isinstance(cmd, Run):
        for spec in cmd.mount_specs:
            frm = parse_mount_from(spec)
            if not frm:
                continue
            found = _find_stage(stages, frm)
            if found is not None:
                deps.add(found.index)
            elif frm not in images:
                images.append(frm)


def _reachable(stages: Sequence[Stage], target: int) -> set[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(stages[i].deps)
    return seen


def _check_cycles(stages: Sequence[Stage], filename: str) -> None:
    state: dict[int, int] = {}  # 1 = on path, 2 = done

    def visit(root: int) -> int | None:
        """Depth-first from ``root`` on an explicit stack (dependency chains can be thousands
        long); the first dependency found on the current path closes a cycle."""
        state[root] = 1
        path = [(root, iter(sorted(stages[root].deps)))]
        while path:
            i, deps = path[-1]
            for d in deps:
                if state.get(d) == 1:
                    return d
                if d not in state:
                    state[d] = 1
                    path.append((d, iter(sorted(stages[d].deps))))
                    break
            else:
                state[i] = 2
                path.pop()
        return None

    for st in stages:
        if st.index not in state:
            hit = visit(st.index)
            if hit is not None:
                s = stages[hit]
                raise DockerfileError(
                    f"circular dependency detected on stage: {s.display_name}",
                    filename=filename,
                    line=s.location[0],
                )
