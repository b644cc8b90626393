"""Every Dockerfile instruction, really built: image config fields and the final filesystem."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from tests.builder.conftest import BuildEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o640
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# -- FROM -----------------------------------------------------------------------------------


def test_from_scratch(benv: BuildEnv, tmp_path: Path) -> None:
    r = benv.build(tmp_path, "FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "A"})
    cfg = benv.config(r)
    assert cfg["config"]["Env"] == [DEFAULT_PATH]
    assert "Cmd" not in cfg["config"]
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    names = [m.name for m in benv.layer_members(r)]
    assert names == ["a.txt"]
    assert r.runs == 0


def test_from_stage_inherits_fs_and_config(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base} AS one
ENV FROM_ONE=1
RUN echo one > /one
FROM one AS two
RUN cat /one > /two && echo "$FROM_ONE" >> /two
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "two").read_text() == "one\n1\n"
    assert "FROM_ONE=1" in benv.config(r)["config"]["Env"]


def test_from_platform_pins_the_base(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"FROM --platform=linux/arm64 {benv.base}\nRUN uname -m > /m\n"
    r = benv.build(tmp_path, df, platforms=("linux/amd64",))
    fs = benv.rootfs(r, tmp_path / "fs", next(iter(benv.manifests(r.root))))
    assert (fs / "m").read_text() == "aarch64\n"


# -- RUN ------------------------------------------------------------------------------------


def test_run_shell_and_exec_forms(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN echo "shell $((1+2))" > /shell
RUN ["/bin/sh", "-c", "echo exec > /exec"]
RUN ["/bin/echo", "$HOME"]
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "shell").read_text() == "shell 3\n"
    assert (fs / "exec").read_text() == "exec\n"
    logs = [e.detail for e in benv.events if e.kind == "log"]
    assert "$HOME" in logs  # exec form: no shell, no expansion
    assert r.runs == 3
    hist = [h["created_by"] for h in benv.config(r)["history"]]
    assert 'RUN /bin/sh -c echo "shell $((1+2))" > /shell # buildkit' in hist
    assert "RUN /bin/sh -c echo exec > /exec # buildkit" in hist


def test_run_heredocs(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN <<EOF
echo one > /h1
echo two >> /h1
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /h2
EOF
RUN cat <<EOT > /h3
hello $((2*3))
EOT
RUN <<EOF sh
echo piped > /h4
EOF
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "h1").read_text() == "one\ntwo\n"
    assert (fs / "h2").read_text().startswith("script /dev/pipes/")
    assert (fs / "h3").read_text() == "hello 6\n"
    assert (fs / "h4").read_text() == "piped\n"
    assert not (fs / "dev" / "pipes").exists()


# -- COPY / ADD -----------------------------------------------------------------------------


CTX: dict[str, str | bytes] = {
    "a.txt": "A",
    "b.txt": "B",
    "c.md": "C",
    "dir/x": "X",
    "dir/sub/y": "Y",
    "src/app/main.c": "main",
    "src/lib/util.c": "util",
    "src/lib/util.h": "hdr",
}


def test_copy_context_rules(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
COPY a.txt /renamed
COPY a.txt /into/
COPY *.txt /wild/
COPY dir /contents
COPY dir/ /contents2/
COPY nomatch* /none/
WORKDIR /work
COPY b.txt rel/
COPY c.md .
"""
    r = benv.build(tmp_path, df, CTX)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "renamed").read_text() == "A"
    assert (fs / "into" / "a.txt").read_text() == "A"
    assert sorted(os.listdir(fs / "wild")) == ["a.txt", "b.txt"]
    assert (fs / "contents" / "x").read_text() == "X"
    assert (fs / "contents" / "sub" / "y").read_text() == "Y"
    assert not (fs / "contents" / "dir").exists()
    assert (fs / "contents2" / "sub" / "y").read_text() == "Y"
    assert (fs / "none").is_dir() and os.listdir(fs / "none") == []
    assert (fs / "work" / "rel" / "b.txt").read_text() == "B"
    assert (fs / "work" / "c.md").read_text() == "C"
    st = os.lstat(fs / "renamed")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_copy_from_stage_index_and_image(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base} AS builder
