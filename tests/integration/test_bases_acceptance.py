"""Issue 10 acceptance ("Every image right, every time"): base images per platform and per build.

Everything runs the ``xarch`` command as a user does (a subprocess, ``XARCH_HOME`` per test),
as *sequences* of commands in one home: the bugs this issue is about only show on the second
build. Bases come from a real CNCF ``docker-registry`` on 127.0.0.1 (tests/helpers/registry.py);
what xarch asked it is read from its access log (tests/helpers/registry_log.py). The busybox
base index (five platforms) is bootstrapped once per module (make_build_env: mmdebstrap,
busybox-static) and pushed with ``xarch copy``. Images are checked by walking the OCI output ourselves (index →
manifest → config and layers, tarfile, last writer wins), not through xarch's code.

- platform matrix: every ordered pair (A, B) of the five platforms, A then B then A,B in one
  home: every image's /bin/busybox is an ELF for its platform, its RUN ran there, its config
  says so (bug 1: the second platform got the first one's base);
- moving tag: a base tag that moves is seen to move, a digest pin holds, an unreachable registry
  is a one-line warning with the cached digest, ``--pull`` refetches, and ``xarch ls`` holds
  only the user's names (bugs 2, 3);
- a no-change rebuild + push gives the same digest and uploads nothing (bug 4), and the first
  push mounts the base's layers from the base's repository instead of uploading them (bug 9);
- a ``FROM --platform=$BUILDPLATFORM`` stage's base is fetched for the build platform only,
  even when it lacks the target platforms (bug 8).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import os
import posixpath
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.builder.conftest import BASE, PLATFORMS, BuildEnv, make_build_env, usable
from tests.helpers.registry import (
    REGISTRY_BIN,
    RunningRegistry,
    registry_available,
    start_registry,
)
from tests.helpers.registry_log import LogCursor, Request, writes
from tests.helpers.system import Run, missing, umount_below

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]

UNAME = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/arm/v7": "armv7l",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
}
TARGETARCH = {
    "linux/amd64": "amd64",
    "linux/arm64": "arm64",
    "linux/arm/v7": "arm",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
}
# platform -> (EI_CLASS, EI_DATA, e_machine): 1 = 32-bit / little endian, 2 = 64-bit / big endian
ELF = {
    "linux/amd64": (2, 1, 62),  # EM_X86_64
    "linux/arm64": (2, 1, 183),  # EM_AARCH64
    "linux/arm/v7": (1, 1, 40),  # EM_ARM
    "linux/ppc64le": (2, 1, 21),  # EM_PPC64, little endian
    "linux/s390x": (2, 2, 22),  # EM_S390, 64-bit big endian
}
# platform -> (config architecture, accepted config variants)
CONFIG_ARCH = {
    "linux/amd64": ("amd64", {None}),
    "linux/arm64": ("arm64", {None, "v8"}),
    "linux/arm/v7": ("arm", {"v7"}),
    "linux/ppc64le": ("ppc64le", {None}),
    "linux/s390x": ("s390x", {None}),
}

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
IMAGE_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json",
                      "application/vnd.docker.container.image.v1+json")


# -- running xarch as a user does ----------------------------------------------------------------


def _xarch_cmd() -> list[str]:
    exe = REPO_ROOT / ".venv" / "bin" / "xarch"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "xarch.cli.main"]


def xarch(home: Path, *args: str, cwd: Path | None = None, timeout: float = 600) -> Run:
    """``xarch ARGS`` with ``XARCH_HOME=home``; no SOURCE_DATE_EPOCH, no user credentials."""
    env = {**os.environ, "XARCH_HOME": str(home), "DOCKER_CONFIG": str(home.parent / "docker-config")}
    for var in ("XARCH_PROGRESS", "SOURCE_DATE_EPOCH"):
        env.pop(var, None)
    p = subprocess.run([*_xarch_cmd(), *args], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr)


def ok(r: Run, what: str) -> Run:
    assert r.code == 0, f"{what} failed ({r.code}):\n{r.err[-3000:]}"
    return r


def tail(r: Run, n: int = 6) -> str:
    return " | ".join(r.err_lines[-n:])


def context(d: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (d / name).write_text(data)
    return d


# -- reading OCI layouts (archive or directory) ourselves --------------------------------------


@dataclass
class Entry:
    kind: str  # file | dir | symlink | other
    data: bytes = b""
    link: str = ""


@dataclass
class Image:
    platform: str  # from the config: os/arch[/variant], arm64/v8 as linux/arm64
    config: dict[str, Any]
    manifest_digest: str
    descriptor_platform: dict[str, Any] | None
    layers: list[str]
    files: dict[str, Entry] = field(repr=False)

    def lookup(self, path: str) -> Entry | None:
        """``path`` with symlinks followed (absolute ones from the image root)."""
        parts = [p for p in path.split("/") if p]
        cur: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if cur:
                    cur.pop()
                continue
            if name == ".":
                continue
            cur.append(name)
            e = self.files.get("/".join(cur))
            if e is not None and e.kind == "symlink":
                hops += 1
                if hops > 40:
                    return None
                cur.pop()
                if e.link.startswith("/"):
                    cur = []
                parts = [p for p in e.link.split("/") if p] + parts
        return self.files.get("/".join(cur)) if cur else Entry("dir")

    def read(self, path: str) -> bytes | None:
        e = self.lookup(path)
        return e.data if e is not None and e.kind == "file" else None


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _apply(files: dict[str, Entry], layer: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tf:
        members = tf.getmembers()
        # whiteouts hide what the layers below have; apply them before this layer's entries
        for m in members:
            name = _norm(m.name)
            base = posixpath.basename(name)
            parent = posixpath.dirname(name)
            if base == ".wh..wh..opq":
                for k in [k for k in files if parent == "" or k.startswith(parent + "/")]:
                    del files[k]
            elif base.startswith(".wh."):
                gone = posixpath.join(parent, base[4:])
                for k in [k for k in files if k == gone or k.startswith(gone + "/")]:
                    del files[k]
        for m in members:
            name = _norm(m.name)
            if posixpath.basename(name).startswith(".wh.") or not name:
                continue
            if m.isdir():
                files[name] = Entry("dir")
            elif m.issym():
                files[name] = Entry("symlink", link=m.linkname)
            elif m.islnk():
                target = files.get(_norm(m.linkname))
                files[name] = Entry("file", target.data) if target else Entry("other")
            elif m.isfile():
                f = tf.extractfile(m)
                files[name] = Entry("file", f.read() if f else b"")
            else:
                files[name] = Entry("other")


def _blob_reader(path: Path) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    if path.is_dir():
        def read_dir(name: str) -> bytes:
            return (path / name).read_bytes()
        return read_dir, lambda: None
    tf = tarfile.open(path)  # noqa: SIM115 - closed by the returned closer

    def read_tar(name: str) -> bytes:
        f = tf.extractfile(name)
        assert f is not None, f"{path}: {name} is not a file"
        return f.read()

    return read_tar, tf.close


def _platform_of(cfg: dict[str, Any]) -> str:
    arch, variant = cfg.get("architecture"), cfg.get("variant")
    if arch == "arm64" and variant == "v8":
        variant = None
    return f"{cfg.get('os')}/{arch}" + (f"/{variant}" if variant else "")


def oci_images(path: Path) -> list[Image]:
    """Every image (manifest with an image config) an OCI layout or archive holds."""
    read, close = _blob_reader(path)
    try:
        def blob(digest: str) -> bytes:
            algo, _, hexpart = digest.partition(":")
            return read(f"blobs/{algo}/{hexpart}")

        out: list[Image] = []

        def walk(desc: dict[str, Any]) -> None:
            raw = blob(desc["digest"])
            doc = json.loads(raw)
            mtype = doc.get("mediaType") or desc.get("mediaType")
            if mtype in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
                for child in doc.get("manifests", []):
                    walk(child)
                return
            if doc.get("config", {}).get("mediaType") not in IMAGE_CONFIG_TYPES:
                return  # attestation manifests and other artifacts
            cfg = json.loads(blob(doc["config"]["digest"]))
            files: dict[str, Entry] = {}
            for layer in doc.get("layers", []):
                _apply(files, _decompress(blob(layer["digest"])))
            out.append(Image(_platform_of(cfg), cfg, desc["digest"], desc.get("platform"),
                             [layer["digest"] for layer in doc.get("layers", [])], files))

        for top in json.loads(read("index.json")).get("manifests", []):
            walk(top)
        return out
    finally:
        close()


def elf_ident(data: bytes) -> tuple[int, int, int] | str:
    """(EI_CLASS, EI_DATA, e_machine) of an ELF file, or why it is not one."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return f"not an ELF file (starts {data[:4]!r})"
    ei_class, ei_data = data[4], data[5]
    order = "little" if ei_data == 1 else "big"
    return ei_class, ei_data, int.from_bytes(data[18:20], order)


