from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import UsageError
from xarch.executor.mounts import Mount, clean_target, to_spec_mounts
from xarch.executor.spec import DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, runtime_spec
from xarch.oci.platform import Platform

AMD64 = Platform.parse("linux/amd64")


def spec(**kw):
    base = dict(
        args=["/bin/sh", "-c", "true"],
        env=["PATH=/usr/bin:/bin"],
        cwd="/",
        user=(0, 0, ()),
        hostname="buildkitsandbox",
        rootfs="/tmp/rootfs",
        platform=AMD64,
    )
    base.update(kw)
    return runtime_spec(**base)  # type: ignore[arg-type,unused-ignore]


def by_dest(s: dict) -> dict[str, dict]:
    return {m["destination"]: m for m in s["mounts"]}


def test_basic_document() -> None:
    s = spec(user=(1000, 1000, (27, 100)), cwd="/work", readonly_rootfs=True)
    assert s["ociVersion"] == "1.0.2"
    p = s["process"]
    assert p["args"] == ["/bin/sh", "-c", "true"]
    assert p["cwd"] == "/work"
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [27, 100]}
    assert p["terminal"] is False
    assert p["noNewPrivileges"] is False
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
    assert p["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert p["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in p["capabilities"]["bounding"]
    assert len(DEFAULT_CAPABILITIES) == 14
    assert s["root"] == {"path": "/tmp/rootfs", "readonly": True}
    assert s["hostname"] == "buildkitsandbox"
    assert "cgroupsPath" not in s["linux"]


def test_default_mounts_and_devices() -> None:
    s = spec()
    m = by_dest(s)
    for d in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert d in m
    assert m["/dev"]["type"] == "tmpfs"
    assert "ro" in m["/sys"]["options"]
    assert "newinstance" in m["/dev/pts"]["options"]
    devs = {d["path"]: (d["major"], d["minor"]) for d in s["linux"]["devices"]}
    assert devs == {
        "/dev/null": (1, 3),
        "/dev/zero": (1, 5),
        "/dev/full": (1, 7),
        "/dev/random": (1, 8),
        "/dev/urandom": (1, 9),
        "/dev/tty": (5, 0),
    }
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert s["linux"]["maskedPaths"] == list(MASKED_PATHS)
    assert "/proc/kcore" in s["linux"]["maskedPaths"]
    assert s["linux"]["readonlyPaths"] == list(READONLY_PATHS)
    assert "/proc/sys" in s["linux"]["readonlyPaths"]


@pytest.mark.parametrize(
    ("network", "has_netns"),
    [("sandbox", False), ("host", False), ("none", True)],
)
def test_network_namespaces(network: str, has_netns: bool) -> None:
    ns = {n["type"] for n in spec(network=network)["linux"]["namespaces"]}
    assert {"pid", "ipc", "uts", "mount"} <= ns
    assert ("network" in ns) is has_netns


def test_unknown_network_rejected() -> None:
    with pytest.raises(UsageError, match="network"):
        spec(network="bridge")


def test_resolv_and_hosts_bind_readonly() -> None:
    m = by_dest(spec(resolv_conf="/run/x/resolv.conf", hosts_file="/run/x/hosts"))
    assert m["/etc/resolv.conf"] == {
        "destination": "/etc/resolv.conf",
        "type": "bind",
        "source": "/run/x/resolv.conf",
        "options": ["rbind", "ro"],
    }
    assert m["/etc/hosts"]["source"] == "/run/x/hosts"
    assert "ro" in m["/etc/hosts"]["options"]


def test_user_mounts() -> None:
    mounts = [
        Mount("cache", "/var/cache/xarch/abc", "/root/.cache/go-build"),
        Mount("secret", "/dev/shm/xarch-secrets-1/tok", "/run/secrets/tok"),
        Mount("tmpfs", "", "/tmp/scratch", options=("size=10m",)),
        Mount("bind", "/ctx", "/src", readonly=True),
        Mount("bind", "/ctx2", "/src/sub"),
    ]
    s = spec(mounts=mounts)
    m = by_dest(s)
    cache = m["/root/.cache/go-build"]
    assert cache["type"] == "bind" and cache["source"] == "/var/cache/xarch/abc"
    assert "rw" in cache["options"] and "rbind" in cache["options"]
    secret = m["/run/secrets/tok"]
    assert secret["options"][-1] == "ro"
    assert {"nosuid", "nodev", "noexec"} <= set(secret["options"])
    tmp = m["/tmp/scratch"]
    assert tmp["type"] == "tmpfs" and "size=10m" in tmp["options"]
    assert m["/src"]["options"][-1] == "ro"
    dests = [x["destination"] for x in s["mounts"]]
    assert dests.index("/src") < dests.index("/src/sub")
    # user mounts come after the system ones, so they can shadow e.g. /tmp
    assert dests.index("/dev/mqueue") < dests.index("/src")


def test_secret_is_readonly_even_if_asked_rw() -> None:
    (entry,) = to_spec_mounts([Mount("secret", "/dev/shm/s/x", "/run/secrets/x", readonly=False)])
    assert entry["options"][-1] == "ro"
    assert "rw" not in entry["options"]


@pytest.mark.parametrize(
    ("mount_args", "match"),
    [
        (("bind", "relative/src", "/x"), "absolute host path"),
        (("bind", "/src", "x"), "absolute"),
        (("bind", "", "/x"), "needs a source"),
        (("nfs", "/a", "/x"), "unknown mount type"),
        (("bind", "/a", "/"), "root filesystem"),
    ],
)
def test_bad_mounts(mount_args: tuple[str, str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        Mount(*mount_args)  # type: ignore[arg-type,unused-ignore]


def test_duplicate_targets_rejected() -> None:
    with pytest.raises(UsageError, match="mounted once"):
        to_spec_mounts([Mount("bind", "/a", "/x"), Mount("tmpfs", "", "/x/")])


def test_bad_inputs() -> None:
    with pytest.raises(UsageError):
        spec(args=[])
    with pytest.raises(UsageError, match="NAME=value"):
        spec(env=["NOEQUALS"])
    with pytest.raises(UsageError, match="absolute"):
        spec(cwd="work")
    with pytest.raises(UsageError, match="capability"):
        spec(capabilities=["chown"])


def test_personality_only_for_32bit_sibling() -> None:
    s386 = spec(platform=Platform.parse("linux/386"), host=AMD64)
    assert s386["linux"]["personality"] == {"domain": "LINUX32"}
    s_arm = spec(platform=Platform.parse("linux/arm/v7"), host=Platform.parse("linux/arm64"))
    assert s_arm["linux"]["personality"] == {"domain": "LINUX32"}
    assert "personality" not in spec(platform=Platform.parse("linux/arm64"), host=AMD64)["linux"]
    assert "personality" not in spec(platform=AMD64, host=AMD64)["linux"]


def test_custom_capabilities_deduplicated() -> None:
    caps = spec(capabilities=["CAP_CHOWN", "CAP_CHOWN", "CAP_SYS_ADMIN"])["process"]["capabilities"]
    assert caps["bounding"] == ["CAP_CHOWN", "CAP_SYS_ADMIN"]


@given(st.text(alphabet="/.ab", min_size=1, max_size=30))
def test_clean_target_never_escapes(raw: str) -> None:
    try:
        t = clean_target(raw)
    except UsageError:
        return
    assert t.startswith("/") and not t.startswith("//")
    assert ".." not in t.split("/")
    assert t == posixpath.normpath(t)
    assert t != "/"