RUN mkdir -p /out && echo built > /out/f && chown 123:456 /out/f
FROM scratch
COPY --from=builder /out/f /from-stage
COPY --from=0 /out /from-index
COPY --from={benv.base} /bin/busybox /bb
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "from-stage").read_text() == "built\n"
    assert (fs / "from-index" / "f").read_text() == "built\n"
    assert (fs / "bb").stat().st_size > 100_000
    members = {m.name: m for layer in range(3) for m in benv.layer_members(r, index=layer)}
    assert (members["from-stage"].uid, members["from-stage"].gid) == (123, 456)  # owner kept


def test_copy_chown_names_chmod(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN mkdir -p /etc && echo 'app:x:1234:2345::/home/app:/bin/sh' >> /etc/passwd \\
 && echo 'grp:x:2345:' >> /etc/group && echo 'other:x:777:' >> /etc/group
COPY --chown=app a.txt /c1
COPY --chown=app:other a.txt /c2
COPY --chown=10:20 dir /c3
COPY --chmod=0741 a.txt /c4
COPY --chmod=700 --chown=app:grp dir /c5
"""
    r = benv.build(tmp_path, df, CTX)
    m = {x.name: x for i in range(1, 6) for x in benv.layer_members(r, index=-i)}
    assert (m["c1"].uid, m["c1"].gid) == (1234, 2345)  # a user alone: its primary group (BuildKit)
    assert (m["c2"].uid, m["c2"].gid) == (1234, 777)
    assert (m["c3/sub/y"].uid, m["c3/sub/y"].gid) == (10, 20)
    assert (m["c3"].uid, m["c3"].gid) == (10, 20)
    assert stat.S_IMODE(m["c4"].mode) == 0o741
    assert stat.S_IMODE(m["c5/sub/y"].mode) == 0o700
    assert stat.S_IMODE(m["c5/sub"].mode) == 0o700
    assert (m["c5/x"].uid, m["c5/x"].gid) == (1234, 2345)


def test_copy_link_parents_exclude(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""# syntax=docker/dockerfile:1.7-labs
FROM {benv.base}
RUN mkdir -p /linked && echo keep > /linked/old
COPY --link a.txt /linked/
COPY --parents src/*/*.c /p/
COPY --parents ./src/./lib/util.h /q/
COPY --exclude=**/*.h --exclude=app src /ex/
"""
    r = benv.build(tmp_path, df, CTX)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "linked" / "a.txt").read_text() == "A"
    assert (fs / "linked" / "old").read_text() == "keep\n"
    assert (fs / "p" / "src" / "app" / "main.c").read_text() == "main"
    assert (fs / "p" / "src" / "lib" / "util.c").read_text() == "util"
    assert not (fs / "p" / "src" / "lib" / "util.h").exists()
    assert (fs / "q" / "lib" / "util.h").read_text() == "hdr"
    assert sorted(os.listdir(fs / "ex")) == ["lib"]
    assert sorted(os.listdir(fs / "ex" / "lib")) == ["util.c"]
    # --link: the layer holds only what COPY wrote (not the pre-existing /linked/old)
    linked = [m.name for m in benv.layer_members(r, index=-4)]
    assert "linked/old" not in linked and "linked/a.txt" in linked


