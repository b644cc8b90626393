"""Foreign architectures: binfmt_misc + QEMU user-mode emulation.

The kernel hands a foreign ELF to a registered interpreter (qemu-<arch>-static). Registering with
the fix-binary flag ``F`` makes the kernel open the interpreter once, at registration, so it also
works inside containers whose rootfs has no QEMU; that is what ``tonistiigi/binfmt --install``
does and what :func:`setup_emulation` does. The ELF magic/mask table matches QEMU's
``scripts/qemu-binfmt-conf.sh``.

binfmt_misc entries are global to the machine (the initial user namespace), so registration is
a deliberate, root-only setup step and never a side effect of a build.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from xarch.errors import RuntimeFailure, UsageError
from xarch.oci.platform import Platform, host_platform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_DIR = Path("/usr/bin")
REGISTER_FLAGS = "FOC"
# With Debian's qemu-user-static, /usr/libexec/qemu-binfmt/<arch>-binfmt-P tells QEMU (by its
# name) that the kernel preserved argv[0] (binfmt flag P). Multi-call binaries such as
# busybox pick the applet from argv[0]: without P, `sh -c cat x` runs `sh x` under emulation.
PRESERVE_FLAGS = "POCF"
BINFMT_P_DIR = Path("/usr/libexec/qemu-binfmt")

# OCI architecture (plus variant for arm) -> QEMU target name.
ARCH_MAP: dict[str, str] = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm/v7": "arm",
    "arm/v6": "arm",
    "arm/v5": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "386": "i386",
    "mips64le": "mips64el",
    "loong64": "loongarch64",
}

# QEMU target -> (magic, mask) over the first 20 bytes of the ELF header (ident, e_type,
# e_machine), values as in qemu's scripts/qemu-binfmt-conf.sh.
_HDR_LE64 = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
_HDR_LE32 = b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
_HDR_BE64 = b"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
_MASK_STD = b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
_MASK_X86 = b"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
_MASK_BE = b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff"
ELF_MAGIC: dict[str, tuple[bytes, bytes]] = {
    "x86_64": (_HDR_LE64 + b"\x3e\x00", _MASK_X86),
    "i386": (_HDR_LE32 + b"\x03\x00", _MASK_X86),
    "aarch64": (_HDR_LE64 + b"\xb7\x00", _MASK_STD),
    "arm": (_HDR_LE32 + b"\x28\x00", _MASK_STD),
    "ppc64le": (
        _HDR_LE64 + b"\x15\x00",
        b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
    ),
    "s390x": (_HDR_BE64 + b"\x00\x16", _MASK_BE),
    "riscv64": (_HDR_LE64 + b"\xf3\x00", _MASK_STD),
    "mips64el": (_HDR_LE64 + b"\x08\x00", _MASK_STD),
    "loongarch64": (
        _HDR_LE64 + b"\x02\x01",
        b"\xff\xff\xff\xff\xff\xff\xff\xfc\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
}

# 32-bit siblings a 64-bit kernel may run natively (IA32 emulation / AArch32 EL0).
_COMPAT: dict[str, str] = {"x86_64": "i386", "aarch64": "arm"}


def platform_key(platform: Platform) -> str:
    p = platform.normalize()
    if p.architecture == "arm":
        return f"arm/{p.variant or 'v7'}"
    return p.architecture


def qemu_arch(platform: Platform) -> str:
    """QEMU target name for an OCI platform (``linux/arm64`` -> ``aarch64``)."""
    p = platform.normalize()
    if p.os != "linux":
        raise UsageError(f"{p} cannot run here: only linux images can execute build steps")
    try:
        return ARCH_MAP[platform_key(p)]
    except KeyError:
        raise UsageError(
            f"{p} cannot run here: xarch knows no QEMU emulator for it",
            hint=f"supported: {', '.join('linux/' + k for k in ARCH_MAP)}",
        ) from None


# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class BinfmtEntry:
    """One registered binfmt_misc handler as the kernel reports it."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags

    @property
    def preserve_argv0(self) -> bool:
        return "P" in self.flags

    def matches_header(self, header: bytes) -> bool:
        """Would the kernel hand a file starting with ``header`` to this handler?"""
        if not self.magic:
            return False
        window = header[self.offset : self.offset + len(self.magic)]
        if len(window) < len(self.magic):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all((w & m) == (g & m) for w, m, g in zip(window, mask, self.magic))

    def handles(self, arch: str) -> bool:
        """Does this handler catch canonical ELF executables of QEMU target ``arch``?"""
        magic, _ = ELF_MAGIC[arch]
        return self.matches_header(magic)