def image_problems(img: Image, platform: str, where: str, files: dict[str, str]) -> list[str]:
    """What is wrong with ``img`` as the ``platform`` image: busybox ELF, config platform,
    and each of ``files`` (path -> expected stripped text)."""
    bad = []
    arch, variants = CONFIG_ARCH[platform]
    cfg_arch, cfg_variant = img.config.get("architecture"), img.config.get("variant")
    if cfg_arch != arch or cfg_variant not in variants or img.config.get("os") != "linux":
        bad.append(f"{where}: config says {img.config.get('os')}/{cfg_arch}/{cfg_variant}")
    dp = img.descriptor_platform
    if dp is not None and (dp.get("architecture") != arch or dp.get("variant") not in variants):
        bad.append(f"{where}: index entry says {dp}")
    busybox = img.read("/bin/busybox")
    if busybox is None:
        bad.append(f"{where}: no /bin/busybox")
    else:
        got = elf_ident(busybox)
        if got != ELF[platform]:
            bad.append(f"{where}: /bin/busybox is (class, data, machine) {got}, want {ELF[platform]}")
    for path, want in files.items():
        data = img.read(path)
        text = None if data is None else data.decode(errors="replace").strip()
        if text != want:
            bad.append(f"{where}: {path} is {text!r}, want {want!r}")
    return bad


