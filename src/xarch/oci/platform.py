"""OCI platforms: parse, normalize, format and match like containerd's ``platforms`` package.

Semantics (deliberately identical to containerd ``platforms.Parse`` followed by ``Normalize``):

* ``"arm64"`` / ``"x86_64"`` (architecture only) → OS defaults to ``linux`` (xarch builds Linux
  images; containerd would use the host OS). ``"linux"`` (OS only) → the host's architecture.
* aliases: ``x86_64``/``x86-64`` → ``amd64`` (variant ``v1`` dropped), ``aarch64`` → ``arm64``
  (variant ``v8`` dropped, ``v9.0`` → ``v9``), ``armhf`` → ``arm/v7``, ``armel`` → ``arm/v6``,
  ``armv7l``/``armv6l``/``armv5l`` → ``arm/v7``/``arm/v6``/``arm/v5``, ``arm`` without variant →
  ``arm/v7``, ``i386``/``i686`` → ``386``, ``macos`` → ``darwin``; everything lower-cased.
* strings are taken as given: ``"linux/amd64\\n"`` or ``" linux/amd64"`` is an error, never
  silently stripped (containerd's ``Parse`` rejects them too), and ``""`` is an error.
* :func:`parse_platforms` is the one reader of ``--platform`` values (repeated and/or
  comma-separated, as buildx); every command and library entry point goes through it or
  :func:`parse_platform`, so the same string gets the same answer everywhere.
* ``matches`` is an exact comparison after normalizing both sides (containerd's default matcher,
  *not* ``Only()``): a request for ``arm/v7`` does NOT accept an ``arm/v6`` image, and ``amd64``
  does not accept ``amd64/v2``. Strictness keeps multi-arch selection predictable; callers that
  want fallbacks must ask for each platform explicitly.
"""

from __future__ import annotations

import platform as _pyplatform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.errors import InputError, UsageError

# containerd's specifierRe: each slash-separated component.
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.-]+")
# containerd's osAndVersionRe: an OS version may follow in parentheses,
# "windows(10.0.17763.1234)/amd64".
_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?")

KNOWN_OS: frozenset[str] = frozenset(
    {
        "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
        "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
    }
)  # fmt: skip
KNOWN_ARCH: frozenset[str] = frozenset(
    {
        "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
        "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
        "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
    }
)  # fmt: skip

# Extra machine-name aliases (uname -m / distro names) that containerd's normalizeArch lacks but
# users type; each maps to (arch, variant).
_MACHINE_ALIASES: dict[str, tuple[str, str]] = {
    "i686": ("386", ""),
    "i586": ("386", ""),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5l": ("arm", "v5"),
    "armv5tel": ("arm", "v5"),
    "loongarch64": ("loong64", ""),
}


