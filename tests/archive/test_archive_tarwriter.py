from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.archive.conftest import build_tree, requires_root

from xarch.archive import EntryType, TarEntry, entries_from_tree, write_layer, write_tar
from xarch.archive.entry import sort_key
from xarch.archive.tarwriter import clamp_mtime


def _tar(root: Path, epoch: int | None = None) -> bytes:
    buf = io.BytesIO()
    write_tar(entries_from_tree(root, source_date_epoch=epoch), buf)
    return buf.getvalue()


def test_same_tree_twice_gives_same_bytes_and_digests(tmp_path: Path) -> None:
    build_tree(tmp_path / "t")
    assert _tar(tmp_path / "t") == _tar(tmp_path / "t")
    a = write_layer(entries_from_tree(tmp_path / "t"), compression="gzip")
    b = write_layer(entries_from_tree(tmp_path / "t"), compression="gzip")
    assert (a.blob_digest, a.diff_id, a.size) == (b.blob_digest, b.diff_id, b.size)


def test_copied_tree_with_newer_mtimes_equal_under_epoch(tmp_path: Path) -> None:
    build_tree(tmp_path / "a")
    # a copy (new inodes, same hardlink structure) with newer mtimes
    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    for dirpath, dirnames, filenames in os.walk(tmp_path / "b"):
        for n in [*dirnames, *filenames]:
            os.utime(
                os.path.join(dirpath, n), (1_800_000_000, 1_800_000_000), follow_symlinks=False
            )
    epoch = 1_750_000_000
    assert _tar(tmp_path / "a") != _tar(tmp_path / "b")
    assert _tar(tmp_path / "b", epoch) != _tar(tmp_path / "b")
    # a's mtimes (1.7e9) are older than the epoch: unchanged; b's (1.8e9) are clamped to it
    for dirpath, dirnames, filenames in os.walk(tmp_path / "a"):
        for n in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, n), (epoch, epoch), follow_symlinks=False)
    assert _tar(tmp_path / "a") == _tar(tmp_path / "b", epoch)


def test_clamp_never_raises_and_keeps_older() -> None:
    assert clamp_mtime(5, None) == 5
    assert clamp_mtime(5, 10) == 5
    assert clamp_mtime(50, 10) == 10
    assert clamp_mtime(-3, 0) == -3


def test_tar_structure(tmp_path: Path) -> None:
    build_tree(tmp_path / "t")
    data = _tar(tmp_path / "t", epoch=1_650_000_000)
    assert data.endswith(b"\x00" * 1024) and len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=sort_key)
    by = {m.name: m for m in members}
    assert by["bin"].isdir() and by["bin/tool"].isreg() and by["bin/tool"].mode == 0o4755
    assert by["bin/tool-alias"].islnk() and by["bin/tool-alias"].linkname == "bin/tool"
    assert by["bin/tool-alias"].size == 0
    assert by["bin/t"].issym() and by["bin/t"].linkname == "tool"
    assert by["hn"].linkname == "/etc/hostname"
    assert by["fifo"].isfifo()
    assert by["empty"].mode == 0o1777
    assert by["unicodé.txt"].isreg()
    long = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 90
    assert by[long].isreg() and tf is not None
    for m in members:
        assert m.uname == "" and m.gname == ""
        assert m.mtime == 1_650_000_000  # all files are newer than the epoch
    # raw header checks: directory names carry a trailing slash, ustar magic
    raw_names = [
        data[off : off + 100].rstrip(b"\x00")
        for off in range(0, len(data) - 1024, 512)
        if data[off + 257 : off + 263] == b"ustar\x00" and data[off + 156 : off + 157] == b"5"
    ]
    assert b"bin/" in raw_names and b"etc/" in raw_names


def test_gnu_tar_lists_our_output(tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("no tar binary")
    build_tree(tmp_path / "t")
    (tmp_path / "l.tar").write_bytes(_tar(tmp_path / "t"))
    out = subprocess.run(
        ["tar", "-tf", str(tmp_path / "l.tar")], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert "bin/" in out and "bin/tool" in out and "d" * 60 + "/" + "e" * 60 + "/" + "f" * 90 in out
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "l.tar"), "-C", str(dest)], check=True)
    assert (dest / "bin/tool").read_bytes() == (tmp_path / "t/bin/tool").read_bytes()


def test_xattrs_become_schily_pax_records(tmp_path: Path, xattrs: None) -> None:
    build_tree(tmp_path / "t", with_xattrs=True)
    with tarfile.open(fileobj=io.BytesIO(_tar(tmp_path / "t"))) as tf:
        tool = tf.getmember("bin/tool")
        etc = tf.getmember("etc")
    value = tool.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape")
    assert value == b"\x00\xffbinary"
    assert etc.pax_headers["SCHILY.xattr.user.dir"] == "d"


@requires_root
def test_devices_and_numeric_ids(tmp_path: Path) -> None:
    build_tree(tmp_path / "t", with_devices=True)
    with tarfile.open(fileobj=io.BytesIO(_tar(tmp_path / "t"))) as tf:
        null, loop, pw = tf.getmember("null"), tf.getmember("loop"), tf.getmember("etc/passwd")
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert loop.isblk() and (loop.devmajor, loop.devminor) == (7, 0)
    assert (pw.uid, pw.gid, pw.uname, pw.gname) == (1000, 1001, "", "")


def test_entries_from_list_large_ids_and_negative_mtime() -> None:
    entries = [
        TarEntry("a", EntryType.DIR, mode=0o755),
        TarEntry("a/f", EntryType.FILE, uid=10_000_000, gid=3, mtime=-5, size=3, data=b"abc"),
        TarEntry("a/cap", EntryType.FILE, xattrs=(("security.capability", b"\x01\x00\x00\x02"),)),
    ]
    buf = io.BytesIO()
    write_tar(entries, buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        f = tf.getmember("a/f")
        assert (f.uid, f.gid, f.mtime) == (10_000_000, 3, -5)
        assert tf.extractfile(f).read() == b"abc"  # type: ignore[union-attr]
        cap = tf.getmember("a/cap").pax_headers["SCHILY.xattr.security.capability"]
        assert cap.encode("utf-8", "surrogateescape") == b"\x01\x00\x00\x02"


def test_entry_validation() -> None:
    from xarch.errors import InputError

    with pytest.raises(InputError):
        TarEntry("/abs", EntryType.FILE)
    with pytest.raises(InputError):
        TarEntry("d/", EntryType.DIR)
    with pytest.raises(InputError):
        TarEntry("f", EntryType.FILE, size=2, data=b"a")


def test_file_shrinking_during_export_is_an_error(tmp_path: Path) -> None:
    from xarch.errors import InputError

    f = tmp_path / "f"
    f.write_bytes(b"12345")
    e = TarEntry("f", EntryType.FILE, size=10, source=f)
    with pytest.raises(InputError, match="shrank"):
        write_tar([e], io.BytesIO())