def test_add_unpacks_local_tar_and_copies_plain_files(benv: BuildEnv, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "pkg.tar.gz": _tgz({"pkg/bin/tool": b"#!/bin/sh\necho tool\n", "pkg/README": b"readme"}),
        "plain.txt": "plain",
    }
    df = f"""FROM {benv.base}
ADD pkg.tar.gz /opt/
ADD plain.txt /opt/plain.txt
ADD --unpack=false pkg.tar.gz /raw/
"""
    r = benv.build(tmp_path, df, files)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "opt" / "pkg" / "README").read_bytes() == b"readme"
    assert stat.S_IMODE((fs / "opt" / "pkg" / "bin" / "tool").stat().st_mode) == 0o640
    assert (fs / "opt" / "plain.txt").read_text() == "plain"
    assert not (fs / "opt" / "pkg.tar.gz").exists()
    assert (fs / "raw" / "pkg.tar.gz").read_bytes() == files["pkg.tar.gz"]


def test_copy_heredoc(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
COPY <<EOF /etc/greeting
hello $NOPE
EOF
COPY --chmod=755 <<one.sh <<two.sh /scripts/
echo one
one.sh
echo two
two.sh
RUN sh /scripts/one.sh > /out1 && /scripts/two.sh > /out2
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "etc" / "greeting").read_text() == "hello \n"  # expanded like a shell heredoc
    assert (fs / "out1").read_text() == "one\n"
    assert (fs / "out2").read_text() == "two\n"
    assert stat.S_IMODE((fs / "scripts" / "two.sh").stat().st_mode) == 0o755


# -- metadata instructions ------------------------------------------------------------------


def test_env_arg_build_arg(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""ARG BASE={benv.base}
FROM $BASE
ARG VERSION=1.0
ARG FROM_CLI
ENV APP_VERSION=$VERSION A="x y" B=${{VERSION}}-suffix
RUN echo "$VERSION $FROM_CLI $APP_VERSION" > /args
ENV PATH=/opt/bin:$PATH
"""
    r = benv.build(tmp_path, df, build_args={"FROM_CLI": "cli", "VERSION": "2.0"})
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "args").read_text() == "2.0 cli 2.0\n"
    env = benv.config(r)["config"]["Env"]
    assert "APP_VERSION=2.0" in env and "A=x y" in env and "B=2.0-suffix" in env
    assert "PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert not any(e.startswith(("VERSION=", "FROM_CLI=")) for e in env)  # ARGs stay out
    hist = [h["created_by"] for h in benv.config(r)["history"]]
    assert any(h.startswith("RUN |2 VERSION=2.0 FROM_CLI=cli /bin/sh -c") for h in hist), hist


def test_workdir_created_relative_and_owned(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN mkdir -p /etc && echo 'app:x:1234:2345::/home/app:/bin/sh' >> /etc/passwd
WORKDIR /srv
WORKDIR app
RUN pwd > /pwd
USER app
WORKDIR sub
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "pwd").read_text() == "/srv/app\n"
    assert benv.config(r)["config"]["WorkingDir"] == "/srv/app/sub"
    st = os.lstat(fs / "srv" / "app" / "sub")
    assert (st.st_uid, st.st_gid) == (1234, 2345)  # created as the USER, as BuildKit's Mkdir


def test_user_resolution(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN mkdir -p /etc /tmp && chmod 1777 /tmp && echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd \\
 && echo 'app:x:1234:2345::/home/app:/bin/sh' >> /etc/passwd \\
 && echo 'grp:x:2345:' > /etc/group && echo 'extra:x:3000:app' >> /etc/group
USER app
RUN id -u > /tmp/uid && id -g > /tmp/gid && id -G > /tmp/groups
USER 4321:55
RUN id -u > /tmp/uid2 && id -g > /tmp/gid2
USER app:extra
RUN id -g > /tmp/gid3
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "tmp" / "uid").read_text() == "1234\n"
    assert (fs / "tmp" / "gid").read_text() == "2345\n"
    assert (fs / "tmp" / "groups").read_text().split() == ["2345", "3000"]
    assert (fs / "tmp" / "uid2").read_text() == "4321\n"
    assert (fs / "tmp" / "gid2").read_text() == "55\n"
    assert (fs / "tmp" / "gid3").read_text() == "3000\n"
    assert benv.config(r)["config"]["User"] == "app:extra"
    uid_entry = next(m for m in benv.layer_members(r, index=-3) if m.name == "tmp/uid")
    assert (uid_entry.uid, uid_entry.gid) == (1234, 2345)


def test_metadata_instructions(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
EXPOSE 80 443/udp 8080/TCP
LABEL org.example.a=1 "b c"="d e"
VOLUME /data /cache
VOLUME ["/logs"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=4 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
RUN echo $0 $- > /shell-flags
CMD echo hi
MAINTAINER someone
"""
    r = benv.build(tmp_path, df, labels={"from.cli": "yes"})
    cfg = benv.config(r)
    c = cfg["config"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}, "8080/tcp": {}}
    assert c["Labels"] == {"org.example.a": "1", "b c": "d e", "from.cli": "yes"}
    assert c["Volumes"] == {"/data": {}, "/cache": {}, "/logs": {}}
    assert c["StopSignal"] == "SIGQUIT"
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 30_000_000_000, "Timeout": 5_000_000_000, "StartPeriod": 60_000_000_000,
        "Retries": 4,
    }
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert cfg["author"] == "someone"
    fs = benv.rootfs(r, tmp_path / "fs")
    assert "e" in (fs / "shell-flags").read_text().split()[1]
    hist = cfg["history"]
    assert len([h for h in hist if not h.get("empty_layer")]) == len(cfg["rootfs"]["diff_ids"])
    assert all(h.get("comment") == "buildkit.dockerfile.v0" for h in hist[1:])


