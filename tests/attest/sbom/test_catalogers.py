from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attest.sbom._fixtures import (
    DEP5,
    GO_MODINFO,
    OPQ,
    OS_RELEASE_ALPINE,
    OS_RELEASE_DEBIAN,
    OS_RELEASE_FEDORA,
    WH,
    D,
    E,
    F,
    L,
    apk_record,
    chunks,
    dpkg_para,
    dpkg_status,
    fake_elf,
    go_buildinfo,
    make_image,
    rpm_header,
    rpmdb_sqlite,
)
from xarch.attest.sbom.api import catalog_image
from xarch.attest.sbom.catalogers import parse_paragraphs
from xarch.attest.sbom.catalogers.dpkg import copyright_licenses
from xarch.attest.sbom.catalogers.golang import (
    BuildInfoError,
    GoBuildInfoScanner,
    decode_buildinfo,
)
from xarch.attest.sbom.catalogers.osrelease import parse_os_release
from xarch.attest.sbom.catalogers.rpm import parse_header
from xarch.attest.sbom.model import Catalog, Package
from xarch.errors import InputError


def _catalog(layers: list[list[E]], **kw: Any) -> Catalog:
    img = make_image(layers, **kw)
    return catalog_image(img, img.info())


def _by_name(cat: Catalog) -> dict[str, Package]:
    return {p.name: p for p in cat.packages}


# -- os-release -----------------------------------------------------------------------------


def test_os_release_parsing_and_symlink() -> None:
    kv = parse_os_release('ID="debian"\n# c\nX=\'a b\'\nY="q\\"uote"\nbad line\n')
    assert kv == {"ID": "debian", "X": "a b", "Y": 'q"uote'}
    cat = _catalog(
        [[F("usr/lib/os-release", OS_RELEASE_DEBIAN), L("etc/os-release", "../usr/lib/os-release")]]
    )
    assert cat.os is not None
    assert (cat.os.id, cat.os.version_id, cat.os.distro) == ("debian", "12", "debian-12")


def test_etc_os_release_wins_over_usr_lib() -> None:
    cat = _catalog(
        [[F("usr/lib/os-release", OS_RELEASE_DEBIAN), F("etc/os-release", OS_RELEASE_ALPINE)]]
    )
    assert cat.os is not None and cat.os.id == "alpine"


# -- dpkg -----------------------------------------------------------------------------------


def test_dpkg_status_with_layers_whiteouts_and_licenses() -> None:
    base = dpkg_status(
        dpkg_para("libc6", "2.36-9+deb12u4", source="glibc"),
        dpkg_para("bash", "5.2.15-2+b2", source="bash (5.2.15-2)"),
        dpkg_para("removed", "1.0", status="deinstall ok config-files"),
    )
    upper = base + b"\n" + dpkg_status(dpkg_para("curl", "7.88.1-10", arch="amd64"))
    cat = _catalog(
        [
            [F("etc/os-release", OS_RELEASE_DEBIAN), F("var/lib/dpkg/status", base),
             F("usr/share/doc/libc6/copyright", DEP5.format(name="glibc", lic="LGPL-2.1+")),
             F("usr/share/doc/bash/copyright", "not machine readable\nLicense: GPL-3\n")],
            [F("var/lib/dpkg/status", upper),
             F("usr/share/doc/curl/copyright", DEP5.format(name="curl", lic="curl"))],
        ]
    )  # fmt: skip
    pk = _by_name(cat)
    assert set(pk) == {"libc6", "bash", "curl"}  # config-files package is not installed
    libc, bash, curl = pk["libc6"], pk["bash"], pk["curl"]
    assert libc.purl == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
    )
    assert bash.purl.endswith("upstream=bash%405.2.15-2")
    assert libc.licenses == ("LGPL-2.1+", "GPL-2+")
    assert bash.licenses == ()
    assert curl.licenses == ("curl", "GPL-2+")
    # the status file was rewritten in layer 1, but libc6 was introduced in layer 0
    assert libc.layer.index == 0 and curl.layer.index == 1
    assert libc.paths == ("/var/lib/dpkg/status", "/usr/share/doc/libc6/copyright")


