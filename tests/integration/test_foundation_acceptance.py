"""Acceptance of the Foundation issue, end to end with the real tools.

Every test runs the ``xarch`` command as a subprocess (``python -m xarch.cli.main``) against a
real Debian ``docker-registry`` on 127.0.0.1, and checks the result with skopeo, umoci and
docker where the acceptance names them. A missing tool skips the test locally and fails it in
CI (``CI=true``), so CI can never silently pass without running them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.images import ImageSet, make_image, write_image
from helpers.registry import RunningRegistry, free_port, registry_available, start_registry
from helpers.system import Run, missing, need
from oci.schema_check import assert_valid_oci
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.transports.layout import LayoutSink

pytestmark = pytest.mark.integration

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")


@dataclass
class Env:
    home: Path
    docker_config: Path
    tmp: Path

    def xarch(self, *args: str, input: str | None = None, check: bool = True) -> Run:
        env = {
            **os.environ,
            "XARCH_HOME": str(self.home),
            "DOCKER_CONFIG": str(self.docker_config),
        }
        env.pop("XARCH_PROGRESS", None)
        p = subprocess.run(
            [sys.executable, "-m", "xarch.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            input=input,
            timeout=300,
        )
        r = Run(p.returncode, p.stdout, p.stderr)
        if check:
            assert r.code == 0, f"xarch {' '.join(args)} failed ({r.code}):\n{r.err}"
        return r


def sh(*cmd: str, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo_raw(ref: str) -> bytes:
    p = subprocess.run(
        [need("skopeo"), "inspect", "--raw", "--tls-verify=false", ref],
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def assert_one_error(r: Run) -> None:
    assert r.code != 0, r
    lines = r.err_lines
    assert lines and lines[-1].startswith("error: "), lines
    progress = ("copy sha256:", "skip sha256:", "mount sha256:", "manifest sha256:", "retry ")
    assert all(ln.startswith(progress) for ln in lines[:-1]), lines
    assert "Traceback" not in r.err


def assert_store_consistent(env: Env) -> None:
    env.xarch("ls")
    v = env.xarch("store", "verify")
    assert "store ok" in v.out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if not registry_available():
        missing("docker-registry")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path / "home", tmp_path / "docker", tmp_path)


def write_layout(path: Path, image: ImageSet) -> Path:
    sink = LayoutSink(path, "v1")
    try:
        write_image(sink, image)
    finally:
        sink.close()
    return path


def _layouts(env: Env, media_type: str = mt.OCI_MANIFEST) -> list[tuple[str, str]]:
    """One single-platform image per platform, each in its own OCI layout (as a native runner
    would build it): [(oci:DIR:v1, manifest digest)]."""
    out = []
    for p in PLATFORMS:
        _cfg, raw, blobs = make_image(
            p,
            [{"etc/arch": p.encode()}, {"usr/share/data.bin": os.urandom(64 << 10)}],
            media_type=media_type,
        )
        desc = Descriptor.of(media_type, raw)
        img = ImageSet(desc, {desc.digest: (media_type, raw)}, dict(blobs))
        d = write_layout(env.tmp / ("src-" + p.replace("/", "-")), img)
        out.append((f"oci:{d}:v1", str(desc.digest)))
    return out


def _push_by_digest(
    env: Env, reg: RunningRegistry, repo: str, kind: str = mt.OCI_MANIFEST
) -> list[str]:
    digests = []
    for loc, digest in _layouts(env, kind):
        r = env.xarch("--progress", "plain", "copy", loc, f"{reg.url}/{repo}@{digest}")
        assert r.out.strip() == digest
        digests.append(digest)
    return digests


def _walk_manifests(raw: bytes, fetch: Callable[[str], bytes]) -> dict[str, bytes]:
    """digest → raw bytes of the root and every child manifest."""
    out = {sha(raw): raw}
    doc = parse_any(raw)
    if isinstance(doc, Index):
        for child in doc.manifests:
            out.update(_walk_manifests(fetch(str(child.digest)), fetch))
    return out


# -- acceptance 2a: manifest create from images pushed by digest -------------------------------
def test_manifest_create_push_by_digest_read_back_by_skopeo(
    env: Env, registry: RunningRegistry
) -> None:
    digests = _push_by_digest(env, registry, "team/app")
    r = env.xarch(
        "--progress",
        "plain",
        "manifest",
        "create",
        f"{registry.url}/team/app:1.0",
        *(f"{registry.url}/team/app@{d}" for d in digests),
    )
    index_digest = r.out.strip()
    raw = skopeo_raw(f"docker://{registry.url}/team/app:1.0")
    assert sha(raw) == index_digest
    idx = Index.parse(raw)
    assert idx.media_type == mt.OCI_INDEX
    assert_valid_oci(mt.OCI_INDEX, raw)
    assert [str(d.digest) for d in idx.manifests] == digests
    assert [str(d.platform) for d in idx.manifests] == list(PLATFORMS)
    # same repo: every blob already there, nothing re-uploaded
    assert not [ln for ln in r.err_lines if ln.startswith("copy sha256:")], r.err
    # into another repository: the children come along (mounted), skopeo copies it all
    other = env.xarch(
        "--progress",
        "plain",
        "manifest",
        "create",
        f"{registry.url}/release/app:1.0",
        *(f"{registry.url}/team/app@{d}" for d in digests),
    )
    assert other.out.strip() == index_digest
    # the other repository got its blobs by cross-repository mount, not by upload
    mounted = [ln for ln in other.err_lines if ln.startswith("mount sha256:")]
    assert len(mounted) == 9 and all(ln.endswith("from team/app") for ln in mounted), other.err
    assert not [ln for ln in other.err_lines if ln.startswith("copy sha256:")], other.err
    out = env.tmp / "skopeo-all"
    sh(
        need("skopeo"),
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{registry.url}/release/app:1.0",
        f"oci:{out}:x",
    )
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == index_digest


def test_manifest_create_docker_sources_make_a_docker_list(
    env: Env, registry: RunningRegistry
) -> None:
    digests = _push_by_digest(env, registry, "team/dockerapp", mt.DOCKER_MANIFEST)
    r = env.xarch(
        "manifest",
        "create",
        f"{registry.url}/team/dockerapp:1",
        *(f"{registry.url}/team/dockerapp@{d}" for d in digests),
    )
    raw = skopeo_raw(f"docker://{registry.url}/team/dockerapp:1")
    assert sha(raw) == r.out.strip()
    assert Index.parse(raw).media_type == mt.DOCKER_MANIFEST_LIST


# -- acceptance 2b: registry → oci: → registry → docker-archive keeps every digest -------------
def test_copy_chain_keeps_digests_and_docker_loads(env: Env, registry: RunningRegistry) -> None:
    digests = _push_by_digest(env, registry, "chain/src")
    env.xarch(
        "manifest",
        "create",
        f"{registry.url}/chain/src:v1",
        *(f"{registry.url}/chain/src@{d}" for d in digests),
    )
    raw0 = skopeo_raw(f"docker://{registry.url}/chain/src:v1")

    def reg_fetch(repo: str) -> Callable[[str], bytes]:
        return lambda d: skopeo_raw(f"docker://{registry.url}/{repo}@{d}")

    before = _walk_manifests(raw0, reg_fetch("chain/src"))
    assert len(before) == 4

    layout = env.tmp / "chain-layout"
    env.xarch("copy", "--all", f"{registry.url}/chain/src:v1", f"oci:{layout}:v1")
    idx_json = json.loads((layout / "index.json").read_text())
    assert idx_json["manifests"][0]["digest"] == sha(raw0)

    def layout_fetch(d: str) -> bytes:
        return (layout / "blobs" / "sha256" / d.split(":")[1]).read_bytes()

    assert _walk_manifests(layout_fetch(sha(raw0)), layout_fetch) == before
    for data in before.values():
        assert_valid_oci(parse_any(data).media_type, data)

    env.xarch("copy", "--all", f"oci:{layout}:v1", f"{registry.url}/chain/dst:v1")
    raw2 = skopeo_raw(f"docker://{registry.url}/chain/dst:v1")
    assert _walk_manifests(raw2, reg_fetch("chain/dst")) == before

    archive = env.tmp / "arm64.tar"
    env.xarch(
        "copy",
        "--platform",
        "linux/arm64",
        f"{registry.url}/chain/dst:v1",
        f"docker-archive:{archive}:chain/app:arm64",
    )
    arm64 = next(
        d for d in Index.parse(raw0).manifests if d.platform and d.platform.architecture == "arm64"
    )
    config_digest = str(Manifest.parse(before[str(arm64.digest)]).config.digest)
    # docker-archive keeps the image by its config (the image ID); manifests are not stored in it
    info = json.loads(env.xarch("inspect", "--format", "json", f"docker-archive:{archive}").out)
    assert info["manifests"][0]["platform"] == "linux/arm64"
    manifest_json = json.loads(sh("tar", "-xOf", str(archive), "manifest.json"))
    assert (
        manifest_json[0]["Config"].split("/")[-1].removesuffix(".json")
        == config_digest.split(":")[1]
    )
    assert manifest_json[0]["RepoTags"] == ["chain/app:arm64"]

    # skopeo reads the archive too
    sk = json.loads(sh(need("skopeo"), "inspect", f"docker-archive:{archive}"))
    assert sk["Architecture"] == "arm64"

    docker_host = os.environ.get("XARCH_TEST_DOCKER_HOST")
    if not docker_host:
        missing("a docker daemon (XARCH_TEST_DOCKER_HOST, started by scripts/test.sh)")
    denv = {**os.environ, "DOCKER_HOST": docker_host}
    out = sh(need("docker"), "load", "-i", str(archive), env=denv)
    assert "chain/app:arm64" in out
    image_id = sh(
        need("docker"), "image", "inspect", "--format", "{{.Id}}", "chain/app:arm64", env=denv
    ).strip()
    assert image_id == config_digest
    sh(need("docker"), "image", "rm", "chain/app:arm64", env=denv)


# -- acceptance 3: cross-repository mount ------------------------------------------------------
def test_copy_between_repositories_mounts(env: Env, registry: RunningRegistry) -> None:
    digests = _push_by_digest(env, registry, "mount/a")
    env.xarch(
        "manifest",
        "create",
        f"{registry.url}/mount/a:v1",
        *(f"{registry.url}/mount/a@{d}" for d in digests),
    )
    r = env.xarch(
        "--progress", "plain", "copy", f"{registry.url}/mount/a:v1", f"{registry.url}/mount/b:v1"
    )
    mounts = [ln for ln in r.err_lines if ln.startswith("mount sha256:")]
    copies = [ln for ln in r.err_lines if ln.startswith("copy sha256:")]
    # 3 configs + 3 arch layers + 3 data layers (random, so all distinct)
    assert len(mounts) == 9, r.err
    assert not copies
    assert all(ln.endswith("from mount/a") for ln in mounts)
    assert "9 mounted" in r.err_lines[-1]
    log = registry.log()
    posts = re.findall(r'"POST /v2/mount/b/blobs/uploads/\?([^ "]*) HTTP/1\.1" (\d{3})', log)
    mounted = [
        q
        for q, status in posts
        if "mount=sha256" in q and "from=mount%2Fa" in q and status == "201"
    ]
    assert len(mounted) == 9, posts
    # and nothing was uploaded with PUT into mount/b
    assert not re.search(r'"PUT /v2/mount/b/blobs/uploads/', log)
    assert sha(skopeo_raw(f"docker://{registry.url}/mount/b:v1")) == r.out.strip()
    # tag between registry references: same bytes, same digest under the new name
    t = env.xarch("tag", f"{registry.url}/mount/b:v1", f"{registry.url}/mount/b:stable")
    assert t.out.strip() == r.out.strip()
    assert sha(skopeo_raw(f"docker://{registry.url}/mount/b:stable")) == r.out.strip()


# -- acceptance interop: skopeo, umoci ---------------------------------------------------------
@pytest.mark.slow
def test_skopeo_reads_ours_and_we_read_skopeos(env: Env, registry: RunningRegistry) -> None:
    skopeo = need("skopeo")
    digests = _push_by_digest(env, registry, "interop/app")
    root = env.xarch(
        "manifest",
        "create",
        f"{registry.url}/interop/app:v1",
        *(f"{registry.url}/interop/app@{d}" for d in digests),
    ).out.strip()
    ours = env.tmp / "ours"
    env.xarch("copy", f"{registry.url}/interop/app:v1", f"oci:{ours}:v1")
    # skopeo copies what we wrote (layout) and what we pushed (registry), all platforms
    sh(skopeo, "copy", "--all", f"oci:{ours}:v1", f"oci:{env.tmp / 'sk1'}:v1")
    sh(
        skopeo,
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{registry.url}/interop/app:v1",
        f"oci:{env.tmp / 'sk2'}:v1",
    )
    for d in ("sk1", "sk2"):
        assert (
            json.loads((env.tmp / d / "index.json").read_text())["manifests"][0]["digest"] == root
        )
        # we read what skopeo wrote, byte for byte
        assert (
            env.xarch(
                "copy", f"oci:{env.tmp / d}:v1", f"oci:{env.tmp / (d + '-back')}:v1"
            ).out.strip()
            == root
        )
    sh(
        skopeo,
        "copy",
        "--all",
        "--dest-tls-verify=false",
        f"oci:{ours}:v1",
        f"docker://{registry.url}/interop/by-skopeo:v1",
    )
    assert (
        env.xarch("inspect", "--raw", f"{registry.url}/interop/by-skopeo:v1").out.encode()
        and sha(skopeo_raw(f"docker://{registry.url}/interop/by-skopeo:v1")) == root
    )
    # skopeo's docker-archive, read by xarch (into the store, then out again)
    sh(
        skopeo,
        "copy",
        "--override-arch",
        "arm64",
        "--src-tls-verify=false",
        f"docker://{registry.url}/interop/app:v1",
        f"docker-archive:{env.tmp / 'sk.tar'}:interop/app:arm64",
    )
    info = json.loads(
        env.xarch("inspect", "--format", "json", f"docker-archive:{env.tmp / 'sk.tar'}").out
    )
    assert info["manifests"][0]["platform"] == "linux/arm64"
    env.xarch("copy", f"docker-archive:{env.tmp / 'sk.tar'}", "interop/app:arm64")
    env.xarch("copy", "interop/app:arm64", f"oci:{env.tmp / 'from-archive'}:a")
    assert_store_consistent(env)


def test_umoci_unpacks_our_layout(env: Env, tmp_path: Path) -> None:
    umoci = need("umoci")
    (loc, _digest), *_ = _layouts(env)
    layout = tmp_path / "for-umoci"
    env.xarch("copy", loc, f"oci:{layout}:amd64")
    bundle = tmp_path / "bundle"
    sh(umoci, "unpack", "--image", f"{layout}:amd64", str(bundle))
    assert (bundle / "rootfs" / "etc" / "arch").read_text() == "linux/amd64"
    assert (bundle / "rootfs" / "usr" / "share" / "data.bin").stat().st_size == 64 << 10
    assert (bundle / "config.json").is_file()


# -- acceptance 4: bad inputs against a real registry ------------------------------------------
@pytest.mark.slow
def test_bad_inputs_with_registry(env: Env, registry: RunningRegistry) -> None:
    digests = _push_by_digest(env, registry, "bad/app")
    env.xarch("copy", f"{registry.url}/bad/app@{digests[0]}", "keep:1")
    cases = {
        "bad reference": ("copy", f"{registry.url}/Bad//app:1", "x:1"),
        "unknown tag": ("copy", f"{registry.url}/bad/app:nosuchtag", "x:1"),
        "unknown repository": ("inspect", f"{registry.url}/no/such:1"),
        "unknown digest": ("copy", f"{registry.url}/bad/app@sha256:{'0' * 64}", "x:1"),
        "registry down": ("copy", f"127.0.0.1:{free_port()}/bad/app:1", "x:1"),
        "disk path not writable": (
            "copy",
            f"{registry.url}/bad/app@{digests[0]}",
            "oci:/proc/xarch/out:v",
        ),
    }
    for name, args in cases.items():
        r = env.xarch(*args, check=False)
        assert r.code != 0, f"{name}: {r}"
        assert_one_error(r)
        assert_store_consistent(env)
    assert env.xarch("ls", "-q").out.split() == ["docker.io/library/keep:1"]


def test_digest_mismatch_from_registry(env: Env, tmp_path: Path) -> None:
    reg = start_registry(tmp_path / "corrupt") if registry_available() else None
    if reg is None:
        need("/usr/bin/docker-registry")
        return
    try:
        (loc, _digest), *_ = _layouts(env)
        env.xarch("copy", loc, f"{reg.url}/c/app:v1")
        manifest = Manifest.parse(skopeo_raw(f"docker://{reg.url}/c/app:v1"))
        layer = manifest.layers[-1].digest
        data = next((tmp_path / "corrupt").rglob(f"blobs/sha256/{layer.hex[:2]}/{layer.hex}/data"))
        content = bytearray(data.read_bytes())
        content[100] ^= 0xFF
        data.write_bytes(bytes(content))
        r = env.xarch("copy", f"{reg.url}/c/app:v1", "c:1", check=False)
        assert_one_error(r)
        assert "digest" in r.err_lines[-1]
        assert_store_consistent(env)
        assert env.xarch("ls", "-q").out.strip() == ""
    finally:
        reg.stop()


def test_login_wrong_password_and_right_one(env: Env, tmp_path: Path) -> None:
    need("htpasswd")
    if not registry_available():
        need("/usr/bin/docker-registry")
    reg = start_registry(tmp_path / "auth", htpasswd=("alice", "s3cret"), tls=True)
    try:
        ca = ["--ca-file", str(reg.ca_file)]
        bad = env.xarch(
            "login", reg.url, "-u", "alice", "--password-stdin", *ca, input="wrong\n", check=False
        )
        assert_one_error(bad)
        assert (
            not (env.docker_config / "config.json").exists()
            or reg.url not in (env.docker_config / "config.json").read_text()
        )
        (loc, _d), *_ = _layouts(env)
        anon = env.xarch("copy", *ca, loc, f"{reg.url}/private/app:v1", check=False)
        assert_one_error(anon)
        ok = env.xarch("login", reg.url, "-u", "alice", "--password-stdin", *ca, input="s3cret\n")
        assert "Login succeeded" in ok.out
        assert reg.url in (env.docker_config / "config.json").read_text()
        pushed = env.xarch("copy", *ca, loc, f"{reg.url}/private/app:v1").out.strip()
        assert env.xarch("inspect", *ca, "--format", "json", f"{reg.url}/private/app:v1").out
        assert (
            json.loads(
                env.xarch("inspect", *ca, "--format", "json", f"{reg.url}/private/app:v1").out
            )["digest"]
            == pushed
        )
        assert "Removed" in env.xarch("logout", reg.url).out
        again = env.xarch("inspect", *ca, f"{reg.url}/private/app:v1", check=False)
        assert_one_error(again)
        assert_store_consistent(env)
    finally:
        reg.stop()
