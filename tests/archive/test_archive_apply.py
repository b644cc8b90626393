from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import cast

import pytest
from tests.archive.conftest import build_tree, requires_root
from tests.archive.conftest import snapshot as _snapshot
from tests.archive.helpers import make_tar

from xarch.archive import apply_layer, entries_from_tree, write_layer
from xarch.archive.apply import ApplyMode
from xarch.errors import IntegrityError, StoreError, UsageError


def _layer(root: Path, compression: str = "gzip") -> bytes:
    r = write_layer(entries_from_tree(root), compression=compression)
    assert r.data is not None
    return r.data


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_preserves_everything(tmp_path: Path, compression: str) -> None:
    src = tmp_path / "src"
    build_tree(src, with_xattrs=_user_xattrs_ok(tmp_path), with_devices=os.geteuid() == 0)
    blob = _layer(src, compression)
    dest = tmp_path / "dest"
    dest.mkdir()
    res = apply_layer(io.BytesIO(blob), dest)
    assert res.warnings == ()
    assert _snapshot(dest) == _snapshot(src)
    # hardlink really is one inode
    assert os.stat(dest / "bin/tool").st_ino == os.stat(dest / "bin/tool-alias").st_ino


def _user_xattrs_ok(tmp: Path) -> bool:
    p = tmp / "probe"
    p.write_bytes(b"")
    try:
        os.setxattr(p, "user.x", b"1")
        return True
    except OSError:
        return False
    finally:
        p.unlink()


