"""RUN --mount (cache, bind, tmpfs, secret) and --network, really built."""

from __future__ import annotations

import gzip
import os
import uuid
from pathlib import Path

import pytest
from tests.builder.conftest import BuildEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cache_mount_persists_and_stays_out_of_the_image(benv: BuildEnv, tmp_path: Path) -> None:
    cache_id = f"c-{uuid.uuid4().hex[:8]}"

    def df(nonce: str) -> str:
        return (
            f"FROM {benv.base}\n"
            f"RUN --mount=type=cache,id={cache_id},target=/var/cache/app "
            f"echo {nonce} >> /var/cache/app/log && wc -l < /var/cache/app/log > /count\n"
        )

    r1 = benv.build(tmp_path, df("first"))
    fs1 = benv.rootfs(r1, tmp_path / "fs1")
    assert (fs1 / "count").read_text().strip() == "1"
    r2 = benv.build(tmp_path, df("second"))
    fs2 = benv.rootfs(r2, tmp_path / "fs2")
    assert (fs2 / "count").read_text().strip() == "2"  # the first build's file was still there
    assert not (fs2 / "var" / "cache" / "app").exists()
    names = [m.name for m in benv.layer_members(r2)]
    # not even the mount stub dirs; /proc and /sys, which the base lacks, stay as BuildKit
    # leaves them (docs/compat.md)
    assert names == ["count", "proc", "sys"], names


def test_bind_mounts_from_stage_and_context(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base} AS gen
RUN mkdir /out && echo generated > /out/g
FROM {benv.base}
RUN --mount=type=bind,from=gen,source=/out,target=/in cat /in/g > /from-stage
RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /from-ctx
RUN --mount=target=/ctx ls /ctx | sort | tr '\\n' ' ' > /ctx-list
RUN --mount=type=bind,source=.,target=/rw,rw echo scribble > /rw/new && test ! -e /rw/new || echo ok > /rw-ok
"""
    r = benv.build(tmp_path, df, {"data.txt": "data\n", "sub/f": "f"})
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "from-stage").read_text() == "generated\n"
    assert (fs / "from-ctx").read_text() == "data\n"
    assert (fs / "ctx-list").read_text().split() == ["Dockerfile", "data.txt", "sub"]
    assert not (fs / "in").exists() and not (fs / "ctx").exists() and not (fs / "mnt").exists()
    assert not (fs / "rw").exists()
    ctx_dirs = list(tmp_path.glob("ctx-*"))
    assert ctx_dirs and not any((d / "new").exists() for d in ctx_dirs)  # rw bind: writes discarded


def test_tmpfs_mount(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/f \\
 && grep ' /scratch ' /proc/mounts | cut -d' ' -f3 > /fstype
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "fstype").read_text() == "tmpfs\n"
    assert not (fs / "scratch").exists()


def test_secret_visible_in_run_absent_from_layers_and_history(
    benv: BuildEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xarch.builder.api import Secret

    value = f"s3cr3t-{uuid.uuid4().hex}"
    env_value = f"envs3cr3t-{uuid.uuid4().hex}"
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(value)
    monkeypatch.setenv("XARCH_TEST_ENV_SECRET", env_value)
    df = f"""FROM {benv.base}
RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = "{value[:7]}$(cat /run/secrets/tok | cut -c8-)" \\
 && cat /run/secrets/tok | wc -c > /len && cp /run/secrets/tok /dev/null && echo ok > /ok
RUN --mount=type=secret,id=tok,target=/etc/custom,mode=0440,uid=7 stat -c '%a %u' /etc/custom > /custom
RUN --mount=type=secret,id=envtok,env=MY_TOKEN test "$MY_TOKEN" = "$(echo {env_value[:9]})$(echo "$MY_TOKEN" | cut -c10-)" \\
 && echo "$MY_TOKEN" | wc -c > /envlen