def output_problems(dest: Path, platforms: tuple[str, ...], where: str,
                    files: Callable[[str], dict[str, str]]) -> list[str]:
    """Exactly one image per platform in the OCI output ``dest``, each right."""
    try:
        images = oci_images(dest)
    except (OSError, KeyError, tarfile.TarError, ValueError) as e:
        return [f"{where}: cannot read {dest.name}: {e}"]
    got = sorted(i.platform for i in images)
    if got != sorted(platforms):
        # still check each image against the platform its config claims
        bad = [f"{where}: images for {got}, want {sorted(platforms)}"]
    else:
        bad = []
    for img in images:
        plat = img.platform if img.platform in UNAME else None
        if plat is None:
            continue
        bad += image_problems(img, plat, f"{where} [{plat}]", files(plat))
    return bad


# -- registry access (outside the log windows a test looks at) -------------------------------


ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))


def registry_manifest(registry: RunningRegistry, repo: str, ref: str) -> tuple[dict[str, Any], str]:
    req = urllib.request.Request(f"http://{registry.url}/v2/{repo}/manifests/{ref}",
                                 headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read()), str(resp.headers["Docker-Content-Digest"])


def platform_manifests(registry: RunningRegistry, repo: str, ref: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """platform -> (manifest digest, manifest) of the index ``repo:ref``."""
    index, _ = registry_manifest(registry, repo, ref)
    out = {}
    for d in index["manifests"]:
        p = d.get("platform") or {}
        plat = _platform_of(p)
        out[plat] = (d["digest"], registry_manifest(registry, repo, d["digest"])[0])
    return out


def restart_registry(old: RunningRegistry, timeout: float = 20.0) -> RunningRegistry:
    """Start docker-registry again with ``old``'s config: same storage, same port, the log
    appended to (so offsets taken before stay valid)."""
    old.stop()
    config = old.log_path.parent / "config.yml"
    with open(old.log_path, "ab") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)
    reg = RunningRegistry(old.url, old.log_path, old.ca_file, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry did not restart ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://{old.url}/v2/", timeout=2):
                return reg
        except OSError:
            pass
        if time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError(f"docker-registry did not come back on {old.url}")
        time.sleep(0.05)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildEnv]:
    why = usable()
    if why:
        missing(f"a real build environment ({why})")
    home = tmp_path_factory.mktemp("bases-bootstrap")
    yield make_build_env(home, PLATFORMS, riscv=False)
    with contextlib.suppress(OSError):
        umount_below(home)


@pytest.fixture(scope="module")
def emulation() -> None:
    from xarch.executor.emulation import EmulationStatus
    from xarch.oci.platform import Platform

    for p in PLATFORMS:
        status = EmulationStatus.probe(Platform.parse(p))
        if not status.runnable:
            missing(f"RUN steps for {p} ({status.reason}; `xarch setup emulation`)")


