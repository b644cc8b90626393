"""The default seccomp filter: Docker-format profiles converted for the OCI runtime spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xarch.errors import InputError
from xarch.executor import seccomp
from xarch.executor.spec import DEFAULT_CAPABILITIES

PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
        {"names": ["new_thing"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}},
        {"names": ["old_thing"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    ],
}  # fmt: skip


def _names(out: dict[str, object]) -> set[str]:
    return {n for r in out["syscalls"] for n in r["names"]}  # type: ignore[attr-defined]


def test_amd64_with_the_default_capabilities() -> None:
    out = seccomp.convert(PROFILE, arch="amd64", capabilities=DEFAULT_CAPABILITIES,
                          kernel_release="6.1.0-13-amd64")  # fmt: skip
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and out["defaultErrnoRet"] == 38
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = _names(out)
    assert {"read", "write", "arch_prctl", "chroot", "clone", "old_thing", "bpf"} <= names
    assert not names & {"set_tls", "mount", "new_thing"}
    clone = next(r for r in out["syscalls"] if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 2114060288, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]  # fmt: skip
    bpf = next(r for r in out["syscalls"] if r["names"] == ["bpf"])
    assert bpf == {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}


def test_arch_caps_and_kernel_select_rules() -> None:
    out = seccomp.convert(PROFILE, arch="arm64", capabilities=["CAP_SYS_ADMIN"],
                          kernel_release="4.4.0")  # fmt: skip
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = _names(out)
    assert {"set_tls", "mount"} <= names
    assert not names & {"arch_prctl", "clone", "chroot", "old_thing"}
    s390 = seccomp.convert(PROFILE, arch="s390x", capabilities=(), kernel_release="6.1")
    assert s390["architectures"] == ["SCMP_ARCH_S390X"] and "clone" not in _names(s390)


@pytest.mark.parametrize("bad", [{"syscalls": []}, {"defaultAction": "ALLOW"},
                                 {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "x"}]}])
def test_malformed_profiles_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InputError):
        seccomp.convert(bad, arch="amd64", capabilities=(), kernel_release="6.1")


def test_profile_choice(tmp_path: Path) -> None:
    assert seccomp.profile_path({seccomp.PROFILE_ENV: "unconfined"}) is None
    f = tmp_path / "p.json"
    f.write_text(json.dumps(PROFILE))
    assert seccomp.profile_path({seccomp.PROFILE_ENV: str(f)}) == f
    out = seccomp.default_profile(DEFAULT_CAPABILITIES, arch="amd64",
                                  env={seccomp.PROFILE_ENV: str(f)})  # fmt: skip
    assert out is not None and "arch_prctl" in _names(out)
    assert seccomp.default_profile((), env={seccomp.PROFILE_ENV: "unconfined"}) is None
    with pytest.raises(InputError, match="cannot read seccomp profile"):
        seccomp.default_profile((), arch="amd64", env={seccomp.PROFILE_ENV: str(tmp_path / "no")})


def test_the_systems_profile_converts_for_every_architecture() -> None:
    if not seccomp.DEFAULT_PROFILE.is_file():
        pytest.skip(f"{seccomp.DEFAULT_PROFILE} not installed (golang-github-containers-common)")
    raw = json.loads(seccomp.DEFAULT_PROFILE.read_text())
    for arch in ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"):
        out = seccomp.convert(raw, arch=arch, capabilities=DEFAULT_CAPABILITIES,
                              kernel_release="6.1.0")  # fmt: skip
        names = _names(out)
        assert {"read", "execve", "mmap", "clone", "exit_group"} <= names, arch
        allowed = {n for r in out["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
                   for n in r["names"]}  # fmt: skip
        assert not allowed & {"kexec_load", "swapon", "init_module"}, arch