RUN --mount=type=secret,id=absent true
"""
    r = benv.build(tmp_path, df, secrets=(
        Secret("tok", src=str(secret_file)), Secret("envtok", env="XARCH_TEST_ENV_SECRET"),
    ))
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "ok").read_text() == "ok\n"
    assert int((fs / "len").read_text()) == len(value)
    assert (fs / "custom").read_text() == "440 7\n"
    assert int((fs / "envlen").read_text()) == len(env_value) + 1
    assert not (fs / "run" / "secrets").exists()
    assert not (fs / "etc" / "custom").exists()
    # every layer blob (compressed and uncompressed), every config, every manifest
    for man, _cfg, raw_cfg in benv.manifests(r.root).values():
        assert value.encode() not in raw_cfg and env_value.encode() not in raw_cfg
        assert value.encode() not in man.raw
        for layer in man.layers:
            blob = benv.store.content.read_bytes(layer.digest)
            tar = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
            for secret in (value, env_value):
                assert secret.encode() not in blob and secret.encode() not in tar
    # nor in progress events / logs
    assert not any(value in str(e.detail) or env_value in str(e.detail) for e in benv.events)
    # nor anywhere in the build home (extracted layers, snapshots, cache index)
    home = benv.store.root.parent
    for dirpath, _dirs, files in os.walk(home):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink() and p.stat().st_size < 50_000_000:
                data = p.read_bytes()
                assert value.encode() not in data, p
                assert env_value.encode() not in data, p


def test_required_secret_missing_fails(benv: BuildEnv, tmp_path: Path) -> None:
    from xarch.errors import XarchError

    df = f"FROM {benv.base}\nRUN --mount=type=secret,id=needed,required=true cat /run/secrets/needed\n"
    with pytest.raises(XarchError) as ei:
        benv.build(tmp_path, df)
    msg = str(ei.value)
    assert "needed" in msg and "\n" not in msg


def test_network_none_and_default(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN --network=none ls /sys/class/net | tr '\\n' ' ' > /none-ifaces
RUN ls /sys/class/net | tr '\\n' ' ' > /default-ifaces
RUN --network=host ls /sys/class/net | tr '\\n' ' ' > /host-ifaces
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "none-ifaces").read_text().split() == ["lo"]
    host_ifaces = sorted(os.listdir("/sys/class/net"))
    assert sorted((fs / "host-ifaces").read_text().split()) == host_ifaces
    # the default network is the host's (BuildKit's oci worker with net=host)
    assert sorted((fs / "default-ifaces").read_text().split()) == host_ifaces


def test_build_network_none_applies_to_every_run(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"FROM {benv.base}\nRUN ls /sys/class/net | tr '\\n' ' ' > /ifaces\n"
    r = benv.build(tmp_path, df, network="none")
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "ifaces").read_text().split() == ["lo"]


def test_bind_from_context_respects_dockerignore(benv: BuildEnv, tmp_path: Path) -> None:
    df = f"""FROM {benv.base}
RUN --mount=target=/c ls -a /c | sort | tr '\\n' ' ' > /seen
"""
    r = benv.build(tmp_path, df, {".dockerignore": "secret.env\n*.log\n", "secret.env": "TOKEN=1",
                                  "app.log": "l", "main.c": "m"})
    fs = benv.rootfs(r, tmp_path / "fs")
    assert (fs / "seen").read_text().split() == [".", "..", ".dockerignore", "Dockerfile", "main.c"]


def test_bind_from_context_content_is_in_the_cache_key(benv: BuildEnv, tmp_path: Path) -> None:
    from tests.builder.conftest import write_context

    df = f"FROM {benv.base}\nRUN --mount=type=bind,source=data.txt,target=/d cat /d > /out-{uuid.uuid4().hex}\n"
    ctx = write_context(tmp_path / "ctx", df, {"data.txt": "one"})
    r1 = benv.build(tmp_path, "", context=ctx)
    assert r1.runs == 1
    (ctx / "data.txt").write_text("two")
    r2 = benv.build(tmp_path, "", context=ctx)
    assert r2.runs == 1, "the RUN read a changed context file but was served from the cache"
    fs = benv.rootfs(r2, tmp_path / "fs")
    assert [p.read_text() for p in fs.glob("out-*")] == ["two"]


def test_cache_mount_seeded_from_stage_locked_and_readonly(benv: BuildEnv, tmp_path: Path) -> None:
    cid = f"seed-{uuid.uuid4().hex[:8]}"
    df = f"""FROM {benv.base} AS seed
