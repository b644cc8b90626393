"""Dockerfile → build graph, per target platform (BuildKit's dockerfile2llb, minus LLB).

For each target platform the needed stages are dispatched in Dockerfile order. Filesystem
steps (RUN, COPY, ADD, WORKDIR) become graph vertices; everything else edits the image
config and its history, as BuildKit does. A stage pinned to ``$BUILDPLATFORM`` produces the
same vertices for every target (unless it reads a TARGET* ARG), so the solver builds it once.

Base images are resolved through an ``ImageResolver`` (the engine pulls or reads the local
store); this module does no I/O itself.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from xarch.frontend.dockerfile import instructions as ins
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.stages import (
    BaseImageInfo,
    BuildPlan,
    ExpandedCommand,
    Stage,
    StageState,
    default_path_env,
)
from xarch.graph.ops import (
    SCRATCH,
    ContextOp,
    CopyOp,
    ExecOp,
    ImageOp,
    MkdirOp,
    MountSpec,
    Vertex,
)
from xarch.oci.platform import Platform

CONTEXT = Vertex(ContextOp("context"))
BaseInfoFn = Callable[[Stage], BaseImageInfo | None]
CommitFn = Callable[..., None]


@dataclass(frozen=True)
class ResolvedImage:
    ref: str  # normalized reference as the user will see it
    manifest_digest: str
    platform: Platform
    config: Mapping[str, Any]  # the image config document


class ImageResolver(Protocol):
    def resolve(self, ref: str, platform: Platform) -> ResolvedImage: ...


@dataclass
class HistoryStep:
    """One history entry; ``vertex`` is set for steps that may add a layer."""

    entry: dict[str, Any]
    vertex: Vertex | None = None


@dataclass
class StageResult:
    vertex: Vertex
    platform: Platform
    config: dict[str, Any]  # image config without rootfs/history
    history: list[HistoryStep]
    base_history_layers: int = 0  # layers the base image brought (from its own history)
    cmd_set: bool = False
    base_refs: list[ResolvedImage] = field(default_factory=list)


@dataclass(frozen=True)
class ConvertOptions:
    source_date_epoch: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str = "default"  # default network for RUN (--network of xarch build)
    # A heredoc script with a shebang is run as a file under this dir (BuildKit's /dev/pipes).
    pipes_dir: str = "/dev/pipes/"


_GO_ESC = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def _go_quote_char(ch: str, quote: str) -> str:
    """One character as Go's strconv.Quote/QuoteRune writes it."""
    o = ord(ch)
    if ch in (quote, "\\"):
        return "\\" + ch
    if o in _GO_ESC:
        return _GO_ESC[o]
    if ch.isprintable() and o != 0x7F:
        return ch
    if o < 0x80:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def _go_quote(s: str) -> str:
    """Go's strconv.Quote (fmt %q of a string)."""
    return '"' + "".join(_go_quote_char(c, '"') for c in s) + '"'


def _go_quote_list(items: Sequence[str]) -> str:
    """Go's fmt %q of a []string: ["a" "b"]."""
    return "[" + " ".join(_go_quote(s) for s in items) + "]"


def _go_list(items: Sequence[str]) -> str:
    """Go's fmt %v of a []string: [a b]."""
    return "[" + " ".join(items) + "]"


def _go_frac(v: int, prec: int) -> str:
    whole, frac = divmod(v, 10**prec)
    fs = f"{frac:0{prec}d}".rstrip("0") if frac else ""
    return f"{whole}.{fs}" if fs else str(whole)


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_go_frac(ns, 3)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{_go_frac(ns, 6)}ms"
    secs, rem = divmod(ns, 1_000_000_000)
    out = ""
    h, secs = divmod(secs, 3600)
    m, s = divmod(secs, 60)
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return f"{sign}{out}{_go_frac(s * 1_000_000_000 + rem, 9)}s"