def parse_binfmt_entry(name: str, text: str) -> BinfmtEntry:
    enabled, interp, flags, offset, magic, mask = False, "", "", 0, b"", b""
    for line in text.splitlines():
        line = line.strip()
        if line == "enabled":
            enabled = True
        elif line.startswith("interpreter "):
            interp = line[len("interpreter ") :]
        elif line.startswith("flags:"):
            flags = line[len("flags:") :].strip()
        elif line.startswith("offset "):
            offset = int(line.split()[1])
        elif line.startswith("magic "):
            magic = bytes.fromhex(line.split()[1])
        elif line.startswith("mask "):
            mask = bytes.fromhex(line.split()[1])
    return BinfmtEntry(name, enabled, interp, flags, offset, magic, mask)


def binfmt_mounted(binfmt_dir: Path = BINFMT_DIR) -> bool:
    return (binfmt_dir / "register").exists()


def read_binfmt_entries(binfmt_dir: Path = BINFMT_DIR) -> list[BinfmtEntry]:
    if not binfmt_mounted(binfmt_dir):
        return []
    out = []
    for p in sorted(binfmt_dir.iterdir()):
        if p.name in ("register", "status"):
            continue
        with contextlib.suppress(OSError, ValueError):
            out.append(parse_binfmt_entry(p.name, p.read_text()))
    return out


def _handler_for(arch: str, entries: Iterable[BinfmtEntry]) -> BinfmtEntry | None:
    """The enabled handler the kernel would use; prefers a fix-binary one."""
    found = [e for e in entries if e.enabled and e.handles(arch)]
    found.sort(key=lambda e: (not e.fix_binary, e.name != f"qemu-{arch}"))
    return found[0] if found else None


# ----------------------------------------------------------------------------- native probe


def tiny_elf(arch: str) -> bytes | None:
    """A static ELF that calls exit(42): executing it proves the kernel (natively or through
    a binfmt_misc handler) runs that architecture. None for arches without a recipe."""
    if arch in _ELF32:
        machine, flags, base, code = _ELF32[arch]
        ehsize, phsize = 52, 32
        size = ehsize + phsize + len(code)
        ehdr = (
            b"\x7fELF\x01\x01\x01"
            + b"\x00" * 9
            + struct.pack(
                "<HHIIIIIHHHHHH",
                2,
                machine,
                1,
                base + ehsize + phsize,
                ehsize,
                0,
                flags,
                ehsize,
                phsize,
                1,
                0,
                0,
                0,
            )
        )
        return ehdr + struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000) + code
    if arch in _ELF64:
        machine, base, code = _ELF64[arch]
        ehsize, phsize = 64, 56
        size = ehsize + phsize + len(code)
        ehdr = (
            b"\x7fELF\x02\x01\x01"
            + b"\x00" * 9
            + struct.pack(
                "<HHIQQQIHHHHHH",
                2,
                machine,
                1,
                base + ehsize + phsize,
                ehsize,
                0,
                0,
                ehsize,
                phsize,
                1,
                0,
                0,
                0,
            )
        )
        return ehdr + struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000) + code
    return None


# arch -> (e_machine, e_flags, load address, code doing exit(42))
_ELF32: dict[str, tuple[int, int, int, bytes]] = {
    # mov eax,1; mov ebx,42; int 0x80
    "i386": (3, 0, 0x08048000, b"\xb8\x01\x00\x00\x00\xbb\x2a\x00\x00\x00\xcd\x80"),
    # mov r0,#42; mov r7,#1; svc 0   (EABI5)
    "arm": (40, 0x05000000, 0x00010000, struct.pack("<III", 0xE3A0002A, 0xE3A07001, 0xEF000000)),
}
_ELF64: dict[str, tuple[int, int, bytes]] = {
    # mov edi,42; mov eax,60; syscall
    "x86_64": (62, 0x400000, b"\xbf\x2a\x00\x00\x00\xb8\x3c\x00\x00\x00\x0f\x05"),
    # mov x0,#42; mov x8,#93; svc #0
    "aarch64": (183, 0x400000, struct.pack("<III", 0xD2800540, 0xD2800BA8, 0xD4000001)),
    # li a0,42; li a7,93; ecall
    "riscv64": (243, 0x10000, struct.pack("<III", 0x02A00513, 0x05D00893, 0x00000073)),
}


