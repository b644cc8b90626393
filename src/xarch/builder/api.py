"""``build()``: Dockerfile + context → multi-platform image, daemonless.

Frontend (parse, stages, graph per platform) → solver (cache, dedupe, parallel) → exporter
(config, manifests, index into the local store) → outputs (store names, registry push, OCI
layout/archive, docker archive, local/tar filesystem). One platform's failure fails the
build with a per-platform report, and nothing is pushed or tagged.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xarch.archive.apply import apply_layer
from xarch.builder.attestations import (
    AttestOptions,
    BuildFacts,
    attest_in_store,
    publish_referrers,
    sign_published,
)
from xarch.builder.bases import BaseResolver
from xarch.builder.worker import BuildWorker, WorkerOptions
from xarch.errors import InputError, NotFoundError, UsageError, XarchError
from xarch.executor.emulation import EmulationStatus
from xarch.executor.runtime import RuntimeInfo, RuntimeProber
from xarch.exporter.image import ExportResult, PlatformImage, export
from xarch.frontend.dockerfile.dockerignore import PatternMatcher, load_dockerignore
from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.stages import parse_stages
from xarch.frontend.dockerfile.to_graph import (
    Converter,
    ConvertOptions,
    StageResult,
)
from xarch.graph.ops import ExecOp, Vertex
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform, host_platform
from xarch.solver.cache import CacheIndex
from xarch.solver.solver import SolveEvent, Solver, StepError
from xarch.transports.copy import CopyEvent, copy_image
from xarch.transports.resolve import open_sink, parse_location
from xarch.transports.store import LocalStore, StoreSource, normalize_name


@dataclass(frozen=True)
class Secret:
    id: str
    src: str | None = None  # file path
    env: str | None = None  # environment variable

    def read(self) -> bytes:
        if self.src is not None:
            try:
                return Path(self.src).expanduser().read_bytes()
            except FileNotFoundError:
                raise NotFoundError(
                    f"secret {self.id}: file {self.src} does not exist",
                    hint="fix --secret id=...,src=PATH",
                ) from None
            except OSError as e:
                raise InputError(f"secret {self.id}: cannot read {self.src}: {e.strerror}") from None
        name = self.env or self.id
        if name not in os.environ:
            raise NotFoundError(f"secret {self.id}: environment variable {name} is not set",
                                hint="export it or use src=FILE")
        return os.environ[name].encode()


@dataclass(frozen=True)
class Output:
    """One ``--output``: type=store|registry|oci|docker|local|tar with its attributes."""

    type: str
    dest: str | None = None
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None  # default: <context>/Dockerfile
    platforms: tuple[Platform, ...] = ()
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    secrets: tuple[Secret, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    network: str = "default"
    jobs: int = 4
    outputs: tuple[Output, ...] = ()
    push: bool = False
    source_date_epoch: int | None = None
    compression: str = "gzip"
    oci_media_types: bool = True
    registry_options: Any = None
    attest: AttestOptions = field(default_factory=AttestOptions)
    pull: bool = False  # --pull: resolve and fetch every registry base again


@dataclass(frozen=True)
class BuildEvent:
    """Progress: ``kind`` start|cached|done|error|log|info|warning, ``id`` a stable step number.
    A ``warning`` is something the user must see even with quiet progress."""

    kind: str
    id: int
    name: str
    detail: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class BuildResult:
    root: Descriptor
    manifests: tuple[Descriptor, ...]
    export: ExportResult
    executed: int
    cached: int
    runs: int
    names: tuple[str, ...]
    runtime: str | None
    duration: float
    vertex_runs: Mapping[str, int]  # vertex name -> times executed (0 = cached)


class BuildFailed(XarchError):
    """One or more platforms failed; the message lists each platform's error on its own."""


