"""Fixtures for real builds: one busybox-static base index per test session, shared.

``xarch bootstrap`` (mmdebstrap, variant extract) builds a busybox base for five platforms into
a session XARCH_HOME; every build test uses that store (tags are unique per test, so tests
can share it, and the extracted layers and the cache index are shared as a real store would).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers.system import umount_below
from xarch.archive.apply import apply_layer
from xarch.archive.compress import decompress_stream
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.transports.store import LocalStore

EPOCH = 1700000000
BASE = "xarch-test/busybox:bookworm"
RISCV_BASE = "xarch-test/busybox-riscv64:trixie"
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x")


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "real builds need root (overlayfs, runc)"
    for tool in ("mmdebstrap", "busybox"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("runc") is None and shutil.which("crun") is None:
        return "no OCI runtime (runc/crun)"
    return None


@dataclass
class BuildEnv:
    """A session store with the busybox base, plus helpers to build and inspect images."""

    store: LocalStore
    base: str = BASE
    riscv_base: str | None = None
    events: list[Any] = field(default_factory=list)

    def build(
        self,
        tmp: Path,
        dockerfile: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        platforms: tuple[str, ...] = ("linux/amd64",),
        tag: str | None = None,
        context: Path | None = None,
        on_event: Callable[[Any], None] | None = None,
        **opts: Any,
    ) -> Any:
        from xarch.builder.api import BuildOptions, build

        ctx = context or write_context(tmp / f"ctx-{uuid.uuid4().hex[:8]}", dockerfile, files or {})
        self.events = []

        def ev(e: Any) -> None:
            self.events.append(e)
            if on_event is not None:
                on_event(e)

        return build(
            BuildOptions(
                context=ctx,
                platforms=tuple(Platform.parse(p) for p in platforms),
                tags=(tag or f"xarch-test/out-{uuid.uuid4().hex[:10]}:latest",),
                **opts,
            ),
            store=self.store,
            on_event=ev,
        )

    # -- inspection ----------------------------------------------------------------------

    def manifests(self, root: Descriptor) -> dict[str, tuple[Manifest, dict[str, Any], bytes]]:
        """platform -> (manifest, config document, raw config bytes)."""
        content = self.store.content
        doc = parse_any(content.read_bytes(root.digest), root.media_type)
        descs: list[tuple[str | None, Descriptor]]
        if isinstance(doc, Index):
            descs = [(str(m.platform), m) for m in doc.manifests]
        else:
            descs = [(None, root)]
        out = {}
        for plat, d in descs:
            man = Manifest.parse(content.read_bytes(d.digest), d.media_type)
            raw = content.read_bytes(man.config.digest)
            cfg = json.loads(raw)
            key = plat or _cfg_platform(cfg)
            out[key] = (man, cfg, raw)
        return out

    def config(self, result: Any, platform: str = "linux/amd64") -> dict[str, Any]:
        return self.manifests(result.root)[platform][1]

    def rootfs(self, result: Any, dest: Path, platform: str = "linux/amd64") -> Path:
        """The image's final filesystem: every layer applied (whiteouts processed)."""
        man = self.manifests(result.root)[platform][0]
        dest.mkdir(parents=True, exist_ok=True)
        for layer in man.layers:
            with self.store.content.open(layer.digest) as f:
                apply_layer(f, dest, mode="flatten")
        return dest

    def layer_members(self, result: Any, platform: str = "linux/amd64",
                      index: int = -1) -> list[tarfile.TarInfo]:
        man = self.manifests(result.root)[platform][0]
        data = self.layer_tar(man.layers[index])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            return tf.getmembers()

    def layer_tar(self, desc: Descriptor) -> bytes:
        with self.store.content.open(desc.digest) as f:
            return decompress_stream(f).read()

    def layer_count(self, result: Any, platform: str = "linux/amd64") -> int:
        return len(self.manifests(result.root)[platform][0].layers)


def _cfg_platform(cfg: Mapping[str, Any]) -> str:
    p = f"{cfg['os']}/{cfg['architecture']}"
    return p + (f"/{cfg['variant']}" if cfg.get("variant") else "")


def write_context(ctx: Path, dockerfile: str, files: Mapping[str, str | bytes]) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for rel, data in files.items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return ctx


@pytest.fixture(scope="session")
def build_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    why = _usable()
    if why:
        pytest.skip(why)
    home = tmp_path_factory.mktemp("xarch-home")
    old = os.environ.get("XARCH_HOME")
    os.environ["XARCH_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("XARCH_HOME", None)
        else:
            os.environ["XARCH_HOME"] = old
        # overlay mounts of a crashed step would keep the tmp dir busy
        with contextlib.suppress(OSError):
            umount_below(home)


def make_build_env(home: Path, platforms: tuple[str, ...] = PLATFORMS, *, riscv: bool = True) -> BuildEnv:
    """Bootstrap the busybox base(s) into ``home``/store and return the BuildEnv (needs root)."""
    from xarch.builder.bootstrap import BootstrapOptions, bootstrap

    store = LocalStore(home / "store")
    store.content.init()
    res = bootstrap(store.content, BootstrapOptions(
        platforms=tuple(Platform.parse(p) for p in platforms), variant="extract",
        include=("busybox-static",), busybox_links=True, source_date_epoch=EPOCH,
    ))
    store.set_name(BASE, res.root)
    env = BuildEnv(store)
    if not riscv:
        return env
    # Debian bookworm has no riscv64 port; trixie (Debian 13) does: a separate base for it.
    try:
        rv = bootstrap(store.content, BootstrapOptions(
            platforms=(Platform.parse("linux/riscv64"),), suite="trixie", variant="extract",
            include=("busybox-static",), busybox_links=True, source_date_epoch=EPOCH,
        ))
    except Exception as e:  # riscv64 is optional: its tests skip
        env.riscv_base = None
        env.events.append(f"riscv64 base unavailable: {e}")
    else:
        store.set_name(RISCV_BASE, rv.root)
        env.riscv_base = RISCV_BASE
    return env


def usable() -> str | None:
    """Why real builds cannot run here (None when they can)."""
    return _usable()


@pytest.fixture(scope="session")
def benv(build_home: Path) -> BuildEnv:
    """The session store with ``BASE`` (busybox-static, five platforms) named in it."""
    return make_build_env(build_home)


@dataclass
class GitServer:
    """Repositories under ``base`` served by ``git daemon`` at ``url`` (git://127.0.0.1:P)."""

    base: Path
    url: str


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    from builder.gitserver import git_daemon

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("git-repos")
    with git_daemon(base) as url:
        yield GitServer(base, url)