def test_dpkg_package_removed_in_a_later_layer_and_whiteout_of_status() -> None:
    one = dpkg_status(dpkg_para("a", "1"), dpkg_para("b", "1"))
    two = dpkg_status(dpkg_para("a", "1"))
    cat = _catalog([[F("var/lib/dpkg/status", one)], [F("var/lib/dpkg/status", two)]])
    assert [p.name for p in cat.packages] == ["a"]
    cat = _catalog([[F("var/lib/dpkg/status", one)], [WH("var/lib/dpkg/status")]])
    assert cat.packages == ()


def test_dpkg_upgrade_in_upper_layer_is_attributed_to_it() -> None:
    one = dpkg_status(dpkg_para("a", "1"))
    two = dpkg_status(dpkg_para("a", "2"))
    cat = _catalog([[F("var/lib/dpkg/status", one)], [F("var/lib/dpkg/status", two)]])
    (a,) = cat.packages
    assert a.version == "2" and a.layer is not None and a.layer.index == 1


def test_dpkg_distroless_status_d_and_opaque_dir() -> None:
    cat = _catalog(
        [
            [D("var/lib/dpkg/status.d"),
             F("var/lib/dpkg/status.d/base", dpkg_status(dpkg_para("base-files", "12.4"))),
             F("var/lib/dpkg/status.d/old", dpkg_status(dpkg_para("old", "1"))),
             F("var/lib/dpkg/status.d/old.md5sums", "abc  /x\n")],
            [D("var/lib/dpkg/status.d"), OPQ("var/lib/dpkg/status.d"),
             F("var/lib/dpkg/status.d/tzdata", dpkg_status(dpkg_para("tzdata", "2024a", "all")))],
        ]
    )  # fmt: skip
    assert [(p.name, p.layer.index) for p in cat.packages] == [("tzdata", 1)]
    assert cat.packages[0].purl == "pkg:deb/debian/tzdata@2024a?arch=all"


def test_copyright_licenses_dep5_only() -> None:
    assert copyright_licenses(DEP5.format(name="x", lic="MIT")) == ["MIT", "GPL-2+"]
    assert copyright_licenses("Some text\nLicense: MIT\n") == []


_key = st.from_regex(r"[A-Z][A-Za-z-]{0,10}", fullmatch=True)
_val = st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(_key, _val, min_size=1, max_size=5), max_size=4))
def test_parse_paragraphs_roundtrip(paras: list[dict[str, str]]) -> None:
    text = "\n".join("".join(f"{k}: {v}\n" for k, v in p.items()) for p in paras)
    assert parse_paragraphs(text) == paras


def test_parse_paragraphs_continuations() -> None:
    text = "A: 1\nB: x\n y\n .\n z\nA: dup\n\n\nC: 3\n"
    assert parse_paragraphs(text) == [{"A": "1", "B": "x\ny\n.\nz"}, {"C": "3"}]


# -- apk ------------------------------------------------------------------------------------


def test_apk_installed() -> None:
    db = (
        apk_record("musl", "1.2.4-r2", lic="MIT")
        + "\n"
        + apk_record("busybox", "1.36.1-r15", lic="GPL-2.0-only")
        + "\n"
        + apk_record("ssl_client", "1.36.1-r15", lic="GPL-2.0-only", origin="busybox")
    )
    cat = _catalog([[F("etc/os-release", OS_RELEASE_ALPINE), F("lib/apk/db/installed", db)]])
    pk = _by_name(cat)
    assert set(pk) == {"musl", "busybox", "ssl_client"}
    assert pk["musl"].purl == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
    assert pk["ssl_client"].purl.endswith("&upstream=busybox")
    assert pk["busybox"].licenses == ("GPL-2.0-only",)


def test_apk_whiteout_of_db_in_later_layer() -> None:
    db = apk_record("musl", "1.2.4-r2")
    cat = _catalog([[F("lib/apk/db/installed", db)], [WH("lib/apk")]])
    assert cat.packages == ()


