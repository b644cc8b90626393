"""Build one corpus case with xarch and with the reference BuildKit (v0.32); hand back
comparable views.

A case is a directory ``corpus/<name>/`` with a ``Dockerfile``, its context files and a
``case.toml``:

    platforms = ["linux/amd64", "linux/arm64"]   # default
    build_args = { K = "v" }
    target = "stage"
    parent = "other-case"           # built first by both builders; @PARENT@ names it
    secrets = { id = "value" }      # --secret id=...,src=<file holding value>
    modes = { "file" = "0600" }     # chmod in the copied context (git keeps only 644/755)
    hardlinks = { "b" = "a" }       # b becomes a hardlink of a in the copied context
    xattrs = { "f" = { "user.k" = "v" } }  # extended attributes set in the copied context
                                    # ("hex:..." for binary values)
    labels = { k = "v" }            # --label for both builders
    ignore_paths = []               # more paths left out of the filesystem comparison
    xfail = "reason"                # known xarch bug (strict: flips when fixed)
    deviations = ["line", ...]      # differences xarch keeps on purpose, word for word
    known_differences = ["line"]    # xarch bugs not fixed yet, word for word (both listed in
                                    # docs/compat.md; a line that stops occurring fails)
    [expect]                        # hand-written expectations, checked against both
                                    # builders (see differential.check_expectations)

Dockerfile templates: ``@BASE@`` is the busybox base in the local registry, ``@PARENT@`` the
parent case's image as each builder named it, ``@HTTP@`` the base URL of a static HTTP server
serving ``corpus/_http/``, ``@GIT@`` the base URL (git://) of a ``git daemon`` serving
``repo.git``: ``corpus/_git/repo/`` committed and tagged ``v1``, ``main`` one commit later. ``case.toml`` and ``Dockerfile*`` are not part of the context.

BuildKit builds every platform of a case in one ``buildctl build`` into an OCI layout; a case
that is another's parent is also pushed to the local registry, where the child's ``FROM``
finds it (buildkitd has no image store of its own).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from conformance.differential import ImageView, view_from_layers
from xarch.archive.compress import decompress_stream
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.transports.store import LocalStore

CORPUS = Path(__file__).resolve().parent / "corpus"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class Case:
    name: str
    dir: Path
    spec: Mapping[str, Any]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.spec.get("platforms", DEFAULT_PLATFORMS))


def load_cases() -> list[Case]:
    cases = []
    for d in sorted(CORPUS.iterdir()):
        if not d.is_dir() or d.name.startswith("_"):
            continue
        spec = tomllib.loads((d / "case.toml").read_text()) if (d / "case.toml").exists() else {}
        cases.append(Case(d.name, d, spec))
    return cases


@dataclass
class Built:
    xarch: dict[str, ImageView] = field(default_factory=dict)
    buildkit: dict[str, ImageView] = field(default_factory=dict)
    xarch_error: str | None = None
    buildkit_error: str | None = None


class BuildKitCli:
    def __init__(self, exe: str, addr: str) -> None:
        self.exe = exe
        self.addr = addr

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.exe, "--addr", self.addr, *args], capture_output=True,
                              text=True, timeout=timeout)


class Harness:
    """Session-wide: one store, one registry, one buildkitd; every case built once."""

    def __init__(self, store: LocalStore, registry: str, buildkit: BuildKitCli, work: Path,
                 http_url: str, registry_options: Any, epoch: int | None = None,
                 git_url: str = "") -> None:
        # epoch: both builders clamp every time to it (the diffID report, diffids.py)
        self.epoch = epoch
        self.store = store
        self.registry = registry
        self.buildkit = buildkit
        self.work = work
        self.http_url = http_url
        self.git_url = git_url
        self.registry_options = registry_options
        self.base = f"{registry}/base/busybox:bookworm"
        self.cases = {c.name: c for c in load_cases()}
        self.parents = {c.spec["parent"] for c in self.cases.values() if "parent" in c.spec}
        self._built: dict[str, Built] = {}
        self._lock = threading.RLock()

    # -- orchestration -------------------------------------------------------------------

    def built(self) -> dict[str, Built]:
        """Every case built so far."""
        with self._lock:
            return dict(self._built)

    def get(self, name: str) -> Built:
        with self._lock:
            if name not in self._built:
                case = self.cases[name]
                if "parent" in case.spec:
                    self.get(case.spec["parent"])
                self._built[name] = self._build(case)
            return self._built[name]

    def _build(self, case: Case) -> Built:
        out = Built()
        ctx = self._context(case)
        # BuildKit's build runs while xarch's does: the two share nothing but the context
        # (read-only) and the registry, and the tier's time is mostly waiting on steps
        ref: dict[str, Any] = {}

        def reference() -> None:
            try:
                ref["views"] = self._buildkit(case, ctx)
            except Exception as e:
                ref["error"] = f"{type(e).__name__}: {e}"

        t = threading.Thread(target=reference, name=f"buildkit-{case.name}")
        t.start()
        try:
            out.xarch = self._xarch(case, ctx)
        except Exception as e:
            out.xarch_error = f"{type(e).__name__}: {e}"
        finally:
            t.join()
        out.buildkit = ref.get("views", {})
        out.buildkit_error = ref.get("error")
        return out

    def _template(self, case: Case, builder: str) -> str:
        text = (case.dir / "Dockerfile").read_text()
        text = text.replace("@BASE@", self.base).replace("@HTTP@", self.http_url)
        text = text.replace("@GIT@", self.git_url)
        if "parent" in case.spec:
            text = text.replace("@PARENT@", self._image_name(case.spec["parent"], builder))
        return text

    def _image_name(self, name: str, builder: str) -> str:
        # xarch: a name in its local store; BuildKit: pushed to the local registry
        tag = f"conformance/{name}:latest"
        return tag if builder == "xarch" else f"{self.registry}/{tag}"

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
            # both builders call this while the other may be reading the file: write a temp
            # file and rename it, never truncate in place (xarch once read an empty secret)
            tmp = p.with_name(f".{sid}.{threading.get_ident()}.tmp")
            tmp.write_text(value)
            os.replace(tmp, p)
            files[sid] = p
        return files

    # -- xarch ---------------------------------------------------------------------------

    def _xarch(self, case: Case, ctx: Path) -> dict[str, ImageView]:
        from xarch.builder.api import BuildOptions, Secret, build

        df = self.work / "dockerfiles" / case.name / "xarch" / "Dockerfile"
        df.parent.mkdir(parents=True, exist_ok=True)
        df.write_text(self._template(case, "xarch"))
        res = build(BuildOptions(
            context=ctx, dockerfile=df,
            platforms=tuple(Platform.parse(p) for p in case.platforms),
            tags=(self._image_name(case.name, "xarch"),),
            build_args=dict(case.spec.get("build_args") or {}),
            target=case.spec.get("target"),
            labels=dict(case.spec.get("labels") or {}),
            secrets=tuple(Secret(id=k, src=str(v)) for k, v in self._secret_files(case).items()),
            registry_options=self.registry_options, source_date_epoch=self.epoch,
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

    # -- BuildKit ------------------------------------------------------------------------

    def _buildkit(self, case: Case, ctx: Path) -> dict[str, ImageView]:
        df = self.work / "dockerfiles" / case.name / "buildkit" / "Dockerfile"
        df.parent.mkdir(parents=True, exist_ok=True)
        df.write_text(self._template(case, "buildkit"))
        layout = self.work / "layouts" / case.name
        if layout.exists():
            shutil.rmtree(layout)
        args = ["build", "--progress", "plain", "--frontend", "dockerfile.v0",
                "--local", f"context={ctx}", "--local", f"dockerfile={df.parent}",
                "--opt", "filename=Dockerfile", "--opt", "platform=" + ",".join(case.platforms),
                # RUN --network=host (the daemon's config grants it; the default is host too)
                "--allow", "network.host",
                "--output", f"type=oci,dest={layout},tar=false"
                + (",rewrite-timestamp=true" if self.epoch is not None else "")]
        if self.epoch is not None:
            args += ["--opt", f"build-arg:SOURCE_DATE_EPOCH={self.epoch}"]
        if case.name in self.parents:
            args += ["--output",
                     f"type=image,name={self._image_name(case.name, 'buildkit')},push=true"]
        for k, v in (case.spec.get("build_args") or {}).items():
            args += ["--opt", f"build-arg:{k}={v}"]
        if case.spec.get("target"):
            args += ["--opt", f"target={case.spec['target']}"]
        for k, v in (case.spec.get("labels") or {}).items():
            args += ["--opt", f"label:{k}={v}"]
        for sid, path in self._secret_files(case).items():
            args += ["--secret", f"id={sid},src={path}"]
        r = self.buildkit.run(*args)
        if r.returncode != 0:
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"buildctl build failed:\n{tail}")
        views = layout_views(layout)
        shutil.rmtree(layout)
        return views


def layout_views(layout: Path) -> dict[str, ImageView]:
    """An OCI image layout (BuildKit's ``type=oci`` output) -> {platform: view}. Read with
    the standard library only, so nothing of xarch's stands between BuildKit and the diff."""
    def blob(digest: str) -> bytes:
        algo, _, hexd = digest.partition(":")
        return (layout / "blobs" / algo / hexd).read_bytes()

    top = json.loads((layout / "index.json").read_text())
    (root,) = top["manifests"]
    descs = (json.loads(blob(root["digest"]))["manifests"]
             if root["mediaType"] in INDEX_TYPES else [root])
    views = {}
    for d in descs:
        man = json.loads(blob(d["digest"]))
        cfg = json.loads(blob(man["config"]["digest"]))
        streams: list[BinaryIO] = []
        for layer in man["layers"]:
            data = blob(layer["digest"])
            if layer["mediaType"].endswith("+gzip") or layer["mediaType"].endswith(".gzip"):
                data = gzip.decompress(data)
            elif not layer["mediaType"].endswith(".tar"):
                raise ValueError(f"unexpected layer media type {layer['mediaType']}")
            streams.append(io.BytesIO(data))
        p = d.get("platform")
        key = _cfg_platform(p) if p else _cfg_platform(cfg)
        views[key] = view_from_layers(cfg, streams)
    return views


def _cfg_platform(cfg: Mapping[str, Any]) -> str:
    p = f"{cfg['os']}/{cfg['architecture']}"
    return p + (f"/{cfg['variant']}" if cfg.get("variant") else "")
