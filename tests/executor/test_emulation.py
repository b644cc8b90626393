from __future__ import annotations

import os
from pathlib import Path

import pytest

from xarch.errors import RuntimeFailure, UsageError
from xarch.executor.emulation import (
    ARCH_MAP,
    ELF_MAGIC,
    EmulationState,
    EmulationStatus,
    ensure_runnable,
    native_compat_runs,
    parse_binfmt_entry,
    qemu_arch,
    register_line,
    setup_emulation,
    tiny_elf,
)
from xarch.oci.platform import Platform

from .helpers import entry_text

AMD64 = Platform.parse("linux/amd64")


@pytest.mark.parametrize(
    ("platform", "qemu"),
    [
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm64/v8", "aarch64"),
        ("linux/arm/v7", "arm"),
        ("linux/arm/v6", "arm"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/s390x", "s390x"),
        ("linux/riscv64", "riscv64"),
        ("linux/386", "i386"),
        ("linux/mips64le", "mips64el"),
        ("linux/loong64", "loongarch64"),
    ],
)
def test_arch_map(platform: str, qemu: str) -> None:
    assert qemu_arch(Platform.parse(platform)) == qemu


def test_arch_map_rejects_unknown() -> None:
    with pytest.raises(UsageError, match="no QEMU emulator"):
        qemu_arch(Platform.parse("linux/sparc64"))
    with pytest.raises(UsageError, match="only linux"):
        qemu_arch(Platform.parse("windows/amd64"))


def test_every_mapped_arch_has_magic() -> None:
    assert set(ARCH_MAP.values()) <= set(ELF_MAGIC)
    for magic, mask in ELF_MAGIC.values():
        assert len(magic) == len(mask) == 20
        assert magic.startswith(b"\x7fELF")


def test_handlers_are_mutually_exclusive() -> None:
    # Each handler catches its own arch's executables and no other arch's.
    for a in ELF_MAGIC:
        e = parse_binfmt_entry(f"qemu-{a}", entry_text(a, "/x", "F"))
        for b in ELF_MAGIC:
            assert e.handles(b) is (a == b), (a, b)


def test_table_matches_debian_qemu_user_static() -> None:
    # Debian ships update-binfmts templates; their magic must be ours (masks differ slightly).
    checked = 0
    for arch, (magic, _) in ELF_MAGIC.items():
        p = Path("/usr/share/binfmts") / f"qemu-{arch}"
        if not p.exists():
            continue
        fields = dict(line.split(" ", 1) for line in p.read_text().splitlines() if " " in line)
        theirs = fields["magic"].encode().decode("unicode_escape").encode("latin-1")
        assert theirs == magic, arch
        checked += 1
    if checked == 0:
        pytest.skip("qemu-user-static's binfmt templates are not installed")


def test_tiny_elf_headers_are_caught_by_their_handler() -> None:
    for arch in ("i386", "arm"):
        blob = tiny_elf(arch)
        assert blob is not None
        e = parse_binfmt_entry("x", entry_text(arch, "/x", "F"))
        assert e.matches_header(blob[:20])


def test_register_line_escapes_everything() -> None:
    line = register_line("aarch64", "/usr/bin/qemu-aarch64-static")
    assert line.startswith(":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46")
    assert line.endswith(":/usr/bin/qemu-aarch64-static:FOC")
    assert line.count(":") == 7  # no raw ':' from magic/mask bytes


@pytest.fixture
def fake_binfmt(tmp_path: Path) -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    (d / "register").write_text("")
    (d / "status").write_text("enabled\n")
    return d


@pytest.fixture
def fake_qemu(tmp_path: Path) -> Path:
    d = tmp_path / "qemu"
    d.mkdir()
    for a in ("aarch64", "arm", "riscv64", "s390x", "ppc64le"):
        (d / f"qemu-{a}-static").write_text("")
    return d


def test_probe_states(fake_binfmt: Path, fake_qemu: Path, tmp_path: Path) -> None:
    def probe(p: str, **kw: object) -> EmulationStatus:
        return EmulationStatus.probe(
            Platform.parse(p),
            host=AMD64,
            binfmt_dir=fake_binfmt,
            qemu_dir=fake_qemu,
            **kw,  # type: ignore[arg-type,unused-ignore]
        )

    assert probe("linux/amd64").state is EmulationState.NATIVE
    st = probe("linux/arm64")
    assert st.state is EmulationState.UNAVAILABLE and "no binfmt_misc handler" in st.reason
    # Debian binfmt-support style entry: other interpreter path, F flag -> usable in containers
    (fake_binfmt / "qemu-aarch64").write_text(
        entry_text("aarch64", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "POCF")
    )
    st = probe("linux/arm64")
    assert st.state is EmulationState.EMULATED and st.handler == "qemu-aarch64"
    # without F the interpreter is looked up inside the container: not good enough
    (fake_binfmt / "qemu-riscv64").write_text(
        entry_text("riscv64", str(fake_qemu / "qemu-riscv64-static"), "OC")
    )
    st = probe("linux/riscv64")
    assert st.state is EmulationState.UNAVAILABLE and "fix-binary" in st.reason
    # disabled entries do not count
    (fake_binfmt / "qemu-s390x").write_text(entry_text("s390x", "/x", "F", enabled=False))
    assert probe("linux/s390x").state is EmulationState.UNAVAILABLE
    # qemu not installed at all
    st = probe("linux/mips64le")
    assert "qemu-mips64el-static not installed" in st.reason
    # binfmt_misc not mounted
    st = EmulationStatus.probe(
        Platform.parse("linux/ppc64le"),
        host=AMD64,
        binfmt_dir=tmp_path / "nope",
        qemu_dir=fake_qemu,
    )
    assert "not mounted" in st.reason


def test_ensure_runnable_messages(fake_binfmt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeFailure) as ei:
        ensure_runnable(
            Platform.parse("linux/riscv64"), host=AMD64, binfmt_dir=fake_binfmt, qemu_dir=empty
        )
    assert str(ei.value) == (
        "linux/riscv64 cannot run here: install qemu-user-static and run `xarch setup emulation`"
    )


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setup_emulation needs root")


@needs_root
def test_setup_emulation_registers_and_skips(fake_binfmt: Path, fake_qemu: Path) -> None:
    (fake_binfmt / "qemu-aarch64").write_text(
        entry_text("aarch64", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "POCF")
    )
    (fake_binfmt / "qemu-arm").write_text(
        entry_text("arm", str(fake_qemu / "qemu-arm-static"), "OC")
    )
    res = setup_emulation(
        ["arm64", "linux/arm/v7", "riscv64", "amd64"],
        binfmt_dir=fake_binfmt,
        qemu_dir=fake_qemu,
        host=AMD64,
        p_dir=fake_qemu / "no-binfmt-P-wrappers",
    )
    by = {r.arch: r for r in res}
    assert by["aarch64"].action == "already-registered"
    assert by["aarch64"].name == "qemu-aarch64"
    assert by["arm"].action == "replaced"
    assert by["riscv64"].action == "registered"
    assert by["riscv64"].flags == "FOC"
    assert by["x86_64"].action == "skipped-native"
    # the fake register file holds the last line written; the replaced entry got "-1"
    assert (fake_binfmt / "register").read_text() == register_line(
        "riscv64", str(fake_qemu / "qemu-riscv64-static")
    )
    assert (fake_binfmt / "qemu-arm").read_text().startswith("-1")


@needs_root
def test_setup_emulation_preserves_argv0_when_qemu_can(fake_binfmt: Path, fake_qemu: Path) -> None:
    # Debian's <arch>-binfmt-P names tell QEMU argv[0] was preserved (flag P): busybox needs it.
    pdir = fake_qemu / "binfmt-P"
    pdir.mkdir()
    (pdir / "riscv64-binfmt-P").symlink_to(fake_qemu / "qemu-riscv64-static")
    (pdir / "aarch64-binfmt-P").symlink_to(fake_qemu / "qemu-aarch64-static")
    (fake_binfmt / "qemu-aarch64").write_text(
        entry_text("aarch64", str(fake_qemu / "qemu-aarch64-static"), "OCF")  # F but no P
    )
    res = setup_emulation(["riscv64", "arm64"], binfmt_dir=fake_binfmt, qemu_dir=fake_qemu,
                          host=AMD64, p_dir=pdir)
    by = {r.arch: r for r in res}
    assert by["riscv64"].flags == "POCF" and by["riscv64"].interpreter == str(pdir / "riscv64-binfmt-P")
    assert by["aarch64"].action == "replaced"
    assert (fake_binfmt / "register").read_text() == register_line(
        "aarch64", str(pdir / "aarch64-binfmt-P"), "POCF"
    )


@needs_root
def test_setup_emulation_missing_qemu(fake_binfmt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(RuntimeFailure, match="install qemu-user-static"):
        setup_emulation(["riscv64"], binfmt_dir=fake_binfmt, qemu_dir=empty, host=AMD64)


def test_setup_emulation_unknown_arch(fake_binfmt: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("root check comes first")
    with pytest.raises(UsageError, match="unknown architecture"):
        setup_emulation(["sparc64"], binfmt_dir=fake_binfmt, host=AMD64)


@pytest.mark.integration
def test_native_i386_on_amd64_kernel() -> None:
    from xarch.oci.platform import host_platform

    if host_platform().architecture != "amd64":
        pytest.skip("needs an amd64 host")
    if Path("/proc/sys/fs/binfmt_misc/qemu-i386").exists():
        pytest.skip("a qemu-i386 handler would intercept the probe")
    assert native_compat_runs("i386") is True