# -- rpm ------------------------------------------------------------------------------------


def _rpm(name: str, ver: str, rel: str, *, epoch: int | None = None, lic: str = "MIT") -> bytes:
    tags: dict[int, str | int] = {1000: name, 1001: ver, 1002: rel, 1014: lic, 1022: "x86_64",
                                  1044: f"{name}-{ver}-{rel}.src.rpm", 1011: "Fedora Project"}  # fmt: skip
    if epoch is not None:
        tags[1003] = epoch
    return rpm_header(tags)


def test_rpm_sqlite_db() -> None:
    db = rpmdb_sqlite(
        [_rpm("bash", "5.2.26", "1.fc39", lic="GPL-3.0-or-later"),
         _rpm("openssl-libs", "3.1.1", "4.fc39", epoch=1, lic="Apache-2.0"),
         rpm_header({1000: "gpg-pubkey", 1001: "abc", 1002: "def"})]
    )  # fmt: skip
    cat = _catalog(
        [[F("etc/os-release", OS_RELEASE_FEDORA), D("usr/lib/sysimage/rpm"),
          F("usr/lib/sysimage/rpm/rpmdb.sqlite", db),
          L("var/lib/rpm", "../../usr/lib/sysimage/rpm")]]
    )  # fmt: skip
    pk = _by_name(cat)
    assert set(pk) == {"bash", "openssl-libs"}
    ossl = pk["openssl-libs"]
    assert ossl.version == "1:3.1.1-4.fc39"
    assert ossl.purl == (
        "pkg:rpm/fedora/openssl-libs@3.1.1-4.fc39?arch=x86_64&distro=fedora-39&epoch=1"
        "&upstream=openssl-libs-3.1.1-4.fc39.src.rpm"
    )
    assert pk["bash"].licenses == ("GPL-3.0-or-later",)


def test_rpm_berkeleydb_is_noted_not_guessed() -> None:
    cat = _catalog([[F("var/lib/rpm/Packages", b"\x00\x06\x15\x61" + b"\x00" * 100)]])
    assert cat.packages == ()
    assert any("BerkeleyDB" in n for n in cat.notes)


