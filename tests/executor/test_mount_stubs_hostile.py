"""Mount-stub clean-up never leaves the container's root (the class of CVE-2024-23652).

After a step, the runtime's empty mount-point stubs are removed again. A step can turn any
directory on a stub's way into a symlink to a host path; an image can ship such symlinks
before the step. In every variant the host canaries (empty files and directories, exactly
what the clean-up removes) must survive, and stubs inside the root are still removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from xarch.executor.mounts import MountStubs, missing_targets, remove_mount_stubs

TARGETS = ["/etc/hosts", "/etc/resolv.conf", "/run/secrets/token", "/cache/go/build"]


def _canaries(host: Path) -> list[Path]:
    """Empty files and dirs at every name a stub could take, outside the root."""
    made = []
    for t in TARGETS:
        parts = t.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = host.joinpath(*parts[:i])
            if i == len(parts) and t != "/cache/go/build":
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
            else:
                p.mkdir(parents=True, exist_ok=True)
            made.append(p)
    return made


def _simulate_runtime(root: Path, stubs: list[str]) -> None:
    """What runc does for missing targets: dirs for parents, an empty file or dir at the end."""
    for s in sorted(stubs, key=lambda p: p.count("/")):
        p = root / s.lstrip("/")
        if s in ("/etc/hosts", "/etc/resolv.conf", "/run/secrets/token"):
            p.touch()
        else:
            p.mkdir(exist_ok=True)


@pytest.mark.parametrize(
    "swap",
    [
        ("etc", "{host}/etc"),  # absolute link straight to the host's dir
        ("etc", "../../../../../../../../{host_rel}/etc"),  # climbs with ..
        ("run", "{host}/run"),
        ("run/secrets", "{host}/run/secrets"),  # an intermediate level
        ("cache/go", "{host}/cache/go"),
        ("cache", "/"),  # to the root: still inside
    ],
)
def test_step_swaps_a_parent_for_a_symlink(tmp_path: Path, swap: tuple[str, str]) -> None:
    root, host = tmp_path / "rootfs", tmp_path / "host"
    root.mkdir()
    canaries = _canaries(host)
    stubs = MountStubs.record(root, TARGETS)
    _simulate_runtime(root, list(stubs.stubs))
    # the step: replace the directory with a symlink (rm -rf x && ln -s /host/x x)
    where, target = swap
    shutil.rmtree(root / where)
    (root / where).symlink_to(target.format(host=host, host_rel=str(host).lstrip("/")))
    stubs.cleanup()
    for c in canaries:
        assert os.path.lexists(c), f"host entry {c} was removed"
    # stubs not under the swapped path are still removed
    for s in stubs.stubs:
        rel = s.strip("/")
        related = rel == where or rel.startswith(where + "/") or where.startswith(rel + "/")
        if not related:
            assert not os.path.lexists(root / rel), s


@pytest.mark.parametrize("link", ["{host}", "/", "../../../../{host_rel}", "{host}/../host"])
def test_image_symlinks_resolve_inside_the_root(tmp_path: Path, link: str) -> None:
    """/etc is a symlink in the image (before the step): the stub the runtime creates is
    inside the root, where runc's in-root resolution puts it, and only that is removed."""
    root, host = tmp_path / "rootfs", tmp_path / "host"
    root.mkdir()
    canaries = _canaries(host)
    (root / "etc").symlink_to(link.format(host=host, host_rel=str(host).lstrip("/")))
    stubs = missing_targets(root, ["/etc/hosts"])
    for s in stubs:
        # a physical in-root path: never through the symlink
        assert not (root / s.lstrip("/")).parent.is_symlink() or s.count("/") == 1
    # runc would create these inside the root
    for s in sorted(stubs, key=lambda p: p.count("/")):
        p = root / s.lstrip("/")
        if s.endswith("hosts"):
            p.touch()
        else:
            p.mkdir()
    remove_mount_stubs(root, stubs)
    for c in canaries:
        assert os.path.lexists(c), f"host entry {c} was removed"


def test_stub_replaced_by_a_symlink_to_a_host_file(tmp_path: Path) -> None:
    root, host = tmp_path / "rootfs", tmp_path / "host"
    root.mkdir()
    canaries = _canaries(host)
    stubs = MountStubs.record(root, ["/etc/hosts"])
    _simulate_runtime(root, list(stubs.stubs))
    (root / "etc" / "hosts").unlink()
    (root / "etc" / "hosts").symlink_to(host / "etc" / "hosts")
    stubs.cleanup()
    assert all(os.path.lexists(c) for c in canaries)
    assert (root / "etc" / "hosts").is_symlink()  # the step's own link is kept
