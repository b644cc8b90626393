from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from attest.sbom._fixtures import (
    DEP5,
    GO_MODINFO,
    OPQ,
    OS_RELEASE_DEBIAN,
    WH,
    D,
    F,
    FakeImage,
    L,
    dpkg_para,
    dpkg_status,
    fake_elf,
    go_buildinfo,
    make_image,
)
from attest.sbom._schemas import (
    cyclonedx_validator,
    errors,
    spdx_expression_errors,
    spdx_validator,
)
from xarch.attest.sbom import cyclonedx, spdx
from xarch.attest.sbom.api import catalog_image, render
from xarch.attest.sbom.model import Catalog

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("XARCH_UPDATE_GOLDEN") == "1"


def fixture_image(platform: str = "linux/amd64") -> FakeImage:
    """Two layers touching every cataloger, with whiteouts and an opaque directory. Plain tar
    layers, so digests do not depend on the zlib build."""
    sp = "usr/lib/python3/dist-packages"
    status1 = dpkg_status(
        dpkg_para("base-files", "12.4+deb12u5"),
        dpkg_para("libc6", "2.36-9+deb12u4", source="glibc"),
        dpkg_para("perl-base", "5.36.0-7+deb12u1", source="perl"),
    )
    status2 = status1 + b"\n" + dpkg_status(dpkg_para("ca-certificates", "20230311", "all"))
    return make_image(
        [
            [D("usr/lib"), F("usr/lib/os-release", OS_RELEASE_DEBIAN),
             L("etc/os-release", "../usr/lib/os-release"),
             F("var/lib/dpkg/status", status1),
             F("usr/share/doc/libc6/copyright", DEP5.format(name="glibc", lic="LGPL-2.1+")),
             F("usr/share/doc/perl-base/copyright",
               DEP5.format(name="perl", lic="Artistic or GPL-1+")),
             F("usr/share/doc/base-files/copyright", DEP5.format(name="bf", lic="public-domain")),
             F(f"{sp}/six-1.16.0.egg-info/PKG-INFO", "Name: six\nVersion: 1.16.0\nLicense: MIT\n"),
             F(f"{sp}/old-0.1.egg-info/PKG-INFO", "Name: old\nVersion: 0.1\n"),
             F("srv/app/node_modules/left-pad/package.json",
               json.dumps({"name": "left-pad", "version": "1.3.0", "license": "WTFPL"})),
             F("srv/app/node_modules/gone/package.json",
               json.dumps({"name": "gone", "version": "1.0.0", "license": "ISC"}))],
            [F("var/lib/dpkg/status", status2),
             F("usr/share/doc/ca-certificates/copyright",
               DEP5.format(name="ca", lic="GPL-2+ with OpenSSL exception")),
             WH(f"{sp}/old-0.1.egg-info"),
             D("srv/app/node_modules"), OPQ("srv/app/node_modules"),
             F("srv/app/node_modules/@scope/util/package.json",
               json.dumps({"name": "@scope/util", "version": "2.0.0", "license": "(MIT OR Apache-2.0)"})),
             F("usr/local/bin/hello", fake_elf(go_buildinfo("go1.22.1", GO_MODINFO)), 0o755)],
        ],
        platform=platform,
        compression="plain",
    )  # fmt: skip


def fixture_catalog(platform: str = "linux/amd64") -> Catalog:
    img = fixture_image(platform)
    return catalog_image(img, img.info("registry.example.com/team/app"))


@pytest.mark.parametrize(("fmt", "fname"), [("spdx-json", "fixture.spdx.json"),
                                             ("cyclonedx-json", "fixture.cdx.json")])  # fmt: skip
def test_golden(fmt: str, fname: str) -> None:
    out = render(fixture_catalog(), fmt)
    path = GOLDEN / fname
    if UPDATE:
        path.write_bytes(out)
    assert out == path.read_bytes(), f"{fname} changed (XARCH_UPDATE_GOLDEN=1 to accept)"


def test_fixture_contents() -> None:
    cat = fixture_catalog()
    names = sorted(p.name for p in cat.packages)
    assert names == sorted(
        ["base-files", "libc6", "perl-base", "ca-certificates", "six", "@scope/util",
         "example.com/hello", "github.com/pkg/errors", "golang.org/x/sys", "stdlib"]
    )  # fmt: skip