def test_entrypoint_cmd_interplay(benv: BuildEnv, tmp_path: Path) -> None:
    base_df = f'FROM {benv.base}\nCMD ["base-cmd"]\n'
    benv.build(tmp_path, base_df, tag="xarch-test/ep-base:1")
    r1 = benv.build(tmp_path, 'FROM xarch-test/ep-base:1\nENTRYPOINT ["/bin/echo"]\n')
    c1 = benv.config(r1)["config"]
    assert c1["Entrypoint"] == ["/bin/echo"] and "Cmd" not in c1  # ENTRYPOINT resets inherited CMD
    r2 = benv.build(tmp_path, 'FROM xarch-test/ep-base:1\nCMD ["x"]\nENTRYPOINT echo ep\n')
    c2 = benv.config(r2)["config"]
    assert c2["Entrypoint"] == ["/bin/sh", "-c", "echo ep"] and c2["Cmd"] == ["x"]  # same-stage CMD kept
    r3 = benv.build(tmp_path, 'FROM xarch-test/ep-base:1\nENTRYPOINT ["a"]\nCMD ["b"]\n')
    c3 = benv.config(r3)["config"]
    assert (c3["Entrypoint"], c3["Cmd"]) == (["a"], ["b"])


def test_onbuild_triggers_run_in_child(benv: BuildEnv, tmp_path: Path) -> None:
    parent = f"""FROM {benv.base}
ONBUILD COPY trigger.txt /from-trigger
ONBUILD RUN echo "ran as child" > /onbuild-ran
"""
    rp = benv.build(tmp_path, parent, tag="xarch-test/onbuild-parent:1")
    assert benv.config(rp)["config"]["OnBuild"] == [
        "COPY trigger.txt /from-trigger", 'RUN echo "ran as child" > /onbuild-ran',
    ]
    fs_p = benv.rootfs(rp, tmp_path / "fsp")
    assert not (fs_p / "onbuild-ran").exists()
    rc = benv.build(tmp_path, "FROM xarch-test/onbuild-parent:1\nRUN cat /onbuild-ran > /child\n",
                    {"trigger.txt": "T"})
    fs = benv.rootfs(rc, tmp_path / "fsc")
    assert (fs / "from-trigger").read_text() == "T"
    assert (fs / "child").read_text() == "ran as child\n"
    assert not benv.config(rc)["config"].get("OnBuild")