def exec_probe(arch: str, *, work_dir: Path | None = None) -> bool:
    """Run the tiny exit(42) ELF for ``arch`` on this machine; True when it exits 42."""
    blob = tiny_elf(arch)
    if blob is None:
        return False
    dirs = [work_dir] if work_dir else [None, Path("/dev/shm"), Path.home()]
    for d in dirs:
        try:
            with tempfile.TemporaryDirectory(prefix="xarch-elf-", dir=d) as tmp:
                exe = Path(tmp) / "probe"
                exe.write_bytes(blob)
                exe.chmod(0o755)
                res = subprocess.run([str(exe)], capture_output=True, timeout=30, check=False)
                return res.returncode == 42
        except PermissionError:
            continue  # noexec mount: try the next directory
        except (OSError, subprocess.SubprocessError):
            return False
    return False


def native_compat_runs(arch: str, *, work_dir: Path | None = None) -> bool:
    """Does the kernel execute ``arch`` (a 32-bit sibling of the host) without QEMU?

    Only meaningful when no binfmt_misc handler catches ``arch`` (handlers take precedence).
    """
    return arch in _ELF32 and exec_probe(arch, work_dir=work_dir)


# ----------------------------------------------------------------------------- status


class EmulationState(StrEnum):
    NATIVE = "native"
    EMULATED = "emulated"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class EmulationStatus:
    platform: Platform
    state: EmulationState
    reason: str
    handler: str | None = None  # binfmt_misc entry name when emulated

    @property
    def runnable(self) -> bool:
        return self.state is not EmulationState.UNAVAILABLE

    @classmethod
    def probe(
        cls,
        platform: Platform,
        *,
        host: Platform | None = None,
        binfmt_dir: Path = BINFMT_DIR,
        qemu_dir: Path = QEMU_DIR,
        native_probe: bool = True,
    ) -> EmulationStatus:
        p = platform.normalize()
        host = (host or host_platform()).normalize()
        arch = qemu_arch(p)
        host_arch = qemu_arch(host)
        if arch == host_arch and (p.architecture != "arm" or _arm_native_ok(host, p)):
            return cls(p, EmulationState.NATIVE, f"host is {host}")
        entries = read_binfmt_entries(binfmt_dir)
        handler = _handler_for(arch, entries)
        if handler is not None:
            if handler.fix_binary:
                return cls(
                    p,
                    EmulationState.EMULATED,
                    f"binfmt_misc {handler.name} -> {handler.interpreter} (F)",
                    handler.name,
                )
            # Without F the kernel looks the interpreter up at exec time, inside the
            # container's rootfs, where it does not exist: not good enough for RUN steps.
            return cls(
                p,
                EmulationState.UNAVAILABLE,
                f"binfmt_misc {handler.name} lacks the fix-binary (F) flag, so it fails inside containers",
                handler.name,
            )
        if _COMPAT.get(host_arch) == arch and native_probe and native_compat_runs(arch):
            return cls(
                p, EmulationState.NATIVE, f"the {host.architecture} kernel runs {p} natively"
            )
        if not (qemu_dir / f"qemu-{arch}-static").exists():
            return cls(p, EmulationState.UNAVAILABLE, f"qemu-{arch}-static not installed")
        if not binfmt_mounted(binfmt_dir):
            return cls(p, EmulationState.UNAVAILABLE, f"binfmt_misc is not mounted at {binfmt_dir}")
        return cls(p, EmulationState.UNAVAILABLE, f"no binfmt_misc handler registered for {arch}")


def _arm_native_ok(host: Platform, p: Platform) -> bool:
    """An arm/vN host runs vN and older variants."""
    try:
        return int((p.variant or "v7")[1:]) <= int((host.variant or "v7")[1:])
    except ValueError:
        return False


def ensure_runnable(
    platform: Platform,
    *,
    host: Platform | None = None,
    binfmt_dir: Path = BINFMT_DIR,
    qemu_dir: Path = QEMU_DIR,
) -> EmulationStatus:
    """The status when ``platform`` can run here; otherwise a one-line error with the fix."""
    st = EmulationStatus.probe(platform, host=host, binfmt_dir=binfmt_dir, qemu_dir=qemu_dir)
    if st.runnable:
        return st
    if not (qemu_dir / f"qemu-{qemu_arch(platform)}-static").exists():
        raise RuntimeFailure(
            f"{st.platform} cannot run here: install qemu-user-static and run `xarch setup emulation`"
        )
    raise RuntimeFailure(
        f"{st.platform} cannot run here ({st.reason}): run `xarch setup emulation` as root"
    )


# ----------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Registered:
    """Outcome of :func:`setup_emulation` for one QEMU target."""

    arch: str
    name: str
    interpreter: str
    flags: str
    action: str  # "registered", "replaced", "already-registered", "skipped-native"


