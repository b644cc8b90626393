"""Session fixtures of the differential tier: a dockerd, a registry, a base image, a harness.

dockerd: ``XARCH_TEST_DOCKER_HOST`` (scripts/test.sh exports it) or one started here on a
private socket (bridge and iptables off, host networking only), stopped at the end. The
Docker client must have BuildKit built in or the buildx plugin: Debian's docker.io 20.10
client (/usr/bin/docker) is preferred because a newer client without buildx refuses
``DOCKER_BUILDKIT=1``.

Base image: ``xarch bootstrap`` (busybox-static, variant extract) for the corpus platforms,
pushed by xarch to a Debian docker-registry on 127.0.0.1, so both builders ``FROM`` the very
same bytes; Docker pulls it through ``--insecure-registry 127.0.0.0/8``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.harness import CORPUS, DEFAULT_PLATFORMS, DockerCli, Harness
from helpers.registry import registry_available, start_registry
from helpers.system import umount_below

EPOCH = 1700000000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: differential conformance tier (xarch vs Docker BuildKit)"
    )


def _docker_client() -> str | None:
    candidates = ["/usr/bin/docker", shutil.which("docker") or ""]
    for exe in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        r = subprocess.run([exe, "version", "--format", "{{.Client.Version}}"],
                           capture_output=True, text=True)
        version = (r.stdout or "").strip()
        try:
            major = int(version.split(".")[0])
        except ValueError:
            continue
        if major < 23:  # BuildKit built into the client
            return exe
        if subprocess.run([exe, "buildx", "version"], capture_output=True).returncode == 0:
            return exe
    return None


def _why_unusable() -> str | None:
    if os.geteuid() != 0:
        return "the differential tier needs root (dockerd, overlayfs, runc)"
    for tool in ("mmdebstrap", "busybox", "dockerd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not registry_available():
        return "docker-registry is not installed"
    if _docker_client() is None:
        return "no docker client with BuildKit (docker.io 20.10 or buildx)"
    return None


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    why = _why_unusable()
    if why:
        pytest.skip(why)
    env_host = os.environ.get("XARCH_TEST_DOCKER_HOST")
    if env_host:
        yield env_host
        return
    # short path: unix socket paths are limited to 108 bytes
    state = Path(tempfile.mkdtemp(prefix="xc-dockerd-"))
    sock = state / "docker.sock"
    (state / "root").mkdir()
    (state / "exec").mkdir()
    log = open(state / "dockerd.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([
        "dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
        "--data-root", str(state / "root"), "--exec-root", str(state / "exec"),
        "--pidfile", str(state / "dockerd.pid"), "-H", f"unix://{sock}",
        "--insecure-registry", "127.0.0.0/8",
    ], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    host = f"unix://{sock}"
    client = _docker_client()
    assert client is not None
    try:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([client, "version"], env=dict(os.environ, DOCKER_HOST=host),
                               capture_output=True)
            if r.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start:\n"
                            + (state / "dockerd.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        umount_below(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """A static HTTP server on 127.0.0.1 for ``ADD <url>`` (both builders fetch from it)."""
    handler = functools.partial(_QuietHandler, directory=str(CORPUS / "_http"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def harness(docker_host: str, http_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    from xarch.builder.bootstrap import BootstrapOptions, bootstrap
    from xarch.oci.platform import Platform
    from xarch.transports.copy import copy_image
    from xarch.transports.remote.options import RegistryOptions
    from xarch.transports.resolve import open_sink, open_source, parse_location
    from xarch.transports.store import LocalStore

    home = tmp_path_factory.mktemp("conformance-home")
    old = os.environ.get("XARCH_HOME")
    os.environ["XARCH_HOME"] = str(home)
    reg = start_registry(tmp_path_factory.mktemp("conformance-registry"))
    try:
        store = LocalStore(home / "store")
        store.content.init()
        res = bootstrap(store.content, BootstrapOptions(
            platforms=tuple(Platform.parse(p) for p in DEFAULT_PLATFORMS), variant="extract",
            include=("busybox-static",), busybox_links=True, source_date_epoch=EPOCH,
        ))
        store.set_name("conformance-base/busybox:bookworm", res.root)
        opts = RegistryOptions()
        src = open_source(parse_location("conformance-base/busybox:bookworm", default_store=store))
        sink = open_sink(parse_location(f"docker://{reg.url}/base/busybox:bookworm",
                                        registry_options=opts))
        try:
            copy_image(src, sink)
        finally:
            sink.close()
            src.close()
        client = _docker_client()
        assert client is not None
        h = Harness(store, reg.url, DockerCli(client, docker_host),
                    tmp_path_factory.mktemp("conformance-work"), http_url, opts)
        try:
            yield h
        finally:
            h.cleanup()
    finally:
        reg.stop()
        if old is None:
            os.environ.pop("XARCH_HOME", None)
        else:
            os.environ["XARCH_HOME"] = old
        with contextlib.suppress(OSError):
            umount_below(home)