def test_rpm_header_bounds_checked() -> None:
    good = _rpm("x", "1", "1")
    assert parse_header(good).name == "x"
    with pytest.raises(InputError):
        parse_header(good[:20])
    with pytest.raises(InputError):
        parse_header(b"\xff\xff\xff\xff\x00\x00\x00\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_rpm_header_fuzz(blob: bytes) -> None:
    try:
        parse_header(blob)
    except InputError:
        pass


# -- python ---------------------------------------------------------------------------------


def test_python_dist_info_and_egg_info() -> None:
    sp = "usr/local/lib/python3.12/site-packages"
    cat = _catalog(
        [
            [F(f"{sp}/requests-2.31.0.dist-info/METADATA",
               "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\nbody"),
             F(f"{sp}/Foo_Bar-1.0.dist-info/METADATA",
               "Metadata-Version: 2.4\nName: Foo_Bar\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\n"),
             F(f"{sp}/six-1.16.0.dist-info/METADATA",
               "Name: six\nVersion: 1.16.0\nLicense: UNKNOWN\n"
               "Classifier: License :: OSI Approved :: MIT License\n"),
             F("usr/lib/python3/dist-packages/old.egg-info", "Name: old\nVersion: 0.1\n"),
             F("usr/lib/python3/dist-packages/pkg.egg-info/PKG-INFO", "Name: pkg\nVersion: 3\n"),
             F(f"{sp}/gone-1.dist-info/METADATA", "Name: gone\nVersion: 1\n")],
            [WH(f"{sp}/gone-1.dist-info")],
        ]
    )  # fmt: skip
    pk = _by_name(cat)
    assert set(pk) == {"requests", "Foo_Bar", "six", "old", "pkg"}
    assert pk["Foo_Bar"].purl == "pkg:pypi/foo-bar@1.0"
    assert pk["Foo_Bar"].licenses == ("MIT OR Apache-2.0",)
    assert pk["six"].licenses == ("MIT",)
    assert pk["requests"].licenses == ("Apache 2.0",)


# -- npm ------------------------------------------------------------------------------------


def test_npm_packages() -> None:
    nm = "app/node_modules"
    cat = _catalog(
        [[F(f"{nm}/lodash/package.json", json.dumps({"name": "lodash", "version": "4.17.21",
                                                     "license": "MIT"})),
          F(f"{nm}/@babel/core/package.json", json.dumps({"name": "@babel/core", "version": "7.24.0",
                                                         "license": {"type": "MIT"}})),
          F(f"{nm}/lodash/node_modules/old/package.json", json.dumps(
              {"name": "old", "version": "0.0.1", "licenses": [{"type": "BSD"}, {"type": "GPL"}]})),
          F(f"{nm}/broken/package.json", "{nope"),
          F(f"{nm}/lodash/lib/package.json", json.dumps({"name": "not-a-package", "version": "1"})),
          F("app/package.json", json.dumps({"name": "app", "version": "1.0.0"}))]]
    )  # fmt: skip
    pk = _by_name(cat)
    assert set(pk) == {"lodash", "@babel/core", "old"}
    assert pk["@babel/core"].purl == "pkg:npm/%40babel/core@7.24.0"
    assert pk["old"].licenses == ("BSD", "GPL")
    assert any("broken" in n for n in cat.notes)


# -- go -------------------------------------------------------------------------------------


def test_go_binary_modules() -> None:
    elf = fake_elf(go_buildinfo("go1.22.1", GO_MODINFO), pad=3 << 20)  # spans several reads
    cat = _catalog([[F("usr/local/bin/hello", elf, 0o755)]])
    pk = {p.purl: p for p in cat.packages}
    assert set(pk) == {
        "pkg:golang/example.com/hello@v1.2.3",
        "pkg:golang/github.com/pkg/errors@v0.9.1",
        "pkg:golang/golang.org/x/sys@v0.2.0",  # the replacement wins
        "pkg:golang/stdlib@1.22.1",
    }
    p = pk["pkg:golang/github.com/pkg/errors@v0.9.1"]
    assert p.paths == ("/usr/local/bin/hello",) and p.layer is not None
    assert ("go-version", "go1.22.1") in p.metadata


def test_go_old_format_is_noted() -> None:
    elf = fake_elf(go_buildinfo("go1.16", "", pointer_free=False))
    cat = _catalog([[F("bin/old", elf, 0o755)]])
    assert cat.packages == ()
    assert any("Go < 1.18" in n for n in cat.notes)


def test_go_non_executable_or_non_elf_ignored() -> None:
    elf = fake_elf(go_buildinfo("go1.22.1", GO_MODINFO))
    cat = _catalog([[F("data/blob", elf, 0o644), F("bin/x", b"#!" + elf[2:], 0o755)]])
    assert cat.packages == ()


@pytest.mark.parametrize("split", [1, 7, 13, 4096])
def test_go_scanner_finds_magic_across_chunk_boundaries(split: int) -> None:
    blob = go_buildinfo("go1.21.0", GO_MODINFO)
    elf = fake_elf(blob, pad=100)

    class Stream:
        def __init__(self) -> None:
            self.it = chunks(elf, split)
            self.buf = b""

        def read(self, n: int = -1) -> bytes:
            while len(self.buf) < max(n, 1):
                nxt = next(self.it, None)
                if nxt is None:
                    break
                self.buf += nxt
            out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
            return out

    got = GoBuildInfoScanner().scan(Stream(), len(elf))
    assert got is not None and decode_buildinfo(got).go_version == "go1.21.0"


def test_go_decode_errors() -> None:
    with pytest.raises(BuildInfoError):
        decode_buildinfo(b"\xff Go buildinf:\x08\x02" + b"\x00" * 16 + b"\xff\xff")
    bi = decode_buildinfo(go_buildinfo("go1.20", "too short"))
    assert bi.main is None and bi.deps == ()