def _start(tmp: Path) -> RunningRegistry:
    if not registry_available():
        missing("docker-registry")
    return start_registry(tmp)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = _start(tmp_path_factory.mktemp("bases-registry"))
    try:
        yield reg
    finally:
        reg.stop()


@dataclass(frozen=True)
class Base:
    ref: str  # <registry>/xarch/busybox:1
    digest: str  # its index
    manifests: dict[str, tuple[str, dict[str, Any]]]  # platform -> (digest, manifest)


def push_busybox(env: BuildEnv, registry: RunningRegistry, repo: str = "xarch/busybox") -> Base:
    ref = f"{registry.url}/{repo}:1"
    ok(xarch(env.store.root.parent, "copy", f"store:{BASE}", ref), "xarch copy of the busybox base")
    _, digest = registry_manifest(registry, repo, "1")
    manifests = platform_manifests(registry, repo, "1")
    assert sorted(manifests) == sorted(PLATFORMS), manifests.keys()
    return Base(ref, digest, manifests)


@pytest.fixture(scope="module")
def busybox(env: BuildEnv, registry: RunningRegistry) -> Base:
    return push_busybox(env, registry)


# -- 1. every platform pair, in sequence, in one home ---------------------------------------------

ARCH_DOCKERFILE = "FROM {base}\nRUN uname -m > /arch\n"
PAIRS = list(itertools.permutations(PLATFORMS, 2))


def _pid(p: str) -> str:
    return p.removeprefix("linux/").replace("/", "")


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{_pid(a)}-{_pid(b)}" for a, b in PAIRS])
def test_platform_matrix(busybox: Base, emulation: None, tmp_path: Path, first: str,
                         second: str) -> None:
    """A alone, then B alone, then A,B in one call, in one XARCH_HOME: every image is right."""
    home = tmp_path / "home"
    ctx = context(tmp_path / "ctx", ARCH_DOCKERFILE.format(base=busybox.ref))
    problems: list[str] = []
    try:
        for n, plats in enumerate(((first,), (second,), (first, second)), 1):
            dest = tmp_path / f"out{n}.tar"
            where = f"build {n} (--platform {','.join(plats)})"
            r = xarch(home, "build", "--platform", ",".join(plats), "-o", f"type=oci,dest={dest}",
                      ".", cwd=ctx)
            if r.code != 0:
                problems.append(f"{where} failed ({r.code}): {tail(r)}")
                continue
            problems += output_problems(dest, plats, where, lambda p: {"/arch": UNAME[p]})
    finally:
        if home.exists():
            umount_below(home)
    assert not problems, "\n".join(problems)


# -- 2, 3. a moving tag, a pinned digest, an unreachable registry, --pull, xarch ls -----------------


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[list[RunningRegistry]]:
    """A registry of the test's own (the test stops and restarts it): [current]."""
    holder = [_start(tmp_path / "reg")]
    try:
        yield holder
    finally:
        holder[0].stop()


def _has_digest(text: str, *digests: str) -> bool:
    return any(d.partition(":")[2][:12] in text for d in digests)