def test_spdx_validates_and_is_well_formed() -> None:
    doc = spdx.build(fixture_catalog())
    assert errors(spdx_validator(), doc) == []
    assert spdx_expression_errors(doc) == []
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    rels = doc["relationships"]
    assert rels[0] == {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                       "relatedSpdxElement": "SPDXRef-Image"}  # fmt: skip
    contained = {r["relatedSpdxElement"] for r in rels if r["relationshipType"] == "CONTAINS"}
    assert contained == set(ids) - {"SPDXRef-Image"}
    # every LicenseRef used is defined
    used = set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", json.dumps(doc["packages"])))
    defined = {e["licenseId"] for e in doc["hasExtractedLicensingInfos"]}
    assert used == defined and "LicenseRef-public-domain" in used
    by_name = {p["name"]: p for p in doc["packages"]}
    assert by_name["perl-base"]["licenseDeclared"] == (
        "(Artistic-1.0-Perl OR GPL-1.0-or-later) AND GPL-2.0-or-later"
    )
    assert by_name["github.com/pkg/errors"]["licenseDeclared"] == "NOASSERTION"
    assert doc["creationInfo"]["created"] == "2024-05-06T07:08:09Z"
    assert doc["creationInfo"]["creators"] == ["Tool: xarch-" + __import__("xarch").__version__]


def test_cyclonedx_validates_and_is_well_formed() -> None:
    doc = cyclonedx.build(fixture_catalog())
    assert errors(cyclonedx_validator(), doc) == []
    comps = doc["components"]
    refs = [c["bom-ref"] for c in comps]
    assert len(refs) == len(set(refs))
    assert doc["metadata"]["component"]["type"] == "container"
    assert comps[0]["type"] == "operating-system"
    assert doc["dependencies"][0]["dependsOn"] == refs
    util = next(c for c in comps if c["name"] == "@scope/util")
    assert util["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    props = {p["name"]: p["value"] for p in util["properties"]}
    assert props["xarch:layer:index"] == "1"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", props["xarch:layer:digest"])


def test_schema_validation_catches_breakage() -> None:
    doc = cyclonedx.build(fixture_catalog())
    doc["components"][1]["type"] = "not-a-type"
    assert errors(cyclonedx_validator(), doc)
    sdoc = spdx.build(fixture_catalog())
    del sdoc["packages"][1]["downloadLocation"]
    assert errors(spdx_validator(), sdoc)
    sdoc = spdx.build(fixture_catalog())
    sdoc["packages"][2]["licenseDeclared"] = "MIT AND (GPL-2.0-only"
    assert spdx_expression_errors(sdoc)


def test_deterministic_and_unique_per_platform() -> None:
    a1, a2 = fixture_catalog("linux/amd64"), fixture_catalog("linux/amd64")
    b = fixture_catalog("linux/arm64")
    assert render(a1, "spdx-json") == render(a2, "spdx-json")
    assert render(a1, "cyclonedx-json") == render(a2, "cyclonedx-json")
    sa, sb = spdx.build(a1), spdx.build(b)
    assert sa["documentNamespace"] != sb["documentNamespace"]
    assert cyclonedx.build(a1)["serialNumber"] != cyclonedx.build(b)["serialNumber"]


def test_created_override() -> None:
    cat = fixture_catalog()
    doc = cyclonedx.build(cat, created="2030-01-01T01:02:03.999+02:00")
    assert doc["metadata"]["timestamp"] == "2029-12-31T23:02:03Z"


def test_duplicate_purls_get_distinct_bom_refs() -> None:
    img = make_image(
        [[F("a/node_modules/x/package.json", json.dumps({"name": "x", "version": "1"})),
          F("b/node_modules/x/package.json", json.dumps({"name": "x", "version": "1"}))]]
    )  # fmt: skip
    cat = catalog_image(img, img.info())
    doc = cyclonedx.build(cat)
    assert errors(cyclonedx_validator(), doc) == []
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == 2 and len(set(refs)) == 2
    sdoc = spdx.build(cat)
    assert errors(spdx_validator(), sdoc) == []
    assert len({p["SPDXID"] for p in sdoc["packages"]}) == 3