def normalize_os(os_: str) -> str:
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch plus the machine-name aliases above."""
    arch, variant = arch.lower(), variant.lower()
    if arch in _MACHINE_ALIASES:
        a, v = _MACHINE_ALIASES[arch]
        return a, v if a != "arm" or not variant else _arm_variant(variant)
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        return "arm", _arm_variant(variant)
    return arch, variant


def _arm_variant(variant: str) -> str:
    if variant in ("", "7"):
        return "v7"
    if variant in ("5", "6", "8"):
        return "v" + variant
    return variant


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, s: str) -> Platform:
        """Parse ``os[(osversion)]/arch[/variant]`` or a lone ``arch``/``os``; result is normalized."""
        if not isinstance(s, str):
            raise InputError(f"invalid platform {s!r}: expected a string like 'linux/arm64'")
        if not s:
            raise InputError(_EMPTY)
        if s != s.strip():
            # a pasted "linux/amd64\n" is a mistake to report, not to guess around
            raise InputError(
                f"invalid platform {s!r}: leading or trailing whitespace "
                "(expected 'os/arch[/variant]', e.g. 'linux/amd64')"
            )
        parts = s.split("/")
        if len(parts) > 3:
            raise InputError(
                f"invalid platform {s!r}: too many '/' components (expected 'os/arch[/variant]')"
            )
        m = _OS_RE.fullmatch(parts[0])
        if m is None:
            raise InputError(
                f"invalid platform {s!r}: bad OS component {parts[0]!r} "
                "(allowed: letters, digits, '_', '-', then an optional '(osversion)')"
            )
        os_part, os_version = m.group(1), m.group(2) or ""
        for i, p in enumerate(parts[1:]):
            if not _COMPONENT_RE.fullmatch(p):
                what = "architecture" if i == 0 else "variant"
                raise InputError(
                    f"invalid platform {s!r}: bad {what} component {p!r} "
                    "(allowed: letters, digits, '_', '.', '-')"
                )
        if len(parts) == 1:
            if os_version:
                # "windows(10.0)" alone: an OS with a version, default architecture
                os_ = normalize_os(os_part)
                host = host_platform()
                return cls(os_, host.architecture, host.variant, os_version).normalize()
            low = os_part.lower()
            os_ = normalize_os(low)
            if os_ in KNOWN_OS:
                host = host_platform()
                return cls(os_, host.architecture, host.variant).normalize()
            arch, variant = normalize_arch(low, "")
            if arch in KNOWN_ARCH:
                return cls("linux", arch, variant).normalize()
            raise InputError(
                f"invalid platform {s!r}: unknown operating system or architecture "
                "(expected e.g. 'linux/amd64', 'linux/arm/v7', 'arm64')"
            )
        variant = parts[2] if len(parts) == 3 else ""
        return cls(normalize_os(os_part), parts[1], variant, os_version).normalize()

    def normalize(self) -> Platform:
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(
            normalize_os(self.os), arch, variant, self.os_version, tuple(self.os_features)
        )

    def __str__(self) -> str:
        os_ = f"{self.os}({self.os_version})" if self.os_version else self.os
        out = f"{os_}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out

    def format(self) -> str:
        """containerd ``Format``: ``os/arch[/variant]`` without the OS version."""
        out = f"{self.os}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out

    def matches(self, other: Platform) -> bool:
        """Whether an image built for ``other`` satisfies a request for ``self`` (strict)."""
        a, b = self.normalize(), other.normalize()
        if (a.os, a.architecture, a.variant) != (b.os, b.architecture, b.variant):
            return False
        if a.os_version and b.os_version and a.os_version != b.os_version:
            return False
        return set(a.os_features) <= set(b.os_features)

    def to_json(self) -> dict[str, object]:
        # Field order of image-spec specs-go/v1 Platform (Go's encoding/json emits struct order).
        out: dict[str, object] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Platform:
        """Read an OCI platform object as-is (not normalized, so it round-trips byte-exactly)."""
        if not isinstance(d, Mapping):
            raise InputError(f"invalid platform object: expected a JSON object, got {_jtype(d)}")
        os_, arch = d.get("os"), d.get("architecture")
        if not isinstance(os_, str) or not os_:
            raise InputError("invalid platform object: 'os' must be a non-empty string")
        if not isinstance(arch, str) or not arch:
            raise InputError("invalid platform object: 'architecture' must be a non-empty string")
        variant = d.get("variant", "")
        osv = d.get("os.version", "")
        feats = d.get("os.features", [])
        if not isinstance(variant, str):
            raise InputError("invalid platform object: 'variant' must be a string")
        if not isinstance(osv, str):
            raise InputError("invalid platform object: 'os.version' must be a string")
        if feats is None:
            feats = []
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
            raise InputError("invalid platform object: 'os.features' must be an array of strings")
        return cls(os_, arch, variant, osv, tuple(feats))


_EMPTY = "invalid platform '': expected 'os/arch[/variant]', e.g. 'linux/amd64'"


def parse_platform(value: str) -> Platform:
    """One ``--platform`` value (a single platform): :meth:`Platform.parse`, as a UsageError."""
    try:
        return Platform.parse(value)
    except InputError as e:
        raise UsageError(e.message) from None


def parse_platforms(values: Iterable[str]) -> tuple[Platform, ...]:
    """``--platform`` values, repeated and/or comma-separated (``linux/amd64,linux/arm64``),
    as buildx reads them: every part must be a platform (``""``, a trailing comma or a space
    is an error), duplicates after normalizing are dropped, order is kept. No values: ()."""
    out: list[Platform] = []
    for value in values:
        for part in value.split(","):
            try:
                p = Platform.parse(part)
            except InputError as e:
                where = f" in {value!r}" if "," in value else ""
                raise UsageError(e.message + where) from None
            if p not in out:
                out.append(p)
    return tuple(out)


def _jtype(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number" if isinstance(v, int | float) else type(v).__name__
    )


def _cpu_variant(cpuinfo: str) -> str:
    """ARM variant from /proc/cpuinfo's "CPU architecture" (containerd cpuinfo_linux.go logic)."""
    value = ""
    model = ""
    for line in cpuinfo.splitlines():
        key, sep, val = line.partition(":")
        if not sep:
            continue
        k = key.strip().lower()
        if k == "cpu architecture" and not value:
            value = val.strip().lower()
        elif k == "model name" and not model:
            model = val.strip()
    if value in ("8", "aarch64"):
        return "v8"
    if value in ("7", "7m", "?(12)", "?(13)", "?(14)", "?(15)", "?(16)", "?(17)"):
        # Raspberry Pi 1/Zero report architecture 7 but are ARMv6 (kernel quirk).
        return "v6" if model.startswith("ARMv6-compatible") else "v7"
    if value in ("6", "6tej"):
        return "v6"
    if value in ("5", "5t", "5te", "5tej"):
        return "v5"
    return ""


def host_platform() -> Platform:
    """The platform of the running machine, normalized (OS is linux unless on Windows)."""
    os_ = "windows" if _pyplatform.system().lower() == "windows" else "linux"
    machine = _pyplatform.machine() or "amd64"
    arch, variant = normalize_arch(machine, "")
    if arch == "arm":
        try:
            cpu = _cpu_variant(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:
            cpu = ""
        # a 32-bit userland on an ARMv8 core runs v7 binaries
        if cpu and cpu != "v8":
            variant = cpu
    return Platform(os_, arch, variant).normalize()
