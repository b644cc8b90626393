from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest.sbom._fixtures import F, dpkg_para, dpkg_status, layer_tar
from attest.sbom._schemas import cyclonedx_validator, errors, spdx_validator
from helpers.images import ImageSet, MemorySource, write_image
from xarch.attest.sbom import generate_sbom, generate_sboms
from xarch.errors import IntegrityError, NotFoundError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.transports.layout import LayoutSink, LayoutSource

OS = 'ID=debian\nVERSION_ID="12"\n'


def _platform_image(out: ImageSet, plat: str) -> Descriptor:
    p = Platform.parse(plat)
    tar = layer_tar(
        [F("etc/os-release", OS),
         F("var/lib/dpkg/status", dpkg_status(dpkg_para("hello", "1.0", p.architecture)))]
    )  # fmt: skip
    import gzip

    blob = gzip.compress(tar, mtime=0)
    ld = Descriptor.of(mt.OCI_LAYER_GZIP, blob)
    cfg = ImageConfig.build(
        {"created": "2024-01-01T00:00:00Z", "architecture": p.architecture, "os": p.os,
         "rootfs": {"type": "layers", "diff_ids": [str(Digest.from_bytes(tar))]}}
    )  # fmt: skip
    m = Manifest.build(cfg.descriptor(), [ld])
    out.blobs[ld.digest] = blob
    out.blobs[cfg.digest] = cfg.raw
    out.manifests[m.digest] = (mt.OCI_MANIFEST, m.raw)
    return Descriptor.of(mt.OCI_MANIFEST, m.raw, platform=p)


def _index(*plats: str, attestation: bool = True) -> ImageSet:
    out = ImageSet(Descriptor.of(mt.OCI_INDEX, b"{}"))
    entries = [_platform_image(out, p) for p in plats]
    if attestation:
        # a buildx-style attestation manifest: unknown/unknown, must not get an SBOM
        att_cfg = b"{}"
        layer = b'{"_type":"https://in-toto.io/Statement/v0.1"}'
        out.blobs[Digest.from_bytes(att_cfg)] = att_cfg
        out.blobs[Digest.from_bytes(layer)] = layer
        am = Manifest.build(Descriptor.of(mt.OCI_CONFIG, att_cfg),
                            [Descriptor.of(mt.IN_TOTO, layer)])  # fmt: skip
        out.manifests[am.digest] = (mt.OCI_MANIFEST, am.raw)
        entries.append(
            Descriptor.of(
                mt.OCI_MANIFEST, am.raw, platform=Platform("unknown", "unknown"),
                annotations={"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": str(entries[0].digest)},
            )
        )  # fmt: skip
    idx = Index.build(entries)
    out.root = idx.descriptor
    out.manifests[idx.digest] = (mt.OCI_INDEX, idx.raw)
    return out


def test_one_sbom_per_platform_never_for_the_index() -> None:
    src = MemorySource(_index("linux/amd64", "linux/arm64"))
    sboms = generate_sboms(src, fmt="cyclonedx-json", name="example.com/app")
    assert set(sboms) == {Platform.parse("linux/amd64"), Platform.parse("linux/arm64")}
    for plat, raw in sboms.items():
        doc = json.loads(raw)
        assert errors(cyclonedx_validator(), doc) == []
        (hello,) = [c for c in doc["components"] if c["name"] == "hello"]
        assert f"arch={plat.architecture}" in hello["purl"]
        assert doc["metadata"]["component"]["version"] != str(src.image.root.digest)


def test_generate_sbom_on_index_needs_a_platform() -> None:
    src = MemorySource(_index("linux/amd64", "linux/arm64"))
    with pytest.raises(UsageError, match="multi-platform"):
        generate_sbom(src)
    raw = generate_sbom(src, platform=Platform.parse("linux/arm64"))
    doc = json.loads(raw)
    assert errors(spdx_validator(), doc) == []
    assert "(linux/arm64)" in doc["name"]
    with pytest.raises(NotFoundError, match="linux/s390x"):
        generate_sbom(src, platform=Platform.parse("linux/s390x"))


def test_platforms_filter_and_single_manifest() -> None:
    src = MemorySource(_index("linux/amd64", "linux/arm64", "linux/arm/v7"))
    out = generate_sboms(src, platforms=[Platform.parse("linux/arm/v7")])
    assert list(out) == [Platform.parse("linux/arm/v7")]
    single = ImageSet(Descriptor.of(mt.OCI_INDEX, b"{}"))
    d = _platform_image(single, "linux/arm64")
    single.root = d.replace(platform=None)
    assert list(generate_sboms(MemorySource(single))) == [Platform.parse("linux/arm64")]
    assert generate_sbom(MemorySource(single))


def test_corrupt_layer_fails() -> None:
    image = _index("linux/amd64", attestation=False)
    layer = next(d for d, b in image.blobs.items() if b[:2] == b"\x1f\x8b")
    with pytest.raises(IntegrityError):
        generate_sboms(MemorySource(image, corrupt=[layer]))


def test_location_string_over_oci_layout(tmp_path: Path) -> None:
    image = _index("linux/amd64", "linux/arm64")
    sink = LayoutSink(tmp_path / "lay", "v1")
    write_image(sink, image)
    sink.close()
    out = generate_sboms(f"oci:{tmp_path / 'lay'}:v1", fmt="spdx-json")
    assert len(out) == 2
    src = LayoutSource(tmp_path / "lay", "v1")
    assert generate_sboms(src, fmt="spdx-json") == out


def test_unknown_format() -> None:
    with pytest.raises(UsageError):
        generate_sboms(MemorySource(_index("linux/amd64")), fmt="xml")
