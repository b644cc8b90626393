"""Session fixtures of the differential tier: a buildkitd, a registry, a base image, a harness.

buildkitd: the reference BuildKit v0.32 (helpers/buildkit.py): ``$XARCH_TEST_BUILDKIT_HOST``
(scripts/test.sh starts one and exports it) or one started here with ``start.sh`` into a
private state dir, stopped at the end.

Base image: ``xarch bootstrap`` (busybox-static, variant extract) for the corpus platforms,
pushed by xarch to a Debian docker-registry on 127.0.0.1:5000-5009 (the ports buildkitd's
config allows plain HTTP for), so both builders ``FROM`` the very same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import diffids
from conformance.harness import CORPUS, DEFAULT_PLATFORMS, BuildKitCli, Harness
from helpers import buildkit
from helpers.registry import registry_available
from helpers.system import IN_CI, missing, umount_below

EPOCH = 1700000000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: differential conformance tier (xarch vs BuildKit v0.32)"
    )


def _why_unusable() -> str | None:
    if os.geteuid() != 0:
        return "root (the differential tier runs buildkitd, overlayfs, runc)"
    for tool in ("mmdebstrap", "busybox", "runc"):
        if shutil.which(tool) is None:
            return tool
    if not registry_available():
        return "docker-registry"
    return None


@pytest.fixture(scope="session")
def buildkit_cli() -> Iterator[BuildKitCli]:
    why = _why_unusable()
    if why:
        missing(why)
    exe = buildkit.buildctl()
    env_host = os.environ.get(buildkit.HOST_ENV)
    if env_host:
        yield BuildKitCli(exe, env_host)
        return
    # short path: unix socket paths are limited to 108 bytes
    state = Path(tempfile.mkdtemp(prefix="xc-buildkitd-"))
    try:
        daemon = buildkit.start(state)
    except RuntimeError as e:
        shutil.rmtree(state, ignore_errors=True)
        if not IN_CI:  # a developer's machine: say why, as for a missing tool
            pytest.skip(f"the reference buildkitd did not start: {e}")
        pytest.fail(str(e), pytrace=False)
    try:
        yield BuildKitCli(exe, daemon.addr)
    finally:
        daemon.stop()
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


@pytest.fixture(scope="session")
def git_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``git daemon`` on 127.0.0.1 for ``ADD <git repository>`` (both builders clone from it):
    ``repo.git`` holds a commit of ``corpus/_git/repo/`` (fixed author and dates) tagged
    ``v1``, and ``main`` one commit later (adds ``VERSION``)."""
    from builder.gitserver import commit, git_daemon, make_repo, run_git

    if shutil.which("git") is None:
        missing("git")
    base = tmp_path_factory.mktemp("conformance-git")
    work = base.parent / (base.name + "-work")
    src = CORPUS / "_git" / "repo"
    files = {str(p.relative_to(src)): p.read_text() for p in sorted(src.rglob("*")) if p.is_file()}
    modes = {rel: 0o755 for rel in files if os.access(src / rel, os.X_OK)}
    make_repo(work, files, modes=modes)
    # commits new to every session: a long-lived buildkitd must not reuse a checkout it made
    # for an earlier session's port (its git snapshots are keyed by commit, not by remote)
    run_git("commit", "-q", "--amend", "-m", f"corpus {os.getpid()} {time.time_ns()}", cwd=work)
    run_git("tag", "v1", cwd=work)
    # main one commit past v1: a --depth=1 fetch of one never brings the other's tag along
    commit(work, {"VERSION": "2\n"})
    run_git("clone", "-q", "--bare", str(work), str(base / "repo.git"), cwd=base)
    with git_daemon(base) as url:
        yield url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def harness(buildkit_cli: BuildKitCli, http_url: str, git_url: str,
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
    reg = buildkit.start_registry(tmp_path_factory.mktemp("conformance-registry"))
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
        epoch = os.environ.get(diffids.EPOCH_ENV)
        h = Harness(store, reg.url, buildkit_cli, tmp_path_factory.mktemp("conformance-work"),
                    http_url, opts, epoch=int(epoch) if epoch else None, git_url=git_url)
        yield h
        report_to = os.environ.get(diffids.REPORT_ENV)
        if report_to:
            Path(report_to).write_text(diffids.report(
                pair
                for name, built in sorted(h.built().items())
                for platform, ours, theirs in diffids.by_platform(built.xarch, built.buildkit)
                for pair in diffids.pair_layers(name, platform, ours.config, theirs.config)
            ))
    finally:
        reg.stop()
        if old is None:
            os.environ.pop("XARCH_HOME", None)
        else:
            os.environ["XARCH_HOME"] = old
        with contextlib.suppress(OSError):
            umount_below(home)