RUN mkdir -p /seed && echo seeded > /seed/s
FROM {benv.base}
RUN --mount=type=cache,id={cid},from=seed,source=/seed,target=/c,sharing=locked cat /c/s > /got && echo more > /c/m
RUN --mount=type=cache,id={cid},target=/c,ro ls /c | tr '\\n' ' ' > /ls && (echo x > /c/w 2>/dev/null && echo writable > /ro || echo readonly > /ro)
"""
    r = benv.build(tmp_path, df, platforms=("linux/amd64", "linux/arm64"))
    for p in ("linux/amd64", "linux/arm64"):
        fs = benv.rootfs(r, tmp_path / p.replace("/", "_"), p)
        assert (fs / "got").read_text() == "seeded\n"
        assert (fs / "ls").read_text().split() == ["m", "s"]
        assert (fs / "ro").read_text() == "readonly\n"


@pytest.mark.parametrize(
    ("swap", "mount"),
    [
        # mv, not rm: a directory holding mount points moves (with them), it cannot be
        # removed; the runtime created these dirs in this step (no lower copy: rename works)
        ("mv /etc /etc.old && ln -s {canary}/etc /etc", ""),  # the automatic /etc/hosts mount
        ("mv /etc /etc.old && ln -s ../../../../../..{canary}/etc /etc", ""),
        ("mv /run /run.old && ln -s {canary}/run /run", "--mount=type=tmpfs,target=/run/secrets/tok "),
        ("mv /c /c.old && ln -s {canary}/c /c", "--mount=type=cache,target=/c/d/e "),
        ("mv /t/u /t/u.old && ln -s {canary}/t/u /t/u", "--mount=type=tmpfs,target=/t/u/v "),
        ("mv /etc /etc.old && ln -s / /etc", ""),  # to the root: still inside, nothing lost
    ],
)
def test_run_that_symlinks_a_stub_parent_leaves_the_host_alone(
    benv: BuildEnv, tmp_path: Path, swap: str, mount: str
) -> None:
    """CVE-2024-23652 class: the step replaces a mount stub's parent with a symlink to a host
    path; the stub clean-up after the step must not remove the host's (empty) entries."""
    canary = tmp_path / f"canary-{uuid.uuid4().hex[:8]}"
    made = []
    for rel, kind in [("etc", "d"), ("etc/hosts", "f"), ("etc/resolv.conf", "f"), ("run", "d"),
                      ("run/secrets", "d"), ("run/secrets/tok", "f"), ("c", "d"), ("c/d", "d"),
                      ("c/d/e", "d"), ("t", "d"), ("t/u", "d"), ("t/u/v", "d")]:  # fmt: skip
        p = canary / rel
        p.mkdir(parents=True) if kind == "d" else p.touch()
        made.append(p)
    (canary / "run/secrets/tok").unlink()
    (canary / "run/secrets/tok").mkdir()  # a tmpfs target: a dir stub
    # a base with no /etc, /run, /c, /t: the runtime makes every target's parents as stubs,
    # and the step swaps them for links to the host while its mounts are in place
    df = (
        f"FROM {benv.base} AS b\n"
        "FROM scratch\n"
        "COPY --from=b /bin /bin\n"
        f"RUN {mount}sh -c '{swap.format(canary=canary)}'\n"
    )
    benv.build(tmp_path, df)
    for p in made:
        assert os.path.lexists(p), f"the build removed host entry {p}"