def _epoch(opts: BuildOptions) -> int | None:
    if opts.source_date_epoch is not None:
        return opts.source_date_epoch
    v = opts.build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if v:
        if not v.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH must be a number of seconds, got {v!r}")
        return int(v)
    return None


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _history_times(history: list[dict[str, Any]], epoch: int | None) -> str | None:
    """Fill in history times as BuildKit's exporter does, in place; returns the config's
    ``created``. A new layer's entry carries the time its step's result was made (the cache
    record's), so a rebuild served from the cache is byte-identical. An entry without a time
    takes the first new layer's time, or, once a timed entry was passed, that entry's. With
    SOURCE_DATE_EPOCH no entry is later than it. The image's ``created`` is the last entry's."""
    first_new: str | None = None
    missing = False
    for h in history:
        if h.get("created"):
            first_new = h["created"]
            if missing:
                break
        else:
            missing = True
    current = first_new
    missing = False
    for h in history:
        if h.get("created"):
            if missing:
                current = h["created"]
        else:
            missing = True
            if current is not None:
                h["created"] = current
    if epoch is not None:
        ep = datetime.fromtimestamp(epoch, UTC)
        ep_s = ep.strftime("%Y-%m-%dT%H:%M:%SZ")
        for h in history:
            t = _parse_rfc3339(h.get("created"))
            if t is None or t > ep:
                h["created"] = ep_s
        return ep_s
    times = [h["created"] for h in history if h.get("created")]
    return times[-1] if times else None


def _parse_rfc3339(s: Any) -> datetime | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        # Go writes up to nanoseconds; Python reads up to microseconds
        head, dot, frac = s.partition(".")
        if dot:
            digits = "".join(c for c in frac if c.isdigit())
            s = f"{head}.{digits[:6]}{frac[len(digits):]}"
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _normalize_history(history: list[dict[str, Any]], n_layers: int) -> list[dict[str, Any]]:
    """Make the number of non-empty history entries equal the layer count (as BuildKit's
    normalizeLayersAndHistory): missing entries are prepended, extra ones marked empty."""
    with_layer = sum(1 for h in history if not h.get("empty_layer"))
    if with_layer < n_layers:
        history = [{"created_by": "", "comment": "loaded layer"}] * (n_layers - with_layer) + history
    elif with_layer > n_layers:
        extra = with_layer - n_layers
        out = []
        for h in reversed(history):
            if extra and not h.get("empty_layer"):
                h = {**h, "empty_layer": True}
                extra -= 1
            out.append(h)
        history = list(reversed(out))
    return history


def _progress_ids() -> Callable[[Vertex], int]:
    ids: dict[str, int] = {}
    lock = threading.Lock()

    def get(v: Vertex) -> int:
        with lock:
            if v.digest not in ids:
                ids[v.digest] = len(ids) + 1
            return ids[v.digest]

    return get


def build(
    opts: BuildOptions,
    *,
    store: LocalStore,
    on_event: Callable[[BuildEvent], None] | None = None,
    runtime_prober: RuntimeProber | None = None,
) -> BuildResult:
    """Build ``opts`` into ``store`` (and its outputs). The build holds the store's writer
    lease from its first pulled blob to its last name, so a concurrent prune never collects
    what it is about to tag."""
    store.content.init()
    with store.content.writer_session():
        return _build(opts, store=store, on_event=on_event, runtime_prober=runtime_prober)


