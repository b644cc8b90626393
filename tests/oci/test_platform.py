from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import InputError
from xarch.oci.platform import (
    KNOWN_ARCH,
    KNOWN_OS,
    Platform,
    _cpu_variant,
    host_platform,
    normalize_arch,
)

P = Platform


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", P("linux", "amd64")),
        ("amd64", P("linux", "amd64")),
        ("x86_64", P("linux", "amd64")),
        ("x86-64", P("linux", "amd64")),
        ("linux/x86_64", P("linux", "amd64")),
        ("linux/amd64/v1", P("linux", "amd64")),
        ("linux/amd64/v2", P("linux", "amd64", "v2")),
        ("linux/amd64/v3", P("linux", "amd64", "v3")),
        ("arm64", P("linux", "arm64")),
        ("aarch64", P("linux", "arm64")),
        ("linux/aarch64", P("linux", "arm64")),
        ("linux/arm64/v8", P("linux", "arm64")),
        ("linux/arm64/8", P("linux", "arm64")),
        ("linux/arm64/v9.0", P("linux", "arm64", "v9")),
        ("linux/arm", P("linux", "arm", "v7")),
        ("arm", P("linux", "arm", "v7")),
        ("linux/arm/v7", P("linux", "arm", "v7")),
        ("linux/arm/7", P("linux", "arm", "v7")),
        ("linux/arm/v6", P("linux", "arm", "v6")),
        ("linux/arm/6", P("linux", "arm", "v6")),
        ("linux/arm/v5", P("linux", "arm", "v5")),
        ("armhf", P("linux", "arm", "v7")),
        ("armel", P("linux", "arm", "v6")),
        ("armv7l", P("linux", "arm", "v7")),
        ("armv6l", P("linux", "arm", "v6")),
        ("linux/armv7l", P("linux", "arm", "v7")),
        ("i386", P("linux", "386")),
        ("i686", P("linux", "386")),
        ("386", P("linux", "386")),
        ("ppc64le", P("linux", "ppc64le")),
        ("s390x", P("linux", "s390x")),
        ("riscv64", P("linux", "riscv64")),
        ("mips64le", P("linux", "mips64le")),
        ("loong64", P("linux", "loong64")),
        ("windows/amd64", P("windows", "amd64")),
        ("windows(10.0.17763.1234)/amd64", P("windows", "amd64", "", "10.0.17763.1234")),
        ("LINUX/ARM64", P("linux", "arm64")),
        ("macos/arm64", P("darwin", "arm64")),
        ("freebsd/someweirdarch", P("freebsd", "someweirdarch")),
    ],
)
def test_parse_normalizes(spec: str, expected: Platform) -> None:
    assert Platform.parse(spec) == expected