def test_moving_tag_pin_offline_pull_and_ls(env: BuildEnv, own_registry: list[RunningRegistry],
                                            tmp_path: Path) -> None:
    from xarch.oci.platform import host_platform

    reg = own_registry[0]
    plat = str(host_platform())  # the user's builds run natively: this test is about the base
    if plat not in UNAME:
        missing(f"one of {', '.join(UNAME)} as this machine's platform (it is {plat})")
    bb = push_busybox(env, reg)
    moving = f"{reg.url}/xarch/base:moving"

    # the base's publisher: v1 and v2 differ by /etc/base-id, both pushed under :moving
    pub = tmp_path / "publisher"

    def publish(version: str) -> str:
        ctx = context(tmp_path / f"pub-{version}", f"FROM {bb.ref}\nCOPY base-id /etc/base-id\n",
                      {"base-id": f"{version}\n"})
        ok(xarch(pub, "build", "--platform", "linux/amd64,linux/arm64", "-t", moving, "--push",
                 ".", cwd=ctx), f"publishing base {version}")
        return registry_manifest(reg, "xarch/base", "moving")[1]

    home = tmp_path / "home"
    user_ctx = context(tmp_path / "ctx", f"FROM {moving}\nRUN cat /etc/base-id > /seen\n")
    names: list[str] = []
    problems: list[str] = []

    def build(step: str, want: str, *flags: str, ctx: Path = user_ctx) -> Run:
        """The user's build, named with -t and written as an OCI archive: /seen must be want."""
        name = f"localhost/xarch-accept/moving-app:{step}"
        dest = tmp_path / f"{step}.tar"
        r = xarch(home, "build", *flags, "--platform", plat, "-t", name, "-o", "type=store",
                  "-o", f"type=oci,dest={dest}", ".", cwd=ctx)
        if r.code != 0:
            problems.append(f"{step}: build failed ({r.code}): {tail(r)}")
            return r
        names.append(name)
        problems.extend(output_problems(dest, (plat,), step,
                                        lambda p: {"/seen": want, "/etc/base-id": want}))
        return r

    try:
        v1 = publish("v1")
        build("v1", "v1")
        v2 = publish("v2")
        assert v2 != v1
        v2_platform = platform_manifests(reg, "xarch/base", "moving")[plat][0]
        build("after-move", "v2")  # no flags: the moved tag is seen (bug 2)

        pinned = context(tmp_path / "ctx-pinned",
                         f"FROM {reg.url}/xarch/base@{v1}\nRUN cat /etc/base-id > /seen\n")
        build("pinned", "v1", ctx=pinned)

        reg.stop()
        r = build("offline", "v2")  # the last digest :moving resolved to
        if r.code == 0:
            warn = [ln for ln in r.err_lines if "unreachable" in ln.lower()]
            print("offline warning:", warn)  # -rP shows it
            if len(warn) != 1:
                problems.append(f"offline: want one 'unreachable' warning line, got {warn}: {tail(r)}")
            elif reg.url not in warn[0] or not _has_digest(warn[0], v2, v2_platform):
                problems.append(f"offline: the warning must name {reg.url} and the cached digest "
                                f"{v2[:19]} (or {v2_platform[:19]}): {warn[0]!r}")

        reg = own_registry[0] = restart_registry(reg)
        cursor = LogCursor.at_end(reg.log_path)
        r = build("pull", "v2", "--pull")
        if r.code == 0:
            gets = [q for q in cursor.requests()
                    if q.method == "GET" and q.path.startswith("/v2/xarch/base/manifests/")]
            print("--pull fetched:", [str(q) for q in gets])
            if not gets:
                problems.append("pull: --pull fetched no manifest of xarch/base: "
                                f"{[str(q) for q in cursor.requests()]}")

        r = xarch(home, "ls", "--format", "json")
        if r.code != 0:
            problems.append(f"ls failed: {tail(r)}")
        else:
            listed = sorted(e["name"] for e in json.loads(r.out))
            if listed != sorted(names):
                problems.append(f"ls lists {listed}; the user named only {sorted(names)}")
    finally:
        if home.exists():
            umount_below(home)
    assert not problems, "\n".join(problems)


# -- 4, 9. a no-change rebuild + push: same digest, no upload; the first push mounts the base ----


@dataclass(frozen=True)
class Pushes:
    ref: str
    runs: tuple[Run, Run]
    digests: tuple[str | None, str | None]  # containerimage.digest of each run's metadata
    first: list[Request]  # what the registry was asked during each run
    second: list[Request]


@pytest.fixture(scope="module")
def app_pushes(busybox: Base, registry: RunningRegistry, emulation: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushes]:
    tmp = tmp_path_factory.mktemp("bases-app")
    home = tmp / "home"
    ctx = context(tmp / "ctx", ARCH_DOCKERFILE.format(base=busybox.ref))
    ref = f"{registry.url}/xarch/app:1"
    runs, digests, segments = [], [], []
    for n in (1, 2):
        meta = tmp / f"metadata-{n}.json"
        start = LogCursor.at_end(registry.log_path)
        r = xarch(home, "build", "--platform", "linux/amd64,linux/arm64", "-t", ref, "--push",
                  "--metadata-file", str(meta), ".", cwd=ctx)
        end = LogCursor.at_end(registry.log_path)
        segments.append(start.requests(until=end))
        runs.append(r)
        digests.append(json.loads(meta.read_text()).get("containerimage.digest")
                       if r.code == 0 and meta.exists() else None)
    yield Pushes(ref, (runs[0], runs[1]), (digests[0], digests[1]), segments[0], segments[1])
    umount_below(home)