def _add_env(env: list[str], k: str, v: str) -> list[str]:
    for i, e in enumerate(env):
        if e.partition("=")[0] == k:
            env[i] = f"{k}={v}"
            return env
    env.append(f"{k}={v}")
    return env


def _set_list(cfg: dict[str, Any], key: str, value: list[str]) -> None:
    """Go's omitempty: an empty CMD/ENTRYPOINT list is absent from the config."""
    if value:
        cfg[key] = value
    else:
        cfg.pop(key, None)


def expand_port_spec(port: str) -> list[str]:
    """EXPOSE values as docker's nat.ParsePortSpecs keys: "80" -> 80/tcp, "9000-9002/udp" ->
    one key per port. Malformed values are kept as written (lower-cased)."""
    num, _, proto = port.lower().partition("/")
    proto = proto or "tcp"
    lo, dash, hi = num.partition("-")
    if dash and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
        return [f"{p}/{proto}" for p in range(int(lo), int(hi) + 1)]
    return [f"{num}/{proto}"]


def normalize_workdir(current: str, path: str) -> str:
    if not path.startswith("/"):
        path = posixpath.join(current or "/", path)
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def workdir_as_written(current: str, path: str) -> str:
    """BuildKit's system.NormalizeWorkdir: the path its history records and its mkdir makes.

    A relative path is joined to the current one (Go's path.Join cleans it); an absolute one
    is kept as written (``//a//b/``, ``/x/../y``, whose mkdir also makes ``/x``)."""
    if not path:
        path = current or "/"
    if path.startswith("/"):
        return path
    return posixpath.normpath(posixpath.join("/", current or "/", path))


def dest_path(workdir: str, dest: str) -> str:
    """BuildKit's pathRelativeToWorkingDir, keeping a trailing slash (it means "a dir")."""
    if dest in (".", ""):
        dest = "./"
    trailing = dest.endswith("/") or dest.endswith("/.")
    base = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    out = posixpath.normpath(base)
    if out.startswith("//"):
        out = out[1:]
    if trailing and not out.endswith("/"):
        out += "/"
    return out


def copy_history(c: ins.Copy | ins.Add) -> str:
    """A COPY/ADD ``created_by`` as BuildKit's dispatchCopy writes it: --parents, --chown and
    --chmod (expanded, in this order whatever the order written; no other flag), the sources,
    the heredocs as ``<<NAME``, the destination as written."""
    words = ["ADD" if isinstance(c, ins.Add) else "COPY"]
    if isinstance(c, ins.Copy) and c.parents:
        words.append("--parents")
    if c.chown:
        words.append(f"--chown={c.chown}")
    if c.chmod:
        words.append(f"--chmod={c.chmod}")
    words += [*c.sources, *(f"<<{h.path}" for h in c.heredocs), c.dest]
    return " ".join(words)


def _empty_image(platform: Platform) -> dict[str, Any]:
    return {"config": {"Env": [f"PATH={default_path_env(platform.os)}"], "WorkingDir": "/"}}