def _build(
    opts: BuildOptions,
    *,
    store: LocalStore,
    on_event: Callable[[BuildEvent], None] | None,
    runtime_prober: RuntimeProber | None,
) -> BuildResult:
    t0 = time.monotonic()
    started = datetime.now(UTC)
    emit = on_event or (lambda e: None)
    info = lambda msg: emit(BuildEvent("info", 0, msg))  # noqa: E731
    context = opts.context.resolve()
    if not context.is_dir():
        raise UsageError(f"build context {opts.context} is not a directory")
    dockerfile = opts.dockerfile or context / "Dockerfile"
    try:
        data = dockerfile.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no Dockerfile at {dockerfile}", hint="pass -f PATH") from None
    if opts.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if opts.compression not in ("gzip", "zstd", "uncompressed"):
        raise UsageError(f"unknown compression {opts.compression!r}", hint="gzip, zstd or uncompressed")
    if opts.compression == "zstd" and not opts.oci_media_types:
        raise UsageError("zstd compression needs OCI media types", hint="drop oci-mediatypes=false")
    host = host_platform()
    platforms = tuple(dict.fromkeys(opts.platforms)) or (host,)
    epoch = _epoch(opts)
    secrets = {s.id: s.read() for s in opts.secrets}  # a missing secret fails before any work
    for name in opts.tags:
        normalize_name(name)  # bad tags fail before any work

    # -- frontend: parse and convert every platform before anything runs
    pr = parse(data, filename=dockerfile.name)
    plan = parse_stages(pr, build_args=dict(opts.build_args), target_platform=platforms[0],
                        build_platform=host, target=opts.target, filename=dockerfile.name)
    _check_emulation(plan, platforms, host)
    resolver = BaseResolver(store, registry_options=opts.registry_options, pull=opts.pull,
                            info=info, warn=lambda msg: emit(BuildEvent("warning", 0, msg)))
    conv = Converter(plan, resolver, ConvertOptions(source_date_epoch=epoch, labels=dict(opts.labels),
                                                    network=opts.network))
    stages: dict[Platform, StageResult] = {p: conv.convert(p) for p in platforms}

    # -- every platform that must execute RUN steps has to be runnable, checked up front
    run_platforms = {v.op.platform for r in stages.values() for v in r.vertex.walk() if isinstance(v.op, ExecOp)}
    for p in sorted(run_platforms, key=str):
        status = EmulationStatus.probe(p)
        if not status.runnable:
            raise UsageError(
                f"cannot run RUN steps for {p} on this {host} machine: {status.reason}",
                hint="install qemu-user-static and run `xarch setup emulation`",
            )

    # -- solve
    home = store.root.parent / "builder"
    ignore_patterns = load_dockerignore(context, dockerfile.name if opts.dockerfile else None)
    ignore = PatternMatcher(ignore_patterns) if ignore_patterns else None
    prober = runtime_prober or RuntimeProber()
    runtime_used: list[RuntimeInfo] = []
    rt_lock = threading.Lock()

    def runtime() -> RuntimeInfo:
        with rt_lock:
            if not runtime_used:
                runtime_used.append(prober.detect())
                info(f"runtime: {runtime_used[0].name} {runtime_used[0].version}")
            return runtime_used[0]

    worker = BuildWorker(store.content, home, runtime, WorkerOptions(
        context_dir=context, ignore=ignore, compression=opts.compression,
        oci_media_types=opts.oci_media_types, source_date_epoch=epoch, secrets=secrets,
    ))
    pid = _progress_ids()
    runs: dict[str, int] = {}
    runs_lock = threading.Lock()

    def on_solve(e: SolveEvent) -> None:
        name = e.vertex.name or e.vertex.op.kind
        if e.kind in ("done", "cached") and e.vertex.op.kind not in ("image", "context", "scratch"):
            with runs_lock:
                runs[name] = runs.get(name, 0) + (1 if e.kind == "done" else 0)
        emit(BuildEvent(e.kind, pid(e.vertex), name, e.detail, e.duration))

    cache = CacheIndex(home / "cache.db")
    solver = Solver(worker, cache, no_cache=opts.no_cache, jobs=opts.jobs, on_event=on_solve)
    failures: dict[Platform, XarchError] = {}
    try:
        pool = ThreadPoolExecutor(max_workers=len(platforms))
        try:
            futs = {p: pool.submit(solver.solve, r.vertex) for p, r in stages.items()}
            results = {}
            for p, f in futs.items():
                try:
                    results[p] = f.result()
                except XarchError as e:
                    failures[p] = e
        except BaseException as e:
            # Ctrl-C, a signal (the CLI's Interrupted), anything: start no new step, kill the
            # running ones and give them a moment to unmount and clean up after themselves
            # (a `with` pool would wait for every step to finish on its own)
            solver.cancel()
            worker.cancel(e)
            pool.shutdown(wait=False, cancel_futures=True)
            worker.wait_idle()
            raise
        pool.shutdown()
    finally:
        worker.close()
    if failures:
        raise BuildFailed("; ".join(_describe_failure(p, e, dockerfile.name) for p, e in failures.items()))

    # -- export: images into the store content, then names and outputs
    images: list[PlatformImage] = []
    for p in platforms:
        st, res = stages[p], results[p]
        history = []
        for h in st.history:
            entry = dict(h.entry)
            if h.vertex is not None:
                produced = solver.result(h.vertex)
                if produced is None or produced.empty:
                    entry["empty_layer"] = True
                else:
                    entry.pop("empty_layer", None)
                if "created" not in entry and produced is not None and produced.created is not None:
                    entry["created"] = _rfc3339(produced.created)
            history.append(entry)
        created_s = _history_times(history, epoch)
        cfg = dict(st.config)
        if created_s is not None:
            cfg["created"] = created_s
        else:
            cfg.pop("created", None)
        cfg["history"] = _normalize_history(history, len(res.layers))
        images.append(PlatformImage(
            platform=st.platform if str(st.platform) == str(p) else p,
            layers=tuple(layer.descriptor for layer in res.layers),
            diff_ids=tuple(layer.diff_id for layer in res.layers),
            config=cfg,
            annotations=dict(opts.annotations),
        ))
    exported = export(store.content, images, oci_media_types=opts.oci_media_types,
                      index_annotations=dict(opts.annotations) or None,
                      force_index=opts.attest.style == "buildx" and bool(opts.attest.sbom or opts.attest.provenance))
    attest_name = opts.tags[0] if opts.tags else "xarch-build/result:latest"
    facts = BuildFacts(
        dockerfile_digest=Digest.from_bytes(data),
        dockerfile_path=str(dockerfile.relative_to(context)) if dockerfile.is_relative_to(context) else dockerfile.name,
        base_images=sorted({(r.ref, Digest(r.manifest_digest)) for r in conv.resolved_images()}),
        build_args=dict(opts.build_args), started=started, finished=datetime.now(UTC),
        target=opts.target,
        steps=[{"name": n, "cached": c == 0} for n, c in sorted(runs.items())],
    )
    exported = attest_in_store(store, exported, opts.attest, facts, name=attest_name, info=info)
    names = _outputs(opts, store, exported, platforms, info, attest_name)
    stats = solver.stats
    return BuildResult(
        root=exported.root, manifests=exported.manifests, export=exported,
        executed=stats.executed, cached=stats.cached, runs=stats.exec_runs, names=tuple(names),
        runtime=runtime_used[0].name if runtime_used else None, duration=time.monotonic() - t0,
        vertex_runs=dict(runs),
    )