def test_os_only_uses_host_architecture() -> None:
    host = host_platform()
    p = Platform.parse("linux")
    assert (p.os, p.architecture, p.variant) == ("linux", host.architecture, host.variant)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "expected 'os/arch[/variant]'"),
        ("   ", "expected 'os/arch[/variant]'"),
        ("linux/arm/v7/extra", "too many '/' components"),
        ("linux//v7", "bad architecture component ''"),
        ("linux/arm/", "bad variant component ''"),
        ("linux/a b", "bad architecture component 'a b'"),
        ("/amd64", "bad OS component"),
        ("notanarch", "unknown operating system or architecture"),
        ("lin(ux/amd64", "bad OS component"),
        ("li.nux/amd64", "bad OS component"),
        ("windows(10 0)/amd64", "bad OS component"),
    ],
)
def test_parse_errors(spec: str, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Platform.parse(spec)
    assert fragment in str(ei.value)
    assert repr(spec) in str(ei.value) or spec.strip() == ""


def test_parse_rejects_non_string() -> None:
    with pytest.raises(InputError):
        Platform.parse(None)  # type: ignore[arg-type]


def test_str_and_format() -> None:
    assert str(P("linux", "arm", "v7")) == "linux/arm/v7"
    assert str(P("linux", "amd64")) == "linux/amd64"
    assert str(P("windows", "amd64", "", "10.0.1")) == "windows(10.0.1)/amd64"
    assert P("windows", "amd64", "", "10.0.1").format() == "windows/amd64"


def test_normalize_is_idempotent_and_keeps_os_fields() -> None:
    p = P("Linux", "AArch64", "V8", "1.0", ("f",)).normalize()
    assert p == P("linux", "arm64", "", "1.0", ("f",))
    assert p.normalize() == p


@pytest.mark.parametrize(
    ("request_", "image", "ok"),
    [
        ("linux/arm/v7", "linux/arm/v7", True),
        ("linux/arm/v7", "linux/arm", True),  # arm without variant is v7
        ("linux/arm/v7", "linux/arm/v6", False),  # strict: no fallback to older variants
        ("linux/arm/v6", "linux/arm/v6", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm/v6", "linux/arm/v5", False),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64", "linux/arm/v7", False),
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/amd64/v1", True),
        ("linux/amd64", "linux/amd64/v2", False),
        ("linux/amd64/v3", "linux/amd64", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/amd64", "linux/386", False),
        ("linux/386", "linux/i686", True),
    ],
)
def test_matches_is_strict(request_: str, image: str, ok: bool) -> None:
    req = Platform.parse(request_)
    # images carry raw, un-normalized platform objects
    os_, _, rest = image.partition("/")
    arch, _, variant = rest.partition("/")
    img = Platform(os_, arch, variant)
    assert req.matches(img) is ok


def test_matches_os_version_and_features() -> None:
    req = P("windows", "amd64", "", "10.0.17763.1")
    assert req.matches(P("windows", "amd64", "", "10.0.17763.1"))
    assert not req.matches(P("windows", "amd64", "", "10.0.20348.1"))
    assert req.matches(P("windows", "amd64"))  # image without a version: not decidable, accept
    assert P("windows", "amd64").matches(P("windows", "amd64", "", "10.0.1"))
    assert not P("windows", "amd64", os_features=("win32k",)).matches(P("windows", "amd64"))
    assert P("windows", "amd64").matches(P("windows", "amd64", os_features=("win32k",)))


def test_to_json_uses_go_field_order() -> None:
    p = P("windows", "arm64", "v9", "10.0", ("win32k",))
    assert json.dumps(p.to_json()) == (
        '{"architecture": "arm64", "os": "windows", "os.version": "10.0", '
        '"os.features": ["win32k"], "variant": "v9"}'
    )
    assert P("linux", "amd64").to_json() == {"architecture": "amd64", "os": "linux"}


def test_from_json_round_trip_not_normalized() -> None:
    d = {"architecture": "aarch64", "os": "linux", "variant": "v8"}
    p = Platform.from_json(d)
    assert p == P("linux", "aarch64", "v8")
    assert p.to_json() == d
    assert Platform.from_json({"architecture": "amd64", "os": "linux", "os.features": None}) == P(
        "linux", "amd64"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"os": "linux"},
        {"architecture": "amd64"},
        {"architecture": 1, "os": "linux"},
        {"architecture": "amd64", "os": "linux", "variant": 7},
        {"architecture": "amd64", "os": "linux", "os.features": "x"},
        {"architecture": "amd64", "os": "linux", "os.version": 10},
        [],
    ],
)
def test_from_json_errors(bad: object) -> None:
    with pytest.raises(InputError, match="invalid platform object"):
        Platform.from_json(bad)  # type: ignore[arg-type]


def test_ordering_is_defined() -> None:
    ps = sorted([P("linux", "arm64"), P("linux", "amd64"), P("linux", "arm", "v7")])
    assert [str(p) for p in ps] == ["linux/amd64", "linux/arm/v7", "linux/arm64"]


def test_host_platform_is_normalized() -> None:
    h = host_platform()
    assert h == h.normalize()
    assert h.os in ("linux", "windows")
    assert h.architecture in KNOWN_ARCH


CPUINFO_PI1 = (
    "processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n"
)
CPUINFO_V7 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n"


@pytest.mark.parametrize(
    ("cpuinfo", "variant"),
    [
        (CPUINFO_PI1, "v6"),
        (CPUINFO_V7, "v7"),
        ("CPU architecture: 8\n", "v8"),
        ("CPU architecture: 6TEJ\n", "v6"),
        ("CPU architecture: 5te\n", "v5"),
        ("nothing here\n", ""),
    ],
)
def test_cpu_variant(cpuinfo: str, variant: str) -> None:
    assert _cpu_variant(cpuinfo) == variant


def test_normalize_arch_table() -> None:
    assert normalize_arch("armv7l", "") == ("arm", "v7")
    assert normalize_arch("armv7l", "v6") == ("arm", "v6")
    assert normalize_arch("arm", "8") == ("arm", "v8")
    assert normalize_arch("i386", "whatever") == ("386", "")
    assert normalize_arch("loongarch64", "") == ("loong64", "")


_component = st.from_regex(r"[a-z0-9_.-]{1,12}", fullmatch=True)
_arch = st.one_of(
    st.sampled_from(
        [*sorted(KNOWN_ARCH), "x86_64", "aarch64", "armhf", "armel", "armv7l", "i386", "i686"]
    ),
    _component,
)
_variant = st.one_of(
    st.sampled_from(["", "v5", "v6", "v7", "v8", "8", "v9.0", "v1", "v2", "v3"]), _component
)
_os = st.one_of(
    st.sampled_from([*sorted(KNOWN_OS), "macos"]),
    st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True),
)
_osver = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True))


@given(_os, _arch, _variant, _osver)
def test_parse_str_round_trip_for_normalized(os_: str, arch: str, variant: str, osv: str) -> None:
    p = Platform(os_, arch, variant, osv).normalize()
    assert p.normalize() == p
    assert Platform.parse(str(p)) == p


@given(st.text(max_size=40))
def test_random_strings_only_raise_input_error(s: str) -> None:
    try:
        p = Platform.parse(s)
    except InputError:
        return
    assert p == p.normalize()
