from __future__ import annotations

import os
from pathlib import Path

import pytest


def _xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.xarch", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@pytest.fixture
def xattrs(tmp_path: Path) -> None:
    if not _xattrs_supported(tmp_path):
        pytest.skip("user xattrs not supported on the test filesystem")


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def build_tree(root: Path, *, with_xattrs: bool = False, with_devices: bool = False) -> None:
    """A tree with every object type a layer can carry."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("box\n")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.chmod(root / "etc/passwd", 0o600)
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(os.urandom(70_000))
    os.chmod(root / "bin/tool", 0o4755)
    os.link(root / "bin/tool", root / "bin/tool-alias")
    os.symlink("tool", root / "bin/t")
    os.symlink("/etc/hostname", root / "hn")
    long_dir = root / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 90)).write_text("long name")
    (root / "unicodé.txt").write_text("ü")
    (root / "empty").mkdir(mode=0o700)
    os.chmod(root / "empty", 0o1777)
    (root / "zero").write_bytes(b"")
    os.mkfifo(root / "fifo")
    if with_xattrs:
        os.setxattr(root / "bin/tool", "user.note", b"\x00\xffbinary")
        os.setxattr(root / "etc", "user.dir", b"d")
    if with_devices:
        os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))  # char
        os.mknod(root / "loop", 0o660 | 0o060000, os.makedev(7, 0))  # block
        if os.geteuid() == 0:
            os.chown(root / "etc/passwd", 1000, 1001)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            os.utime(
                os.path.join(dirpath, n), (1_700_000_000, 1_700_000_000), follow_symlinks=False
            )


def snapshot(root: Path, *, whole_seconds: bool = False) -> dict[str, tuple[object, ...]]:
    """Everything a layer round trip must preserve, per path (symlink mtimes excluded)."""
    import hashlib
    import stat

    from xarch.archive.tarwriter import read_xattrs

    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            mtime: int | None = st.st_mtime_ns
            if whole_seconds:
                mtime = st.st_mtime_ns // 1_000_000_000
            if stat.S_ISLNK(st.st_mode):
                mtime = None
            out[rel] = (oct(st.st_mode), st.st_uid, st.st_gid, mtime, extra, read_xattrs(p))
    return out