class Converter:
    def __init__(
        self,
        plan: BuildPlan,
        resolver: ImageResolver,
        options: ConvertOptions | None = None,
    ) -> None:
        self.plan = plan
        self.resolver = resolver
        self.opts = options or ConvertOptions()
        self._resolved: dict[tuple[str, str], ResolvedImage] = {}

    # -- base images -------------------------------------------------------------------------

    def resolved_images(self) -> list[ResolvedImage]:
        """Every base image resolved so far (for provenance)."""
        return list(self._resolved.values())

    def _resolve(self, ref: str, platform: Platform) -> ResolvedImage:
        key = (ref, str(platform))
        if key not in self._resolved:
            self._resolved[key] = self.resolver.resolve(ref, platform)
        return self._resolved[key]

    def _base_info(self, plan: BuildPlan, platform: Platform) -> BaseInfoFn:
        def info(st: Stage) -> BaseImageInfo | None:
            if st.is_scratch or st.base_stage is not None:
                return None
            img = self._resolve(st.base_name, plan.effective_platform(st))
            cfg = img.config.get("config") or {}
            return BaseImageInfo(
                env=tuple(cfg.get("Env") or ()),
                onbuild=tuple(cfg.get("OnBuild") or ()),
                shell=tuple(cfg.get("Shell") or ()),
                workdir=cfg.get("WorkingDir") or "",
            )

        return info

    # -- conversion --------------------------------------------------------------------------

    def convert(self, platform: Platform) -> StageResult:
        """The target stage for one target platform."""
        plan = self.plan.for_platform(platform)
        base_info = self._base_info(plan, platform)
        expanded = plan.expand_all(base_image=base_info)
        results: dict[int, StageResult] = {}
        for st in plan.needed_stages:
            results[st.index] = self._stage(plan, st, expanded[st.index], results, base_info)
        return results[plan.target_index]

    def _stage(
        self,
        plan: BuildPlan,
        st: Stage,
        cmds: list[ExpandedCommand],
        done: dict[int, StageResult],
        base_info: BaseInfoFn,
    ) -> StageResult:
        platform = plan.effective_platform(st)
        if st.base_stage is not None:
            parent = done[st.base_stage]
            res = StageResult(
                vertex=parent.vertex,
                platform=parent.platform,
                config=copy.deepcopy(parent.config),
                history=[HistoryStep(dict(h.entry), h.vertex) for h in parent.history],
                base_refs=list(parent.base_refs),
            )
            res.config.get("config", {}).pop("OnBuild", None)  # triggers do not carry over
        elif st.is_scratch:
            res = StageResult(vertex=SCRATCH, platform=platform, config=_empty_image(platform), history=[])
        else:
            img = self._resolve(st.base_name, platform)
            cfg = copy.deepcopy(dict(img.config))
            history = [HistoryStep(dict(h)) for h in cfg.pop("history", None) or []]
            cfg.pop("rootfs", None)
            res = StageResult(
                vertex=Vertex(ImageOp(img.ref, img.manifest_digest, img.platform), name=f"FROM {img.ref}"),
                platform=platform,
                config=cfg,
                history=history,
                base_refs=[img],
            )
            res.config.setdefault("config", {})
            res.config["config"].pop("OnBuild", None)
            env = res.config["config"].get("Env") or []
            if not any(e.startswith("PATH=") for e in env):
                res.config["config"]["Env"] = [f"PATH={default_path_env(platform.os)}", *env]
        res.cmd_set = False
        total = len(cmds)
        for i, ec in enumerate(cmds):
            after = cmds[i + 1].state if i + 1 < total else plan.final_state(st, base_image=base_info)
            # BuildKit's prefix: "[linux/amd64->arm64 build 2/5]" for a cross-compiling stage
            target = plan.target_platform
            shown = str(platform)
            if platform != target:
                arch = target.architecture + (f"/{target.variant}" if target.variant else "")
                shown += f"->{arch}" if platform.os == target.os else f"->{target}"
            label = f"[{shown} {st.display_name} {i + 1}/{total}]"
            try:
                self._dispatch(plan, st, res, ec, after, done, label)
            except DockerfileError:
                raise
            except ValueError as e:
                raise DockerfileError(str(e), filename=plan.filename, line=ec.command.line) from e
        if self.opts.labels and st.index == plan.target_index:
            labels = res.config["config"].setdefault("Labels", {})
            labels.update(self.opts.labels)
        return res

    def _source_vertex(self, plan: BuildPlan, ref: str, done: dict[int, StageResult], line: int,
                       platform: Platform) -> tuple[Vertex, bool]:
        """(vertex, from_context?) for a COPY --from / RUN --mount from= value."""
        if not ref:
            return CONTEXT, True
        try:
            st = plan.stage(int(ref)) if ref.isdigit() else plan.stage(ref)
        except Exception:
            st = None
        if st is not None:
            if st.index not in done:
                raise DockerfileError(
                    f"cannot copy from stage {ref!r}, it needs to be defined before the current stage",
                    filename=plan.filename, line=line,
                )
            return done[st.index].vertex, False
        if ref.isdigit():
            raise DockerfileError(f"invalid stage index {ref}", filename=plan.filename, line=line)
        img = self._resolve(ref, platform)
        return Vertex(ImageOp(img.ref, img.manifest_digest, img.platform), name=f"FROM {img.ref}"), False

    def _dispatch(self, plan: BuildPlan, st: Stage, res: StageResult, ec: ExpandedCommand,
                  after: StageState, done: dict[int, StageResult], label: str) -> None:
        c = ec.command
        cfg: dict[str, Any] = res.config.setdefault("config", {})
        epoch = self.opts.source_date_epoch

        def commit(msg: str, vertex: Vertex | None = None, buildkit_suffix: bool = False) -> None:
            entry: dict[str, Any] = {}
            if epoch is not None:
                from datetime import UTC, datetime

                entry["created"] = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            entry["created_by"] = msg + (" # buildkit" if buildkit_suffix else "")
            entry["comment"] = "buildkit.dockerfile.v0"
            if vertex is None:
                entry["empty_layer"] = True
            res.history.append(HistoryStep(entry, vertex))

        if isinstance(c, ins.Env):
            env = list(cfg.get("Env") or [])
            for p in c.pairs:
                _add_env(env, p.key, p.value)
            cfg["Env"] = env
            commit("ENV " + " ".join(f"{p.key}={p.value}" for p in c.pairs))
        elif isinstance(c, ins.Label):
            labels = cfg.setdefault("Labels", {})
            for p in c.pairs:
                labels[p.key] = p.value
            commit("LABEL " + " ".join(f"{p.key}={p.value}" for p in c.pairs))
        elif isinstance(c, ins.Maintainer):
            res.config["author"] = c.maintainer
            commit(f"MAINTAINER {c.maintainer}")
        elif isinstance(c, ins.Arg):
            values = dict(after.build_args)
            env_after = after.env_dict()
            parts = []
            for a in c.pairs:
                v = env_after.get(a.key, values.get(a.key))
                parts.append(a.key if v is None else f"{a.key}={v}")
            commit("ARG " + " ".join(parts))
        elif isinstance(c, ins.Workdir):
            current = cfg.get("WorkingDir") or "/"
            # the config holds the cleaned path, history and mkdir the one as written
            written = workdir_as_written(current, c.path)
            cfg["WorkingDir"] = normalize_workdir(current, c.path)
            vertex = None
            if written != "/":
                vertex = Vertex(
                    MkdirOp(written, 0o755, cfg.get("User") or "", res.platform, epoch),
                    (res.vertex,),
                    name=f"{label} WORKDIR {written}",
                    location=c.location,
                )
                res.vertex = vertex
            commit(f"WORKDIR {written}", vertex)
        elif isinstance(c, ins.User):
            cfg["User"] = c.user
            commit(f"USER {c.user}")
        elif isinstance(c, ins.Expose):
            ports = cfg.setdefault("ExposedPorts", {})
            specs = []
            for port in c.ports:
                for spec in expand_port_spec(port):
                    ports[spec] = {}
                    specs.append(spec)
            commit(f"EXPOSE {_go_list(specs)}")
        elif isinstance(c, ins.Volume):
            vols = cfg.setdefault("Volumes", {})
            for v in c.volumes:
                if not v:
                    raise DockerfileError("VOLUME specified can not be an empty string",
                                          filename=plan.filename, line=c.line)
                vols[v] = {}
            commit(f"VOLUME {_go_list(c.volumes)}")
        elif isinstance(c, ins.StopSignal):
            cfg["StopSignal"] = c.signal
            commit(f"STOPSIGNAL {c.signal}")
        elif isinstance(c, ins.Shell):
            cfg["Shell"] = list(c.shell)
            commit(f"SHELL {_go_list(c.shell)}")
        elif isinstance(c, ins.Onbuild):
            cfg.setdefault("OnBuild", []).append(c.expression)
        elif isinstance(c, ins.Cmd):
            args = self._with_shell(cfg, c.cmd_line) if c.prepend_shell else list(c.cmd_line)
            _set_list(cfg, "Cmd", args)
            cfg["ArgsEscaped"] = True
            res.cmd_set = True
            commit(f"CMD {_go_quote_list(args)}")
        elif isinstance(c, ins.Entrypoint):
            args = self._with_shell(cfg, c.cmd_line) if c.prepend_shell else list(c.cmd_line)
            _set_list(cfg, "Entrypoint", args)
            if not res.cmd_set:
                cfg.pop("Cmd", None)
            commit(f"ENTRYPOINT {_go_quote_list(args)}")
        elif isinstance(c, ins.Healthcheck):
            hc: dict[str, Any] = {"Test": list(c.test)}
            for key, val in (("Interval", c.interval), ("Timeout", c.timeout),
                             ("StartPeriod", c.start_period), ("StartInterval", c.start_interval),
                             ("Retries", c.retries)):
                if val:
                    hc[key] = val
            cfg["Healthcheck"] = hc
            # BuildKit v0.32 writes fmt %+v of the HealthcheckConfig value: field names, the
            # list unquoted, durations through their String(), Retries as a number.
            commit(f"HEALTHCHECK {{Test:{_go_list(c.test)} Interval:{_go_duration(c.interval)} "
                   f"Timeout:{_go_duration(c.timeout)} StartPeriod:{_go_duration(c.start_period)} "
                   f"StartInterval:{_go_duration(c.start_interval)} Retries:{c.retries}}}")
        elif isinstance(c, ins.Run):
            self._run(plan, res, ec, done, label, commit)
        elif isinstance(c, ins.Copy | ins.Add):
            self._copy(plan, res, ec, done, label, commit)
        elif isinstance(c, ins.From):  # pragma: no cover - stages never contain FROM
            pass

    @staticmethod
    def _with_shell(cfg: Mapping[str, Any], args: Sequence[str]) -> list[str]:
        shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
        return [*shell, " ".join(args)]

    def _run(self, plan: BuildPlan, res: StageResult, ec: ExpandedCommand,
             done: dict[int, StageResult], label: str, commit: CommitFn) -> None:
        c = ec.command
        assert isinstance(c, ins.Run)
        cfg = res.config.get("config", {})
        args = list(c.cmd_line)
        inline: list[tuple[str, str]] = []
        summary = ""
        if c.heredocs:
            if len(args) != 1 or not c.prepend_shell:
                raise DockerfileError(f"parsing produced an invalid run command: {args}",
                                      filename=plan.filename, line=c.line)
            marker = ins.parse_heredoc_marker(args[0])
            if marker is not None:
                doc = c.heredocs[0]
                data = ins.chomp_heredoc(doc.data) if doc.chomp else doc.data
                if data.startswith("#!"):
                    # BuildKit still prepends the shell: `/bin/sh -c /dev/pipes/EOF` runs the
                    # file by its shebang, and that is what its history records
                    inline.append((doc.name, data))
                    args = [posixpath.join(self.opts.pipes_dir, doc.name)]
                else:
                    args = [data]
                prepend = True
                lines = doc.data.strip().replace("\r\n", "\n").split("\n")
                summary = f" ({lines[0]}{'...' if len(lines) > 1 else ''})"
            else:
                parts = [args[0]]
                for f in c.heredocs:
                    parts.append("\n" + f.data + f.name)
                args = ["".join(parts)]
                prepend = True
        else:
            prepend = c.prepend_shell
        if prepend:
            args = self._with_shell(cfg, args)
        env = tuple(f"{k}={v}" for k, v in ec.state.env)
        mounts: list[MountSpec] = []
        inputs: list[Vertex] = [res.vertex]
        for i, m in enumerate(c.mounts):
            m = ins.resolve_mount(m, workdir=cfg.get("WorkingDir") or "/", index=i)
            idx: int | None = None
            if m.type in ("bind", "cache") and (m.type == "bind" or m.from_):
                src_vertex, _ = self._source_vertex(plan, m.from_, done, c.line, res.platform)
                inputs.append(src_vertex)
                idx = len(inputs) - 1
            mounts.append(MountSpec(
                type=m.type, target=m.target, input=idx, source=m.source or "/",
                readonly=m.readonly, cache_id=m.id if m.type == "cache" else "",
                sharing=m.sharing or "shared", mode=m.mode, uid=m.uid, gid=m.gid,
                secret_id=m.id if m.type in ("secret", "ssh") else "", required=m.required,
                env=m.env or "", size=m.size_limit,
            ))
        network = c.network if c.network != "default" else self.opts.network
        proxy = tuple(f"{k}={v}" for k, v in sorted(plan.proxy_env.items()))
        op = ExecOp(
            args=tuple(args), env=env, cwd=cfg.get("WorkingDir") or "/", user=cfg.get("User") or "",
            platform=res.platform, network=network, security=c.security, mounts=tuple(mounts),
            inline_files=tuple(inline), proxy_env=proxy,
        )
        shown = c.original.split(None, 1)[1] if " " in c.original.strip() else c.original
        vertex = Vertex(op, tuple(inputs), name=f"{label} RUN {shown.strip()}{summary}", location=c.location)
        res.vertex = vertex
        # runCommandString: the ARGs in scope prefix the command ("|2 A=1 B=2 /bin/sh -c ...")
        build_args = ec.build_args
        prefix = [f"|{len(build_args)}", *(f"{k}={v}" for k, v in build_args)] if build_args else []
        commit("RUN " + " ".join([*prefix, *args]), vertex, buildkit_suffix=True)

    def _copy(self, plan: BuildPlan, res: StageResult, ec: ExpandedCommand,
              done: dict[int, StageResult], label: str, commit: CommitFn) -> None:
        c = ec.command
        assert isinstance(c, ins.Copy | ins.Add)
        cfg = res.config.get("config", {})
        is_add = isinstance(c, ins.Add)
        from_ref = c.from_ if isinstance(c, ins.Copy) else ""
        src_vertex, _ = self._source_vertex(plan, from_ref, done, c.line, res.platform)
        workdir = cfg.get("WorkingDir") or "/"
        dest = dest_path(workdir, c.dest)
        if len(c.sources) + len(c.heredocs) > 1 and not dest.endswith("/"):
            raise DockerfileError(
                "When using COPY with more than one source file, the destination must be a directory and end with a /",
                filename=plan.filename, line=c.line,
            )
        inline = tuple((h.path, h.data) for h in c.heredocs)
        op = CopyOp(
            sources=tuple(c.sources), dest=dest, cwd=workdir, chown=c.chown, chmod=c.chmod,
            link=c.link, parents=getattr(c, "parents", False), excludes=tuple(c.excludes),
            is_add=is_add, unpack=getattr(c, "unpack", None), checksum=getattr(c, "checksum", ""),
            keep_git_dir=getattr(c, "keep_git_dir", False), inline_files=inline,
            user=cfg.get("User") or "", platform=res.platform,
            source_date_epoch=self.opts.source_date_epoch,
        )
        # The worker tells context sources (owned by root) from stage/image ones (owners kept)
        # by the kind of inputs[1].
        inputs = (res.vertex,) if inline else (res.vertex, src_vertex)
        vertex = Vertex(op, inputs, name=f"{label} {c.original.strip()}", location=c.location)
        res.vertex = vertex
        commit(copy_history(c), vertex, buildkit_suffix=True)