def _check_emulation(plan: Any, platforms: Sequence[Platform], host: Platform) -> None:
    """Fail before any work when a target platform must run RUN steps and cannot."""
    from xarch.frontend.dockerfile.instructions import Run

    for p in platforms:
        target_plan = plan.for_platform(p)
        needs = any(
            isinstance(c, Run) and not st.uses_build_platform
            and target_plan.effective_platform(st) == p
            for st in target_plan.needed_stages for c in st.commands
        )
        if not needs:
            continue
        status = EmulationStatus.probe(p)
        if not status.runnable:
            raise UsageError(
                f"cannot run RUN steps for {p} on this {host} machine: {status.reason}",
                hint="install qemu-user-static and run `xarch setup emulation`",
            )


def _describe_failure(p: Platform, e: XarchError, dockerfile: str) -> str:
    if isinstance(e, StepError):
        v = e.vertex
        where = f"{dockerfile}:{v.location[0]}" if v.location else dockerfile
        step = v.name.split("] ", 1)[-1] if "] " in v.name else v.name
        return f"{p}: {where}: {step}: {e.cause}"
    if isinstance(e, DockerfileError):
        return f"{p}: {e}"
    return f"{p}: {e}"


def _outputs(opts: BuildOptions, store: LocalStore, exported: ExportResult,
             platforms: Sequence[Platform], info: Callable[[str], None], attest_name: str) -> list[str]:
    outputs = list(opts.outputs)
    if opts.push:
        outputs.append(Output("registry"))
    if not outputs:
        outputs.append(Output("store"))
    names: list[str] = []
    root = exported.root
    for out in outputs:
        t = out.type
        if t in ("store", "image") and not _truthy(out.attrs.get("push")):
            for tag in _names(opts, out):
                store.set_name(tag, root)
                names.append(normalize_name(tag))
                info(f"naming to {normalize_name(tag)} done")
                if opts.attest.sign_key is not None:
                    sign_published(tag, opts.attest.sign_key, store=store,
                                   registry_options=opts.registry_options, info=info)
        elif t in ("registry",) or (t == "image" and _truthy(out.attrs.get("push"))):
            tags = _names(opts, out)
            if not tags:
                raise UsageError("--push needs at least one -t registry/name:tag")
            for tag in tags:
                loc = f"docker://{tag}" if not tag.startswith("docker://") else tag
                _copy_out(store, root, loc, opts, info)
                if opts.attest.sbom or opts.attest.provenance:
                    publish_referrers(store, attest_name, exported, loc, opts.registry_options, info)
                if opts.attest.sign_key is not None:
                    sign_published(loc, opts.attest.sign_key, store=store,
                                   registry_options=opts.registry_options, info=info)
                names.append(tag)
        elif t == "oci":
            if not out.dest:
                raise UsageError("--output type=oci needs dest=PATH")
            tag = out.attrs.get("name") or (opts.tags[0].rsplit(":", 1)[-1] if opts.tags else "latest")
            tar = out.attrs.get("tar", "true").lower() != "false"
            loc = f"oci-archive:{out.dest}:{tag}" if tar else f"oci:{out.dest}:{tag}"
            _copy_out(store, root, loc, opts, info)
            names.append(loc)
        elif t == "docker":
            if not out.dest:
                raise UsageError("--output type=docker needs dest=FILE (there is no daemon to load into)")
            if len(platforms) > 1:
                raise UsageError("docker exporter does not currently support exporting manifest lists",
                                 hint="build one platform, or use type=oci")
            ref = out.attrs.get("name") or (opts.tags[0] if opts.tags else "")
            loc = f"docker-archive:{out.dest}" + (f":{normalize_name(ref)}" if ref else "")
            _copy_out(store, root, loc, opts, info)
            names.append(loc)
        elif t in ("local", "tar"):
            if not out.dest:
                raise UsageError(f"--output type={t} needs dest=PATH")
            _export_fs(store, exported, platforms, Path(out.dest), tar=(t == "tar"))
            names.append(f"{t}:{out.dest}")
        else:
            raise UsageError(f"unknown output type {t!r}", hint="store, registry, oci, docker, local or tar")
    return names


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