def _escape(data: bytes) -> str:
    # Escaping every byte also protects the ':' field separator (0x3a) inside magic/mask.
    return "".join(f"\\x{b:02x}" for b in data)


def register_line(arch: str, interpreter: str, flags: str = REGISTER_FLAGS) -> str:
    magic, mask = ELF_MAGIC[arch]
    return f":qemu-{arch}:M::{_escape(magic)}:{_escape(mask)}:{interpreter}:{flags}"


def mount_binfmt(binfmt_dir: Path = BINFMT_DIR) -> None:
    if binfmt_mounted(binfmt_dir):
        return
    try:
        res = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeFailure(f"cannot mount binfmt_misc at {binfmt_dir}: {e}") from e
    if res.returncode != 0 or not binfmt_mounted(binfmt_dir):
        raise RuntimeFailure(
            f"cannot mount binfmt_misc at {binfmt_dir}: {res.stderr.strip() or 'mount failed'}",
            hint="run as root; in a container, run privileged",
        )


def _write(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _resolve_arches(arches: Sequence[str] | None) -> list[str]:
    if arches is None:
        return list(ELF_MAGIC)
    out: list[str] = []
    for a in arches:
        if a in ELF_MAGIC:
            q = a
        else:
            try:
                q = qemu_arch(Platform.parse(a))
            except Exception as e:
                raise UsageError(f"unknown architecture {a!r} for emulation: {e}") from None
        if q not in out:
            out.append(q)
    return out


def setup_emulation(
    arches: Sequence[str] | None = None,
    *,
    binfmt_dir: Path = BINFMT_DIR,
    qemu_dir: Path = QEMU_DIR,
    host: Platform | None = None,
    p_dir: Path = BINFMT_P_DIR,
) -> list[Registered]:
    """Register QEMU handlers with the fix-binary flag (what ``tonistiigi/binfmt --install``
    does). ``arches`` are OCI names (``arm64``, ``linux/arm/v7``) or QEMU names; None = all.

    Existing enabled handlers with ``F`` (and ``P`` where QEMU can preserve argv[0]) are kept
    (also Debian binfmt-support's); a ``qemu-<arch>`` entry without them is replaced; the host's own architecture, and a 32-bit
    sibling the kernel runs natively, are never registered.
    """
    if os.geteuid() != 0:
        raise UsageError(
            "`xarch setup emulation` needs root: binfmt_misc handlers are machine-wide"
        )
    targets = _resolve_arches(arches)
    host_arch = qemu_arch((host or host_platform()).normalize())
    missing = [
        a for a in targets if a != host_arch and not (qemu_dir / f"qemu-{a}-static").exists()
    ]
    if missing and arches is not None:
        raise RuntimeFailure(
            f"QEMU emulators missing: {', '.join(f'qemu-{a}-static' for a in missing)} not in {qemu_dir}",
            hint="install qemu-user-static",
        )
    mount_binfmt(binfmt_dir)
    results: list[Registered] = []
    for arch in targets:
        if arch == host_arch:
            results.append(Registered(arch, "", "", "", "skipped-native"))
            continue
        interp = qemu_dir / f"qemu-{arch}-static"
        if not interp.exists():
            continue  # only reachable with arches=None: register what is installed
        flags = REGISTER_FLAGS
        p_interp = p_dir / f"{arch}-binfmt-P"
        if p_interp.exists():
            interp, flags = p_interp, PRESERVE_FLAGS
        entries = read_binfmt_entries(binfmt_dir)
        handler = _handler_for(arch, entries)
        if handler is not None and handler.fix_binary and (handler.preserve_argv0 or "P" not in flags):
            results.append(
                Registered(
                    arch, handler.name, handler.interpreter, handler.flags, "already-registered"
                )
            )
            continue
        if handler is None and _COMPAT.get(host_arch) == arch and native_compat_runs(arch):
            results.append(Registered(arch, "", "", "", "skipped-native"))
            continue
        action = "registered"
        ours = binfmt_dir / f"qemu-{arch}"
        if ours.exists():
            # Same name but unusable in containers (no F) or disabled: replace it.
            _write(ours, "-1")
            action = "replaced"
        elif handler is not None:
            # A differently named handler without F: ours is newer, so the kernel tries it first.
            action = "replaced"
        try:
            _write(binfmt_dir / "register", register_line(arch, str(interp), flags))
        except OSError as e:
            raise RuntimeFailure(
                f"cannot register qemu-{arch} in {binfmt_dir}/register: {e.strerror}",
                hint="run as root on the host (not in an unprivileged container)",
            ) from e
        results.append(Registered(arch, f"qemu-{arch}", str(interp), flags, action))
    return results