@pytest.fixture
def http_server(tmp_path: Path):
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_add_url_with_checksum(benv: BuildEnv, tmp_path: Path, http_server) -> None:
    import hashlib

    from xarch.errors import XarchError

    www, url = http_server
    (www / "tool.tar.gz").write_bytes(_tgz({"inside": b"x"}))
    (www / "data.txt").write_text("remote data")
    os.utime(www / "data.txt", (1600000000, 1600000000))
    digest = "sha256:" + hashlib.sha256(b"remote data").hexdigest()
    df = f"""FROM {benv.base}
ADD --checksum={digest} {url}/data.txt /dl/
ADD {url}/data.txt /renamed.txt
ADD --chmod=644 {url}/tool.tar.gz /archives/
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    st = os.lstat(fs / "dl" / "data.txt")
    assert (fs / "dl" / "data.txt").read_text() == "remote data"
    assert stat.S_IMODE(st.st_mode) == 0o600 and int(st.st_mtime) == 1600000000
    assert (fs / "renamed.txt").read_text() == "remote data"
    assert (fs / "archives" / "tool.tar.gz").is_file()  # remote archives are not unpacked
    assert stat.S_IMODE((fs / "archives" / "tool.tar.gz").stat().st_mode) == 0o644
    # a changed remote file busts the cache of the unpinned ADD (and only that one)
    (www / "tool.tar.gz").write_bytes(_tgz({"inside": b"y"}))
    benv.build(tmp_path, df)
    ran = [e.name for e in benv.events if e.kind == "done" and "ADD" in e.name]
    assert len(ran) == 1 and "tool.tar.gz" in ran[0], ran
    bad = df.replace(digest, "sha256:" + "0" * 64)
    with pytest.raises(XarchError) as ei:
        benv.build(tmp_path, bad)
    assert "digest mismatch" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(XarchError) as ei:
        benv.build(tmp_path, f"FROM {benv.base}\nADD {url}/missing.txt /m\n")
    assert "404" in str(ei.value)


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o751
            ti.uid, ti.gid = 42, 43
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_add_archive_formats_and_chown(benv: BuildEnv, tmp_path: Path) -> None:
    import gzip

    files: dict[str, str | bytes] = {
        "a.tar": _tar({"plain/f": b"p"}, "w"),
        "b.tar.bz2": _tar({"bz/f": b"b"}, "w:bz2"),
        "c.tar.xz": _tar({"xz/f": b"x"}, "w:xz"),
        "d.tgz": _tar({"owned/f": b"o"}, "w:gz"),
        "notatar.gz": gzip.compress(b"just text"),
    }
    df = f"""FROM {benv.base}
ADD a.tar b.tar.bz2 c.tar.xz /x/
ADD --chown=7:8 d.tgz /y/
ADD notatar.gz /z/
"""
    r = benv.build(tmp_path, df, files)
    fs = benv.rootfs(r, tmp_path / "fs")
    for sub in ("plain", "bz", "xz"):
        st = os.lstat(fs / "x" / sub / "f")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (42, 43, 0o751), sub
    st = os.lstat(fs / "y" / "owned" / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o751)
    assert (fs / "z" / "notatar.gz").read_bytes() == files["notatar.gz"]


def test_copy_honours_dockerignore(benv: BuildEnv, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        ".dockerignore": "*.log\n!keep.log\nsecrets/\n", "a.log": "a", "keep.log": "k",
        "secrets/key": "s", "src/x": "x",
    }
    r = benv.build(tmp_path, f"FROM {benv.base}\nCOPY . /ctx/\n", files)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert sorted(os.listdir(fs / "ctx")) == [".dockerignore", "Dockerfile", "keep.log", "src"]
    from xarch.errors import XarchError

    with pytest.raises(XarchError) as ei:
        benv.build(tmp_path, f"FROM {benv.base}\nCOPY secrets/key /k\n", files)
    assert "secrets/key" in str(ei.value)
