"""What RUN/COPY layers contain: whiteouts, opaque dirs, links, devices, xattrs, owners, modes."""

from __future__ import annotations

import os
import stat
import struct
import tarfile
from pathlib import Path

import pytest
from tests.builder.conftest import BuildEnv, write_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# sha256 of 1024 zero bytes: the empty tar BuildKit stores for a step that changed nothing
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def _members(benv: BuildEnv, r: object, index: int = -1) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in benv.layer_members(r, index=index)}


def test_whiteouts_and_opaque_directories(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN mkdir -p /d/sub /opq/inner /keep && echo f > /file && echo x > /d/sub/x \\
 && echo o > /opq/old && echo i > /opq/inner/i && echo k > /keep/k
RUN rm /file && rm -rf /d && rm -rf /opq && mkdir /opq && echo new > /opq/new
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert not os.path.lexists(fs / "file")
    assert not os.path.lexists(fs / "d")
    assert sorted(os.listdir(fs / "opq")) == ["new"]
    assert (fs / "keep" / "k").read_text() == "k\n"
    last = _members(benv, r)
    assert ".wh.file" in last and ".wh.d" in last
    assert "opq/.wh..wh..opq" in last and "opq/new" in last
    assert "d/sub/x" not in last and "keep" not in last
    for name in (".wh.file", ".wh.d", "opq/.wh..wh..opq"):
        assert last[name].isfile() and last[name].size == 0


def test_run_layer_holds_only_the_changes(benv: BuildEnv, tmp_path: Path) -> None:
    """Mount points the runtime needs (/etc/hosts, /etc/resolv.conf, mount targets) and
    directories overlayfs merely copied up never reach the layer; /dev, /proc and /sys, on a
    base lacking them, do: 0755 root directories, as BuildKit v0.32 leaves them (the
    differential corpus case run-bare-base checks it against BuildKit)."""
    scratch_df = f"""FROM {benv.base} AS bb
FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo hi > /x"]
"""
    r = benv.build(tmp_path, scratch_df)
    m = _members(benv, r)
    assert sorted(m) == ["dev", "proc", "sys", "x"]
    for d in ("dev", "proc", "sys"):
        assert m[d].isdir() and (m[d].mode & 0o7777, m[d].uid, m[d].gid) == (0o755, 0, 0)
    mounts_df = f"""FROM {benv.base}
RUN --mount=type=cache,target=/var/cache/thing --mount=type=tmpfs,target=/usr/share/t \\
    --mount=type=bind,target=/etc/ctx --mount=type=secret,id=s,required=false echo y > /y
"""
    r2 = benv.build(tmp_path, mounts_df)
    m2 = _members(benv, r2)
    # the base has /dev but no /proc or /sys: those two are its first RUN's
    assert sorted(m2) == ["proc", "sys", "y"]


def test_steps_that_change_nothing_keep_an_empty_layer(benv: BuildEnv, tmp_path: Path) -> None:
    """RUN, WORKDIR and COPY whose snapshot ends up unchanged each get an empty tar as their
    layer and a history entry without empty_layer, as BuildKit v0.32 (corpus cases
    run-mount-tmpfs, workdir-symlink, multistage-chain); WORKDIR / and ENV get none. The
    empty layer's blob is the same on every rebuild."""
    df = f"""FROM {benv.base}
RUN mkdir /real && ln -s /real /link
RUN true
WORKDIR /link
WORKDIR /
RUN --mount=type=tmpfs,target=/tmp echo y > /tmp/gone
ENV A=b
"""
    roots = []
    for _ in range(2):
        r = benv.build(tmp_path, df, no_cache=True, build_args={"SOURCE_DATE_EPOCH": "1700000000"})
        roots.append(str(r.root.digest))
        man = benv.manifests(r.root)["linux/amd64"][0]
        cfg = benv.config(r)
        assert cfg["rootfs"]["diff_ids"][-3:] == [EMPTY_TAR_DIFF_ID] * 3
        assert cfg["rootfs"]["diff_ids"][-4] != EMPTY_TAR_DIFF_ID
        assert len({str(d.digest) for d in man.layers[-3:]}) == 1
        assert benv.layer_tar(man.layers[-1]) == b"\0" * 1024
        tail = {h["created_by"].removesuffix(" # buildkit"): h.get("empty_layer", False)
                for h in cfg["history"][-6:]}
        assert tail == {
            "RUN /bin/sh -c mkdir /real && ln -s /real /link": False,
            "RUN /bin/sh -c true": False, "WORKDIR /link": False, "WORKDIR /": True,
            "RUN /bin/sh -c echo y > /tmp/gone": False, "ENV A=b": True,
        }
    assert roots[0] == roots[1]


def test_copy_link_with_chmod_is_a_plain_copy(benv: BuildEnv, tmp_path: Path) -> None:
    """BuildKit v0.32 makes a link layer only for COPY/ADD --link without --chmod; with one
    the copy goes onto the image (checked against it; corpus cases copy-link-chown, add-link):
    an existing parent keeps its owner and mode, a new one gets the --chmod mode."""
    df = f"""FROM {benv.base}
COPY --link --chown=1:2 a.txt /app/sub/
COPY --link --chmod=0640 a.txt /app/
COPY --link --chmod=0600 a.txt /new/n/
"""
    r = benv.build(tmp_path, df, {"a.txt": "A"})
    linked = _members(benv, r, index=-3)
    assert (linked["app"].uid, linked["app"].gid, linked["app"].mode & 0o7777) == (1, 2, 0o755)
    onto = _members(benv, r, index=-2)
    assert (onto["app"].uid, onto["app"].gid, onto["app"].mode & 0o7777) == (1, 2, 0o755)
    assert onto["app/a.txt"].mode & 0o7777 == 0o640
    new = _members(benv, r, index=-1)
    assert new["new"].mode & 0o7777 == 0o600 and new["new/n"].mode & 0o7777 == 0o600


def test_links_devices_owners_modes(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN mkdir -p /t/sticky && cd /t && echo data > h1 && ln h1 h2 && ln -s /t/h1 abs && ln -s ../t/h1 rel \\
 && mknod null c 1 3 && mknod loop b 7 0 && mkfifo fifo \\
 && touch suid && chown 1001:1002 suid && chmod 4751 suid && chmod 1777 sticky \\
 && touch owned && chown 65534:65533 owned && chmod 0600 owned
"""
    r = benv.build(tmp_path, df)
    m = _members(benv, r)
    assert m["t/h1"].isfile() and m["t/h2"].islnk() and m["t/h2"].linkname == "t/h1"
    assert m["t/abs"].issym() and m["t/abs"].linkname == "/t/h1"
    assert m["t/rel"].issym() and m["t/rel"].linkname == "../t/h1"
    assert m["t/null"].ischr() and (m["t/null"].devmajor, m["t/null"].devminor) == (1, 3)
    assert m["t/loop"].isblk() and (m["t/loop"].devmajor, m["t/loop"].devminor) == (7, 0)
    assert m["t/fifo"].isfifo()
    assert (m["t/suid"].mode & 0o7777, m["t/suid"].uid, m["t/suid"].gid) == (0o4751, 1001, 1002)
    assert m["t/sticky"].mode & 0o7777 == 0o1777
    assert (m["t/owned"].mode & 0o7777, m["t/owned"].uid, m["t/owned"].gid) == (0o600, 65534, 65533)
    assert all(x.uname == "" and x.gname == "" for x in m.values())  # numeric ids only
    # and the final filesystem (layers applied) has them as such
    fs = benv.rootfs(r, tmp_path / "fs")
    st1, st2 = os.lstat(fs / "t" / "h1"), os.lstat(fs / "t" / "h2")
    assert st1.st_ino == st2.st_ino
    assert stat.S_ISCHR(os.lstat(fs / "t" / "null").st_mode)


def _cap_net_bind_service() -> bytes:
    # struct vfs_cap_data, revision 2, effective bit set, permitted = CAP_NET_BIND_SERVICE (10)
    return struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


def test_xattrs_are_kept(benv: BuildEnv, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", f"""FROM {benv.base}
COPY ping /bin/ping-cap
COPY --from={benv.base} /bin/busybox /bb
RUN cp /bin/ping-cap /copied-in-run && echo x >> /bin/ping-cap
""", {"ping": "binary"})
    try:
        os.setxattr(ctx / "ping", "security.capability", _cap_net_bind_service())
        os.setxattr(ctx / "ping", "user.xarch.test", b"hello")
    except OSError as e:
        pytest.skip(f"cannot set xattrs in {ctx}: {e}")
    r = benv.build(tmp_path, "", context=ctx)
    copy_layer = _members(benv, r, index=-3)
    pax = copy_layer["bin/ping-cap"].pax_headers
    assert pax.get("SCHILY.xattr.security.capability", "").encode("utf-8", "surrogateescape") \
        == _cap_net_bind_service() or "SCHILY.xattr.security.capability" in pax, pax
    assert pax.get("SCHILY.xattr.user.xarch.test") == "hello"
    fs = benv.rootfs(r, tmp_path / "fs")
    assert os.getxattr(fs / "bin" / "ping-cap", "user.xarch.test") == b"hello"
    # the RUN modified the file: its copy-up keeps the xattrs, so the new layer has them too
    run_layer = _members(benv, r, index=-1)
    assert run_layer["bin/ping-cap"].pax_headers.get("SCHILY.xattr.user.xarch.test") == "hello"


def test_copy_snapshotter_fallback(benv: BuildEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where overlayfs is missing the worker snapshots by copying: same layers, same rules."""
    from xarch.snapshot import overlay

    orig_init = overlay.Snapshotter.__init__

    def copy_mode(self: overlay.Snapshotter, root: Path, *a: object, **kw: object) -> None:
        kw["mode"] = "copy"
        orig_init(self, root, *a, **kw)

    monkeypatch.setattr(overlay.Snapshotter, "__init__", copy_mode)
    df = f"""FROM {benv.base}
RUN mkdir -p /d/sub /opq && echo f > /file && echo x > /d/sub/x && echo o > /opq/old \\
 && echo data > /h1 && ln /h1 /h2 && ln -s h1 /sym && mknod /null c 1 3
RUN rm /file && rm -rf /d && rm -rf /opq && mkdir /opq && echo new > /opq/new
COPY a.txt /a.txt
RUN --mount=type=cache,target=/var/cache/copymode true
"""
    r = benv.build(tmp_path, df, {"a.txt": "A"}, no_cache=True)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert not os.path.lexists(fs / "file") and not os.path.lexists(fs / "d")
    assert sorted(os.listdir(fs / "opq")) == ["new"]
    assert os.lstat(fs / "h1").st_ino == os.lstat(fs / "h2").st_ino
    assert os.readlink(fs / "sym") == "h1"
    assert stat.S_ISCHR(os.lstat(fs / "null").st_mode)
    assert (fs / "a.txt").read_text() == "A"
    # the cache-mount-only RUN changed nothing: an empty layer, as BuildKit keeps
    assert benv.layer_count(r) == 5
    assert benv.config(r)["rootfs"]["diff_ids"][-1] == EMPTY_TAR_DIFF_ID
    names = set(_members(benv, r, index=2))
    assert {".wh.file", ".wh.d"} <= names


def test_identical_layers_built_concurrently(benv: BuildEnv, tmp_path: Path) -> None:
    """Five platforms produce the same COPY layer at the same time (same diff_id): each is
    stored and extracted once, and every platform can build on it."""
    files: dict[str, str | bytes] = {f"data/f{i}": os.urandom(2048) for i in range(200)}
    df = f"""FROM {benv.base}
COPY data/ /data/
RUN ls /data | wc -l > /count
"""
    from tests.builder.conftest import PLATFORMS

    r = benv.build(tmp_path, df, files, platforms=PLATFORMS, jobs=8)
    diff_ids = {cfg["rootfs"]["diff_ids"][1] for _m, cfg, _raw in benv.manifests(r.root).values()}
    assert len(diff_ids) == 1
    for p in PLATFORMS:
        fs = benv.rootfs(r, tmp_path / p.replace("/", "_"), p)
        assert (fs / "count").read_text().strip() == "200"


def test_scratch_stage_as_mount_and_copy_source(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM scratch AS empty
FROM scratch AS one
COPY f /f
FROM {benv.base}
RUN --mount=from=empty,target=/e ls -A /e | wc -l > /empty-count
RUN --mount=from=one,target=/o cat /o/f > /one
COPY --from=one / /copied/
"""
    r = benv.build(tmp_path, df, {"f": "F"})
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "empty-count").read_text().strip() == "0"
    assert (fs / "one").read_text() == "F"
    assert (fs / "copied" / "f").read_text() == "F"