def test_diff_id_is_verified(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    r = write_layer(entries_from_tree(src), compression="gzip")
    assert r.data is not None
    (tmp_path / "ok").mkdir()
    res = apply_layer(io.BytesIO(r.data), tmp_path / "ok", diff_id=r.diff_id)
    assert res.diff_id == r.diff_id and res.uncompressed_size == r.uncompressed_size
    (tmp_path / "bad").mkdir()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(IntegrityError, match="diffID mismatch"):
        apply_layer(io.BytesIO(r.data), tmp_path / "bad", diff_id=wrong)


def test_corrupt_stream_is_integrity_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    blob = bytearray(_layer(src, "gzip"))
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "d").mkdir()
    with pytest.raises(IntegrityError):
        apply_layer(io.BytesIO(bytes(blob)), tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(IntegrityError):
        apply_layer(io.BytesIO(bytes(blob[: len(blob) // 3])), tmp_path / "e")


def test_bad_mode_and_root(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        apply_layer(io.BytesIO(b""), tmp_path, mode=cast(ApplyMode, "merge"))
    with pytest.raises(StoreError):
        apply_layer(io.BytesIO(b""), tmp_path / "missing")


def _lower(root: Path) -> None:
    (root / "etc/conf.d").mkdir(parents=True)
    (root / "etc/conf.d/a").write_text("a")
    (root / "etc/conf.d/b").write_text("b")
    (root / "etc/keep").write_text("keep")
    (root / "var/cache/x").mkdir(parents=True)
    (root / "var/cache/x/blob").write_text("blob")
    (root / "gone").write_text("gone")


def test_whiteouts_and_opaque_dirs_flatten(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _lower(root)
    layer = make_tar(
        ("file", ".wh.gone", ""),
        ("dir", "var", ""),
        ("file", "var/.wh.cache", ""),  # deletes a whole directory
        ("dir", "etc", ""),
        ("dir", "etc/conf.d", ""),
        ("file", "etc/conf.d/new", "new"),  # written before the opaque marker: must survive
        ("file", "etc/conf.d/.wh..wh..opq", ""),
        ("file", "etc/.wh.does-not-exist", ""),
        ("file", ".wh..wh.plnk", ""),  # AUFS bookkeeping: ignored
    )
    apply_layer(io.BytesIO(layer), root)
    assert not (root / "gone").exists()
    assert not (root / "var/cache").exists() and (root / "var").is_dir()
    assert sorted(os.listdir(root / "etc/conf.d")) == ["new"]
    assert (root / "etc/keep").read_text() == "keep"
    for p in root.rglob("*"):
        assert not p.name.startswith(".wh.")


def test_whiteout_of_dot_dot_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "sibling").write_text("x")
    with pytest.raises(IntegrityError):
        apply_layer(io.BytesIO(make_tar(("file", ".wh...", ""))), root)
    assert (tmp_path / "sibling").exists()


def test_later_layer_replaces_types(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(
        io.BytesIO(make_tar(("dir", "x", ""), ("file", "x/f", "1"), ("file", "y", "2"))), root
    )
    apply_layer(io.BytesIO(make_tar(("file", "x", "now a file"), ("dir", "y", ""))), root)
    assert (root / "x").read_text() == "now a file"
    assert (root / "y").is_dir()


def test_write_through_lower_absolute_symlink_stays_in_root(tmp_path: Path) -> None:
    """containerd semantics: symlinks from earlier layers resolve with the root as '/'."""
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("/usr/lib", root / "lib")
    apply_layer(io.BytesIO(make_tar(("file", "lib/libc.so", "elf"))), root)
    assert (root / "usr/lib/libc.so").read_text() == "elf"
    assert (root / "lib").is_symlink()


@requires_root
def test_overlay_mode_converts_whiteouts(tmp_path: Path) -> None:
    layer_dir = tmp_path / "l1"
    layer_dir.mkdir()
    layer = make_tar(
        ("file", ".wh.gone", ""),
        ("dir", "etc", ""),
        ("file", "etc/.wh..wh..opq", ""),
        ("file", "etc/new", "n"),
        ("file", "opq-no-dir-entry/.wh..wh..opq", ""),
    )
    apply_layer(io.BytesIO(layer), layer_dir, mode="overlay")
    st = os.lstat(layer_dir / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(layer_dir / "etc", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(layer_dir / "opq-no-dir-entry", "trusted.overlay.opaque") == b"y"
    assert (layer_dir / "etc/new").read_text() == "n"
    assert not any(p.name.startswith(".wh.") for p in layer_dir.rglob("*"))


def test_overlay_xattrs_from_archive_are_dropped(tmp_path: Path) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("d")
        ti.type = tarfile.DIRTYPE
        ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
        tf.addfile(ti)
    (tmp_path / "r").mkdir()
    res = apply_layer(io.BytesIO(buf.getvalue()), tmp_path / "r")
    assert any("dropped overlayfs xattr" in w for w in res.warnings)
    with pytest.raises(OSError):
        os.getxattr(tmp_path / "r/d", "trusted.overlay.redirect")


def test_devices_skipped_with_warning_when_not_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xarch.archive.apply as ap

    monkeypatch.setattr(ap, "_is_root", lambda: False)
    (tmp_path / "r").mkdir()
    seen: list[str] = []
    res = apply_layer(
        io.BytesIO(make_tar(("chr", "null", ""), ("file", "f", "x"))),
        tmp_path / "r",
        on_warning=seen.append,
    )
    assert not (tmp_path / "r/null").exists() and (tmp_path / "r/f").exists()
    assert seen == list(res.warnings) and "needs root" in seen[0]


@requires_root
def test_security_capability_round_trip(tmp_path: Path) -> None:
    import struct

    from xarch.archive import EntryType, TarEntry

    # VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE
    cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    entries = [
        TarEntry(
            "ping",
            EntryType.FILE,
            mode=0o755,
            uid=1000,
            size=4,
            data=b"\x7fELF",
            xattrs=(("security.capability", cap),),
        )
    ]
    r = write_layer(entries, compression="gzip")
    assert r.data is not None
    (tmp_path / "r").mkdir()
    res = apply_layer(io.BytesIO(r.data), tmp_path / "r")
    assert res.warnings == ()
    # set after chown (which would clear it)
    assert os.getxattr(tmp_path / "r/ping", "security.capability") == cap
    assert os.stat(tmp_path / "r/ping").st_uid == 1000


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_applies_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    """Layers from other tools (GNU long-name records, pax, plain ustar) apply the same way."""
    import shutil
    import subprocess

    if shutil.which("tar") is None:
        pytest.skip("no tar binary")
    src = tmp_path / "src"
    build_tree(src, with_devices=os.geteuid() == 0)
    if fmt == "ustar":  # ustar cannot hold the 211-byte name nor non-ASCII
        shutil.rmtree(src / ("d" * 60))
    cmd = ["tar", f"--format={fmt}", "--numeric-owner", "-C", str(src), "-cf", "-", "."]
    blob = subprocess.run(cmd, check=True, capture_output=True).stdout
    dest = tmp_path / "dest"
    dest.mkdir()
    res = apply_layer(io.BytesIO(blob), dest)
    assert res.warnings == ()
    assert _snapshot(dest) == _snapshot(src)


def test_whiteout_never_removes_this_layers_own_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "-x").write_text("lower")
    # '-' sorts before '.', so a sorted layer may carry '-x' before '.wh.-x'
    apply_layer(io.BytesIO(make_tar(("file", "-x", "mine"), ("file", ".wh.-x", ""))), root)
    assert (root / "-x").read_text() == "mine"


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_corrupt_or_truncated_zstd_and_plain(tmp_path: Path, compression: str) -> None:
    src = tmp_path / "src"
    build_tree(src)
    blob = _layer(src, compression)
    (tmp_path / "a").mkdir()
    with pytest.raises(IntegrityError):
        apply_layer(io.BytesIO(blob[: len(blob) // 2]), tmp_path / "a")
    if compression == "zstd":
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0xFF
        (tmp_path / "b").mkdir()
        with pytest.raises(IntegrityError):
            apply_layer(io.BytesIO(bytes(bad)), tmp_path / "b")


@requires_root
def test_hardlink_entry_header_applies_to_the_shared_inode(tmp_path: Path) -> None:
    """As BuildKit v0.32 unpacks an ADDed tar (checked against it; corpus case add-tar-odd):
    a hardlink entry's owner, mode and times become the shared inode's, the last header
    wins; a hardlink to a symlink takes only the owner."""
    def entry(name: str, kind: bytes, mode: int, owner: int, mtime: int, link: str = "",
              data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, owner, owner + 1, mtime, link
        ti.size = len(data)
        return ti, data

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in (
            entry("f", tarfile.REGTYPE, 0o600, 7, 1_700_000_000, data=b"x"),
            entry("hl", tarfile.LNKTYPE, 0o4755, 3, 1_600_000_000, "f"),
            entry("hl2", tarfile.LNKTYPE, 0o604, 5, 1_500_000_000, "hl"),
            entry("s", tarfile.SYMTYPE, 0o777, 0, 1_700_000_000, "f"),
            entry("hs", tarfile.LNKTYPE, 0o600, 11, 1_400_000_000, "s"),
        ):
            tf.addfile(ti, io.BytesIO(data) if data else None)
    dest = tmp_path / "d"
    dest.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), dest)
    st = os.lstat(dest / "f")
    assert st.st_nlink == 3
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o604, 5, 6, 1_500_000_000)
    sl = os.lstat(dest / "s")
    assert stat.S_ISLNK(sl.st_mode) and sl.st_nlink == 2
    assert (sl.st_uid, sl.st_gid, sl.st_mtime) == (11, 12, 1_700_000_000)
