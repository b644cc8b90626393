"""Build one corpus case with xarch and with Docker BuildKit; hand back comparable views.

A case is a directory ``corpus/<name>/`` with a ``Dockerfile``, its context files and a
``case.toml``:

    platforms = ["linux/amd64", "linux/arm64"]   # default
    build_args = { K = "v" }
    target = "stage"
    docker_supported = true         # false: Docker 20.10 cannot build it (heredocs, --link...)
    docker_dockerfile = "Dockerfile.docker"  # optional: an equivalent Dockerfile Docker can build;
                                    # config and filesystem are compared, history only if
    compare_history = true          # ... this says so (default: true unless docker_dockerfile)
    parent = "other-case"           # built first by both builders; @PARENT@ names it
    secrets = { id = "value" }      # --secret id=...,src=<file holding value>
    modes = { "file" = "0600" }     # chmod in the copied context (git keeps only 644/755)
    hardlinks = { "b" = "a" }       # b becomes a hardlink of a in the copied context
    xattrs = { "f" = { "user.k" = "v" } }  # extended attributes set in the copied context
                                    # ("hex:..." for binary values)
    labels = { k = "v" }            # --label for both builders
    docker_deviations = ["..."]     # exact difference lines where Docker 20.10 is wrong
                                    # (each one explained in docs/compat.md)
    ignore_paths = []               # more paths left out of the filesystem comparison
    xfail = "reason"                # known xarch bug (strict: flips when fixed)
    [expect]                        # hand-written expectations, see differential.check_expectations

Dockerfile templates: ``@BASE@`` is the busybox base in the local registry, ``@PARENT@`` the
parent case's image as each builder named it, ``@HTTP@`` the base URL of a static HTTP server
serving ``corpus/_http/``. ``case.toml`` and ``Dockerfile*`` are not part of the context.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from conformance.differential import ImageView, read_docker_save, view_from_layers
from xarch.archive.compress import decompress_stream
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.transports.store import LocalStore

CORPUS = Path(__file__).resolve().parent / "corpus"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class Case:
    name: str
    dir: Path
    spec: Mapping[str, Any]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.spec.get("platforms", DEFAULT_PLATFORMS))

    @property
    def docker_supported(self) -> bool:
        return bool(self.spec.get("docker_supported", True))

    @property
    def docker_dockerfile(self) -> str:
        return str(self.spec.get("docker_dockerfile", "Dockerfile"))

    @property
    def mount_targets(self) -> tuple[str, ...]:
        """Where ``RUN --mount`` puts things (their empty stubs may be left in a layer)."""
        out = []
        for path in self.dir.glob("Dockerfile*"):
            for m in re.finditer(r"--mount=(\S+)", path.read_text()):
                opts: dict[str, str] = {}
                for kv in m.group(1).split(","):
                    k, _, v = kv.partition("=")
                    opts[k] = v
                target = opts.get("target") or opts.get("dst") or opts.get("destination")
                if not target and opts.get("type") == "secret":
                    target = "/run/secrets/" + opts.get("id", "")
                if target:
                    out.append(target)
        return tuple(out)

    @property
    def compare_history(self) -> bool:
        default = self.docker_supported and "docker_dockerfile" not in self.spec
        return bool(self.spec.get("compare_history", default))


def load_cases() -> list[Case]:
    cases = []
    for d in sorted(CORPUS.iterdir()):
        if not d.is_dir() or d.name.startswith("_"):
            continue
        spec = tomllib.loads((d / "case.toml").read_text()) if (d / "case.toml").exists() else {}
        cases.append(Case(d.name, d, spec))
    return cases


def slug(platform: str) -> str:
    return platform.replace("/", "-")


@dataclass
class Built:
    xarch: dict[str, ImageView] = field(default_factory=dict)
    docker: dict[str, ImageView] = field(default_factory=dict)
    xarch_error: str | None = None
    docker_error: str | None = None


class DockerCli:
    def __init__(self, exe: str, host: str) -> None:
        self.exe = exe
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="1")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)


class Harness:
    """Session-wide: one store, one registry, one dockerd; every case built once."""

    def __init__(self, store: LocalStore, registry: str, docker: DockerCli, work: Path,
                 http_url: str, registry_options: Any) -> None:
        self.store = store
        self.registry = registry
        self.docker = docker
        self.work = work
        self.http_url = http_url
        self.registry_options = registry_options
        self.base = f"{registry}/base/busybox:bookworm"
        self.cases = {c.name: c for c in load_cases()}
        self._built: dict[str, Built] = {}
        self._lock = threading.RLock()

    # -- orchestration -------------------------------------------------------------------

    def get(self, name: str) -> Built:
        with self._lock:
            if name not in self._built:
                case = self.cases[name]
                if "parent" in case.spec:
                    self.get(case.spec["parent"])
                self._built[name] = self._build(case)
            return self._built[name]

    def cleanup(self) -> None:
        """Remove the images this session tagged in the (possibly shared) dockerd."""
        r = self.docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", "conformance/*")
        tags = [t for t in r.stdout.split() if t.startswith("conformance/")]
        if tags:
            self.docker.run("rmi", "-f", *tags)

    def _build(self, case: Case) -> Built:
        out = Built()
        ctx = self._context(case)
        try:
            out.xarch = self._xarch(case, ctx)
        except Exception as e:
            out.xarch_error = f"{type(e).__name__}: {e}"
        if case.docker_supported or "docker_dockerfile" in case.spec:
            try:
                out.docker = self._docker(case, ctx)
            except Exception as e:
                out.docker_error = f"{type(e).__name__}: {e}"
        return out

    def _template(self, case: Case, dockerfile: str, builder: str, platform: str | None) -> str:
        text = (case.dir / dockerfile).read_text()
        text = text.replace("@BASE@", self.base).replace("@HTTP@", self.http_url)
        if "parent" in case.spec:
            parent = case.spec["parent"]
            ref = (f"conformance/{parent}:latest" if builder == "xarch"
                   else f"conformance/{parent}:{slug(platform or '')}")
            text = text.replace("@PARENT@", ref)
        return text

    def _context(self, case: Case) -> Path:
        ctx = self.work / "ctx" / case.name
        if ctx.exists():
            shutil.rmtree(ctx)
        shutil.copytree(case.dir, ctx, symlinks=True,
                        ignore=lambda d, names: [n for n in names
                                                 if Path(d) == case.dir and
                                                 (n == "case.toml" or n.startswith("Dockerfile"))])
        for rel, mode in (case.spec.get("modes") or {}).items():
            os.chmod(ctx / rel, int(str(mode), 8))
        for rel, target in (case.spec.get("hardlinks") or {}).items():
            (ctx / rel).unlink(missing_ok=True)
            os.link(ctx / target, ctx / rel)
        for rel, attrs in (case.spec.get("xattrs") or {}).items():
            for k, v in attrs.items():
                value = bytes.fromhex(v[4:]) if v.startswith("hex:") else v.encode()
                os.setxattr(ctx / rel, k, value, follow_symlinks=False)
        return ctx

    def _secret_files(self, case: Case) -> dict[str, Path]:
        files = {}
        for sid, value in (case.spec.get("secrets") or {}).items():
            p = self.work / "secrets" / case.name / sid
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(value)
            files[sid] = p
        return files

    # -- xarch ---------------------------------------------------------------------------

    def _xarch(self, case: Case, ctx: Path) -> dict[str, ImageView]:
        from xarch.builder.api import BuildOptions, Secret, build

        df = self.work / "dockerfiles" / case.name / "xarch" / "Dockerfile"
        df.parent.mkdir(parents=True, exist_ok=True)
        df.write_text(self._template(case, "Dockerfile", "xarch", None))
        tag = f"conformance/{case.name}:latest"
        res = build(BuildOptions(
            context=ctx, dockerfile=df,
            platforms=tuple(Platform.parse(p) for p in case.platforms),
            tags=(tag,),
            build_args=dict(case.spec.get("build_args") or {}),
            target=case.spec.get("target"),
            labels=dict(case.spec.get("labels") or {}),
            secrets=tuple(Secret(id=k, src=str(v)) for k, v in self._secret_files(case).items()),
            network="host",
            registry_options=self.registry_options,
        ), store=self.store)
        return self.store_views(res.root)

    def store_views(self, root: Any) -> dict[str, ImageView]:
        content = self.store.content
        doc = parse_any(content.read_bytes(root.digest), root.media_type)
        descs = list(doc.manifests) if isinstance(doc, Index) else [root]
        views = {}
        for d in descs:
            man = Manifest.parse(content.read_bytes(d.digest), d.media_type)
            cfg = json.loads(content.read_bytes(man.config.digest))
            streams: list[BinaryIO] = []
            for layer in man.layers:
                with content.open(layer.digest) as f:
                    streams.append(io.BytesIO(decompress_stream(f).read()))
            key = str(d.platform) if d.platform is not None else _cfg_platform(cfg)
            views[key] = view_from_layers(cfg, streams)
        return views

    # -- docker --------------------------------------------------------------------------

    def _docker(self, case: Case, ctx: Path) -> dict[str, ImageView]:
        tags = {}
        secrets = self._secret_files(case)
        for p in case.platforms:
            df = self.work / "dockerfiles" / case.name / "docker" / slug(p) / "Dockerfile"
            df.parent.mkdir(parents=True, exist_ok=True)
            df.write_text(self._template(case, case.docker_dockerfile, "docker", p))
            tag = f"conformance/{case.name}:{slug(p)}"
            args = ["build", "--network", "host", "--platform", p, "--progress", "plain",
                    "-f", str(df), "-t", tag]
            for k, v in (case.spec.get("build_args") or {}).items():
                args += ["--build-arg", f"{k}={v}"]
            if case.spec.get("target"):
                args += ["--target", case.spec["target"]]
            for k, v in (case.spec.get("labels") or {}).items():
                args += ["--label", f"{k}={v}"]
            for sid, path in secrets.items():
                args += ["--secret", f"id={sid},src={path}"]
            r = self.docker.run(*args, str(ctx))
            if r.returncode != 0:
                tail = "\n".join(r.stderr.strip().splitlines()[-15:])
                raise RuntimeError(f"docker build --platform {p} failed:\n{tail}")
            tags[p] = tag
        archive = self.work / "saves" / f"{case.name}.tar"
        archive.parent.mkdir(parents=True, exist_ok=True)
        r = self.docker.run("save", "-o", str(archive), *tags.values())
        if r.returncode != 0:
            raise RuntimeError(f"docker save failed: {r.stderr.strip()}")
        saved = read_docker_save(str(archive))
        archive.unlink()
        return {p: saved[_docker_tag(t)] for p, t in tags.items()}


def _docker_tag(tag: str) -> str:
    return tag if "/" in tag.split(":")[0] else f"library/{tag}"


def _cfg_platform(cfg: Mapping[str, Any]) -> str:
    p = f"{cfg['os']}/{cfg['architecture']}"
    return p + (f"/{cfg['variant']}" if cfg.get("variant") else "")