def _names(opts: BuildOptions, out: Output) -> list[str]:
    if out.attrs.get("name"):
        return [n for n in out.attrs["name"].split(",") if n]
    return list(opts.tags)


def _copy_out(store: LocalStore, root: Descriptor, location: str, opts: BuildOptions,
              info: Callable[[str], None]) -> None:
    src = StoreSource(store, f"xarch-build/result@{root.digest}")
    loc = parse_location(location, registry_options=opts.registry_options)
    sink = open_sink(loc)
    try:
        def ev(e: CopyEvent) -> None:
            if e.kind in ("mount", "copy"):
                info(f"{e.kind} {e.digest} ({e.size} bytes) to {location}")

        copy_image(src, sink, on_event=ev)
        info(f"exported {root.digest} to {location}")
    finally:
        sink.close()
        src.close()


def _export_fs(store: LocalStore, exported: ExportResult, platforms: Sequence[Platform], dest: Path,
               *, tar: bool) -> None:
    """type=local / type=tar: the final filesystem (per platform subdir when several)."""
    work = Path(tempfile.mkdtemp(prefix="xarch-export-"))
    try:
        for mdesc in exported.manifests:
            man = Manifest.parse(store.content.read_bytes(mdesc.digest))
            p = mdesc.platform
            sub = work if len(platforms) == 1 else work / str(p).replace("/", "_")
            sub.mkdir(parents=True, exist_ok=True)
            for layer in man.layers:
                with store.content.open(layer.digest) as f:
                    apply_layer(f, sub, mode="flatten")  # type: ignore[arg-type]
        if tar:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
                for child in sorted(work.iterdir()):
                    tf.add(child, arcname=child.name)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            for child in work.iterdir():
                target = dest / child.name
                if target.exists() and not target.is_symlink() and target.is_dir():
                    shutil.rmtree(target)
                shutil.move(str(child), str(target))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_metadata(path: Path, result: BuildResult) -> None:
    """``--metadata-file``: what buildx writes, for the CI steps that follow."""
    doc: dict[str, Any] = {
        "containerimage.digest": str(result.root.digest),
        "containerimage.descriptor": result.root.to_json(),
        "image.name": ",".join(result.names),
        "xarch.platforms": {str(m.platform): m.to_json() for m in result.manifests},
    }
    if result.root.media_type in mt.MANIFEST_TYPES:
        doc["containerimage.config.digest"] = str(result.export.configs[0].digest)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
