"""manifest create (push-by-digest then merge) and manifest inspect, offline (layouts, store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.images import make_index, single_image
from oci.schema_check import assert_valid_oci
from xarch.content.store import ContentStore
from xarch.oci import mediatype as mt
from xarch.oci.manifest import Index

from .conftest import Runner, assert_store_ok, write_layout

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")


def _singles(tmp_path: Path, media_type: str = mt.OCI_MANIFEST) -> list[tuple[str, str]]:
    out = []
    for p in PLATFORMS:
        img = single_image(p, media_type=media_type)
        d = write_layout(tmp_path / p.replace("/", "-"), img)
        out.append((f"oci:{d}:v1", str(img.root.digest)))
    return out


def _root(path: Path, tag: str) -> bytes:
    store = ContentStore(path)
    (e,) = [
        e
        for e in store.read_index()
        if e.annotations.get("org.opencontainers.image.ref.name") == tag
    ]
    return store.read_bytes(e.digest)


def test_create_from_per_arch_images(xarch: Runner, tmp_path: Path) -> None:
    srcs = _singles(tmp_path)
    target = tmp_path / "merged"
    r = xarch("manifest", "create", f"oci:{target}:multi", *(s for s, _ in srcs))
    assert r.code == 0, r
    raw = _root(target, "multi")
    assert r.out.strip() == "sha256:" + __import__("hashlib").sha256(raw).hexdigest()
    idx = Index.parse(raw)
    assert idx.media_type == mt.OCI_INDEX
    assert_valid_oci(mt.OCI_INDEX, raw)
    assert [str(d.digest) for d in idx.manifests] == [d for _, d in srcs]
    # platforms read from each image's config
    assert [str(d.platform) for d in idx.manifests] == list(PLATFORMS)
    # everything the index references was copied into the target layout
    assert xarch("copy", f"oci:{target}:multi", f"oci:{tmp_path / 'again'}:x").code == 0
    # deterministic: same inputs, same digest
    r2 = xarch("manifest", "create", f"oci:{tmp_path / 'm2'}:multi", *(s for s, _ in srcs))
    assert r2.out == r.out


def test_create_docker_list_when_all_docker(xarch: Runner, tmp_path: Path) -> None:
    srcs = _singles(tmp_path, mt.DOCKER_MANIFEST)
    r = xarch("manifest", "create", f"oci:{tmp_path / 'm'}:v", *(s for s, _ in srcs))
    assert r.code == 0, r
    assert Index.parse(_root(tmp_path / "m", "v")).media_type == mt.DOCKER_MANIFEST_LIST
    # an annotation needs the OCI index (Docker lists have none)
    a = xarch(
        "manifest",
        "create",
        "--annotation",
        "org.opencontainers.image.version=1.0",
        f"oci:{tmp_path / 'a'}:v",
        *(s for s, _ in srcs),
    )
    assert a.code == 0, a
    idx = Index.parse(_root(tmp_path / "a", "v"))
    assert idx.media_type == mt.OCI_INDEX
    assert dict(idx.annotations) == {"org.opencontainers.image.version": "1.0"}


def test_create_flattens_index_sources(xarch: Runner, tmp_path: Path) -> None:
    both = make_index(["linux/amd64", "linux/arm64"])
    a = write_layout(tmp_path / "both", both)
    v7 = single_image("linux/arm/v7")
    b = write_layout(tmp_path / "v7", v7)
    r = xarch(
        "manifest",
        "create",
        "--annotation",
        "manifest-descriptor:org.example=x",
        "store:merged:1",
        f"oci:{a}:v1",
        f"oci:{b}:v1",
    )
    assert r.code == 0, r
    raw = xarch("inspect", "--raw", "merged:1").out_bytes
    idx = Index.parse(raw)
    assert [str(d.platform) for d in idx.manifests] == list(PLATFORMS)
    assert all(d.annotations["org.example"] == "x" for d in idx.manifests)
    assert_store_ok(xarch)


def test_single_index_source_is_kept_byte_for_byte(xarch: Runner, tmp_path: Path) -> None:
    img = make_index(list(PLATFORMS))
    a = write_layout(tmp_path / "img", img)
    r = xarch("manifest", "create", f"oci:{tmp_path / 't'}:v", f"oci:{a}:v1")
    assert r.out.strip() == str(img.root.digest)


def test_create_rejects_duplicate_platforms_and_bad_annotations(
    xarch: Runner, tmp_path: Path
) -> None:
    one = write_layout(tmp_path / "one", single_image("linux/amd64", {"a": b"1"}))
    two = write_layout(tmp_path / "two", single_image("linux/amd64", {"a": b"2"}))
    dup = xarch("manifest", "create", f"oci:{tmp_path / 't'}:v", f"oci:{one}:v1", f"oci:{two}:v1")
    assert dup.code == 1 and dup.err_lines == [dup.err_lines[0]]
    assert "linux/amd64" in dup.err and dup.err.startswith("error: ")
    bad = xarch(
        "manifest", "create", "--annotation", "novalue", f"oci:{tmp_path / 't'}:v", f"oci:{one}:v1"
    )
    assert bad.code == 2 and "KEY=VALUE" in bad.err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("args", [("manifest", "create", "oci:/tmp/x:v"), ("manifest", "create")])
def test_create_needs_sources(xarch: Runner, args: tuple[str, ...]) -> None:
    assert xarch(*args).code == 2


def test_dry_run_prints_index_and_writes_nothing(xarch: Runner, tmp_path: Path) -> None:
    srcs = _singles(tmp_path)
    r = xarch("manifest", "create", "--dry-run", f"oci:{tmp_path / 'dry'}:v", *(s for s, _ in srcs))
    assert r.code == 0
    doc = json.loads(r.out)
    assert len(doc["manifests"]) == 3
    assert not (tmp_path / "dry").exists()


def test_platform_read_from_config_when_the_source_index_lacks_it(
    xarch: Runner, tmp_path: Path
) -> None:
    img = make_index(list(PLATFORMS))
    idx = Index.parse(img.root_raw)
    bare = Index.build([d.replace(platform=None) for d in idx.manifests])
    img.manifests[bare.digest] = (mt.OCI_INDEX, bare.raw)
    del img.manifests[img.root.digest]
    img.root = bare.descriptor
    src = write_layout(tmp_path / "bare", img)
    assert (
        json.loads(xarch("inspect", "--format", "json", f"oci:{src}:v1").out)["manifests"][0][
            "platform"
        ]
        == "linux/amd64"
    )  # inspect reads it from the config too
    # with an annotation the index is rebuilt, and the entries get their platforms
    r = xarch(
        "manifest", "create", "--annotation", "a=b", f"oci:{tmp_path / 't'}:v", f"oci:{src}:v1"
    )
    assert r.code == 0, r
    out = Index.parse(_root(tmp_path / "t", "v"))
    assert [str(d.platform) for d in out.manifests] == list(PLATFORMS)
    assert [d.digest for d in out.manifests] == [d.digest for d in idx.manifests]
