"""The worker's state directory (extracted layers: setuid files, devices) is ours and 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xarch.builder.worker import private_dir
from xarch.errors import StoreError


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        d = private_dir(tmp_path / "a" / "builder")
    finally:
        os.umask(old)
    assert _mode(d) == 0o700


@pytest.mark.parametrize("mode", [0o755, 0o711, 0o750, 0o777, 0o701])
def test_looser_modes_are_tightened(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "builder"
    d.mkdir()
    os.chmod(d, mode)
    private_dir(d)
    assert _mode(d) == 0o700


def test_someone_elses_directory_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    d = tmp_path / "builder"
    d.mkdir(mode=0o700)
    os.chown(d, 12345, 12345)
    with pytest.raises(StoreError, match="owned by uid 12345"):
        private_dir(d)


def test_other_users_cannot_reach_a_setuid_file_below(tmp_path: Path) -> None:
    """What the 0700 is for: another user cannot even stat an extracted setuid shell."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to act as another user")
    os.chmod(tmp_path, 0o755)  # the home's parents are traversable, as in the report
    d = private_dir(tmp_path / "builder")
    layer = d / "layers" / "sha256-x" / "bin"
    layer.mkdir(parents=True)
    os.chmod(d / "layers", 0o755)
    os.chmod(layer.parent, 0o755)
    os.chmod(layer, 0o755)
    sh = layer / "sh"
    shutil.copy("/bin/true", sh)
    os.chmod(sh, 0o4755)
    r = subprocess.run(
        # through a shell: setpriv itself may still hold its capabilities while it execs
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c",
         '"$0"', str(sh)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)


def test_prune_recovery_drops_the_legacy_layers_dir(tmp_path: Path) -> None:
    from xarch.builder.worker import recover_home

    home = private_dir(tmp_path / "builder")
    (home / "owners").mkdir()
    (home / "layers" / "sha256-old").mkdir(parents=True)
    recover_home(home)
    assert not (home / "layers").exists()


def test_prune_recovery_keeps_legacy_layers_while_an_owner_lives(tmp_path: Path) -> None:
    from xarch.builder.worker import Lease, recover_home
    from xarch.snapshot.overlay import Snapshotter

    home = private_dir(tmp_path / "builder")
    lease = Lease(home / "owners")  # a live build
    (home / "layers" / "sha256-old").mkdir(parents=True)
    try:
        recover_home(home)
        assert (home / "layers" / "sha256-old").is_dir()
    finally:
        lease.release(Snapshotter(home / "snapshots"))