def test_no_change_rebuild_same_digest_no_upload(app_pushes: Pushes, registry: RunningRegistry) -> None:
    r1, r2 = app_pushes.runs
    ok(r1, "first build --push")
    ok(r2, "second build --push")
    d1, d2 = app_pushes.digests
    assert d1 and d1.startswith("sha256:"), d1
    assert d2 == d1, f"the no-change rebuild made {d2}, the first build {d1} (bug 4)"
    assert r2.out.strip().splitlines()[-1] == d1
    uploads = writes(app_pushes.second)
    assert not uploads, "the no-change rebuild changed the registry:\n" + "\n".join(map(str, uploads))
    assert registry_manifest(registry, "xarch/app", "1")[1] == d1


def test_first_push_mounts_base_layers(app_pushes: Pushes, busybox: Base) -> None:
    ok(app_pushes.runs[0], "first build --push")
    requests = app_pushes.first
    problems = []
    for plat in ("linux/amd64", "linux/arm64"):
        for layer in busybox.manifests[plat][1]["layers"]:
            d = layer["digest"]
            mounted = [q for q in requests
                       if q.method == "POST" and q.path == "/v2/xarch/app/blobs/uploads/"
                       and q.query.get("mount") == [d] and q.query.get("from") == ["xarch/busybox"]
                       and q.status == 201]
            uploaded = [q for q in requests if q.method in ("PUT", "PATCH")
                        and q.path.startswith("/v2/xarch/app/blobs/") and q.mentions(d)]
            if not mounted:
                problems.append(f"{plat} base layer {d[:19]} was not mounted from xarch/busybox")
            if uploaded:
                problems.append(f"{plat} base layer {d[:19]} was uploaded: {[str(q) for q in uploaded]}")
    assert not problems, "\n".join(problems) + "\nrequests:\n" + "\n".join(
        str(q) for q in requests if q.method != "HEAD")


# -- 8. a $BUILDPLATFORM stage's base: the build platform only ----------------------------------

CROSS_DOCKERFILE = """FROM --platform=$BUILDPLATFORM {builder} AS build
ARG TARGETARCH
RUN echo $TARGETARCH > /t
FROM {base}
COPY --from=build /t /t
"""


def test_buildplatform_stage_fetches_only_build_platform(busybox: Base, registry: RunningRegistry,
                                                         env: BuildEnv, tmp_path: Path) -> None:
    from xarch.oci.platform import host_platform

    host = str(host_platform())
    pair = ("linux/amd64", "linux/arm64")
    if host not in pair:
        missing(f"a linux/amd64 or linux/arm64 machine (this is {host})")
    other = pair[1 - pair.index(host)]
    builder = f"{registry.url}/xarch/builderbase:1"
    ok(xarch(tmp_path / "publisher", "copy", "--platform", ",".join(pair), busybox.ref, builder),
       "copying a two-platform builder base")
    builder_manifests = platform_manifests(registry, "xarch/builderbase", "1")
    assert sorted(builder_manifests) == sorted(pair), builder_manifests.keys()
    other_digest, other_manifest = builder_manifests[other]
    host_layers = {la["digest"] for la in builder_manifests[host][1]["layers"]}
    other_only = [la["digest"] for la in other_manifest["layers"] if la["digest"] not in host_layers]
    assert other_only

    home = tmp_path / "home"
    ctx = context(tmp_path / "ctx", CROSS_DOCKERFILE.format(builder=builder, base=busybox.ref))
    dest = tmp_path / "out.tar"
    cursor = LogCursor.at_end(registry.log_path)
    try:
        r = xarch(home, "build", "--platform", ",".join(PLATFORMS), "-o", f"type=oci,dest={dest}",
                  ".", cwd=ctx)
    finally:
        if home.exists():
            umount_below(home)
    requests = cursor.requests()
    ok(r, f"five-platform build with a {host}-stage on a two-platform base (bug 8)")
    problems = output_problems(dest, PLATFORMS, "cross build", lambda p: {"/t": TARGETARCH[p]})
    fetched = [q for q in requests if q.method == "GET" and q.path.startswith("/v2/xarch/builderbase/")
               and any(q.mentions(d) for d in (other_digest, *other_only))]
    if fetched:
        problems.append(f"the {other} image of the builder base was fetched: "
                        f"{[str(q) for q in fetched]}")
    assert not problems, "\n".join(problems)
