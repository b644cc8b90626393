from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xarch.errors import StoreError, UsageError
from xarch.executor.mounts import (
    CacheStore,
    SecretStore,
    missing_targets,
    remove_mount_stubs,
    write_network_files,
)


def test_missing_targets_and_stub_removal(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("x")
    stubs = missing_targets(root, ["/etc/hosts", "/run/secrets/tok", "/cache/a"])
    assert stubs == ["/run/secrets/tok", "/cache/a", "/run/secrets", "/cache", "/run"]
    # simulate what the runtime creates as mount points
    (root / "run" / "secrets").mkdir(parents=True)
    (root / "run" / "secrets" / "tok").touch()
    (root / "cache" / "a").mkdir(parents=True)
    (root / "run" / "keep").write_text("written by the step")
    removed = remove_mount_stubs(root, stubs)
    assert not (root / "run" / "secrets").exists()
    assert not (root / "cache").exists()
    assert (root / "run" / "keep").read_text() == "written by the step"
    assert "/run" not in removed and "/cache" in removed
    assert (root / "etc" / "hosts").read_text() == "x"


def test_stub_with_content_is_kept(tmp_path: Path) -> None:
    root = tmp_path
    stubs = missing_targets(root, ["/out/file"])
    (root / "out").mkdir()
    (root / "out" / "file").write_text("data")
    assert remove_mount_stubs(root, stubs) == []
    assert (root / "out" / "file").read_text() == "data"


def test_secret_store_tmpfs_mode_and_cleanup() -> None:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    with SecretStore() as store:
        p = store.add("npm_token", b"s3cret", uid=os.getuid(), gid=os.getgid())
        assert p.read_bytes() == b"s3cret"
        assert stat.S_IMODE(p.stat().st_mode) == 0o400
        assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
        m = store.mount("npm_token", "/run/secrets/npm_token")
        assert m.type == "secret" and m.effective_readonly
        with pytest.raises(UsageError):
            store.add("../escape", b"x")
        with pytest.raises(FileExistsError):
            store.add("npm_token", b"again")
        d = store.dir
    assert not d.exists()


def test_secret_store_refuses_disk(tmp_path: Path) -> None:
    # tmp_path is on a disk filesystem: secrets must not land there
    with pytest.raises(StoreError, match="tmpfs"):
        SecretStore(tmp_path)


def test_cache_store_ids_are_flat(tmp_path: Path) -> None:
    cs = CacheStore(tmp_path)
    a = cs.dir_for("/root/.cache/go-build")
    b = cs.dir_for("../../etc")
    assert a.parent == tmp_path and b.parent == tmp_path
    assert a != b and a.is_dir()
    assert cs.dir_for("/root/.cache/go-build") == a


def test_network_files(tmp_path: Path) -> None:
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\n")
    files = write_network_files(tmp_path / "net", hostname="box", network="none", host_resolv=host)
    assert "127.0.0.53" not in files.resolv_conf.read_text()
    assert "10.0.0.2" in files.resolv_conf.read_text()
    assert "box" in files.hosts.read_text()
    files = write_network_files(tmp_path / "net2", network="sandbox", host_resolv=host)
    # sharing the host's netns: a local resolver is reachable and kept
    assert "127.0.0.53" in files.resolv_conf.read_text()
