"""copy / inspect / tag / ls / rm / prune / store verify against OCI layouts and the local store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from helpers.images import ImageSet, make_index
from oci.schema_check import assert_valid_oci
from xarch.content.store import ContentStore
from xarch.oci import mediatype as mt
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, parse_any

from .conftest import Runner, assert_store_ok, write_layout


def _layout_root(path: Path, tag: str) -> tuple[str, bytes]:
    store = ContentStore(path)
    entry = next(
        e
        for e in store.read_index()
        if e.annotations.get("org.opencontainers.image.ref.name") == tag
    )
    return str(entry.digest), store.read_bytes(entry.digest)


def test_copy_all_keeps_every_digest(
    xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, img = multi
    r = xarch("--progress", "plain", "copy", f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:copied")
    assert r.code == 0, r
    assert r.out.strip() == str(img.root.digest)
    digest, raw = _layout_root(tmp_path / "out", "copied")
    assert digest == str(img.root.digest)
    assert raw == img.root_raw
    for d, (media_type, manifest_raw) in img.manifests.items():
        assert ContentStore(tmp_path / "out").read_bytes(d) == manifest_raw
        assert_valid_oci(media_type, manifest_raw)
    # one plain line per blob, then manifests, then the summary
    copies = [ln for ln in r.err_lines if ln.startswith("copy sha256:")]
    assert len(copies) == len(img.blobs)
    for ln in copies:
        _, digest_s, size, unit = ln.split()
        assert len(img.blobs[Digest(digest_s)]) == int(size) and unit == "bytes"
    assert r.err_lines[-1].startswith(f"copied {img.root.digest}")
    # again: everything exists
    again = xarch(
        "--progress", "plain", "copy", "--all", f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:copied"
    )
    assert again.code == 0
    assert len([ln for ln in again.err_lines if ln.startswith("skip ")]) == len(img.blobs)


def test_copy_into_store_and_back(
    xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, img = multi
    assert xarch("--progress", "quiet", "copy", f"oci:{src}:v1", "app:1").code == 0
    ls = xarch("ls", "--format", "json")
    assert ls.code == 0
    (entry,) = json.loads(ls.out)
    assert entry["name"] == "docker.io/library/app:1"
    assert entry["digest"] == str(img.root.digest)
    assert entry["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    expected = sum(len(b) for b in img.blobs.values()) + sum(
        len(m[1]) for m in img.manifests.values()
    )
    assert entry["size"] == expected
    assert entry["created"]
    table = xarch("ls")
    assert "docker.io/library/app:1" in table.out and str(img.root.digest)[:19] in table.out
    back = xarch("copy", "store:app:1", f"oci:{tmp_path / 'back'}:x")
    assert back.code == 0
    assert _layout_root(tmp_path / "back", "x")[1] == img.root_raw
    assert_store_ok(xarch)


def test_copy_one_platform_and_subset(
    xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, img = multi
    index = Index.parse(img.root_raw)
    arm64 = next(d for d in index.manifests if d.platform and d.platform.architecture == "arm64")
    r = xarch("copy", "--platform", "linux/arm64", f"oci:{src}:v1", f"oci:{tmp_path / 'one'}:a")
    assert r.code == 0, r
    assert _layout_root(tmp_path / "one", "a")[0] == str(arm64.digest)
    two = xarch(
        "copy",
        "--platform",
        "linux/amd64,linux/arm/v7",
        f"oci:{src}:v1",
        f"oci:{tmp_path / 'two'}:b",
    )
    assert two.code == 0, two
    digest, raw = _layout_root(tmp_path / "two", "b")
    sub = parse_any(raw)
    assert isinstance(sub, Index)
    assert [str(d.platform) for d in sub.manifests] == ["linux/amd64", "linux/arm/v7"]
    assert digest != str(img.root.digest)
    assert_valid_oci(mt.OCI_INDEX, raw)


def test_copy_docker_archive_needs_one_platform(
    xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, _ = multi
    bad = xarch("copy", f"oci:{src}:v1", f"docker-archive:{tmp_path / 'a.tar'}:app:1")
    assert bad.code == 2 and bad.err_lines[-1].startswith("error: ") and "--platform" in bad.err
    assert not (tmp_path / "a.tar").exists()
    ok = xarch(
        "copy",
        "--platform",
        "linux/amd64",
        f"oci:{src}:v1",
        f"docker-archive:{tmp_path / 'a.tar'}:app:1",
    )
    assert ok.code == 0, ok
    assert (tmp_path / "a.tar").stat().st_size > 0


def test_copy_usage_errors(xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path) -> None:
    src, _ = multi
    both = xarch("copy", "--all", "--platform", "linux/amd64", f"oci:{src}:v1", "x:1")
    assert both.code == 2
    bad_platform = xarch("copy", "--platform", "linux/", f"oci:{src}:v1", "x:1")
    assert bad_platform.code == 2 and bad_platform.err_lines[0].startswith("error: ")
    missing_platform = xarch("copy", "--platform", "linux/s390x", f"oci:{src}:v1", "x:1")
    assert missing_platform.code == 1 and "available: linux/amd64" in missing_platform.err
    assert xarch("copy", f"oci:{src}:v1").code == 2  # missing DST


def test_inspect_summary_raw_and_json(xarch: Runner, multi: tuple[Path, ImageSet]) -> None:
    src, img = multi
    loc = f"oci:{src}:v1"
    raw = xarch("inspect", "--raw", loc)
    assert raw.code == 0
    assert raw.out_bytes == img.root_raw
    assert hashlib.sha256(raw.out_bytes).hexdigest() == img.root.digest.hex
    table = xarch("inspect", loc)
    assert table.code == 0
    assert f"Digest:     {img.root.digest}" in table.out
    assert "Platforms:  linux/amd64, linux/arm64, linux/arm/v7" in table.out
    assert "Env:        PATH=/usr/bin:/bin" in table.out
    assert "Created:    1970-01-01T00:00:00Z" in table.out
    j = json.loads(xarch("inspect", "--format", "json", loc).out)
    assert j["digest"] == str(img.root.digest) and j["mediaType"] == mt.OCI_INDEX
    assert [m["platform"] for m in j["manifests"]] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    for m in j["manifests"]:
        assert m["layers"] == 1 and m["layersSize"] > 0 and m["env"] == ["PATH=/usr/bin:/bin"]
    # --platform picks the child; --raw gives its exact bytes
    index = Index.parse(img.root_raw)
    v7 = next(d for d in index.manifests if d.platform and d.platform.variant == "v7")
    child = xarch("inspect", "--raw", "--platform", "linux/arm/v7", loc)
    assert child.out_bytes == img.manifests[v7.digest][1]
    pretty = xarch("manifest", "inspect", loc)
    assert json.loads(pretty.out) == json.loads(img.root_raw)
    nope = xarch("inspect", "--platform", "linux/ppc64le", loc)
    assert nope.code == 1 and "available:" in nope.err


def test_inspect_single_manifest(xarch: Runner, single: tuple[Path, ImageSet]) -> None:
    src, _ = single
    r = xarch("inspect", "--format", "json", f"oci:{src}:v1")
    assert r.code == 0, r
    j = json.loads(r.out)
    assert j["mediaType"] == mt.OCI_MANIFEST
    assert j["manifests"][0]["platform"] == "linux/arm64"
    wrong = xarch("inspect", "--platform", "linux/amd64", f"oci:{src}:v1")
    assert wrong.code == 1 and "linux/arm64" in wrong.err


def test_tag_rm_prune(
    xarch: Runner, multi: tuple[Path, ImageSet], single: tuple[Path, ImageSet]
) -> None:
    src, img = multi
    ssrc, simg = single
    assert xarch("copy", f"oci:{src}:v1", "app:1").code == 0
    assert xarch("copy", f"oci:{ssrc}:v1", "other:1").code == 0
    t = xarch("tag", "app:1", "app:2")
    assert t.code == 0 and t.out.strip() == str(img.root.digest)
    names = xarch("ls", "-q").out.split()
    assert names == [
        "docker.io/library/app:1",
        "docker.io/library/app:2",
        "docker.io/library/other:1",
    ]
    # nothing unreferenced yet
    dry = xarch("prune", "--dry-run")
    assert dry.code == 0 and "would remove 0 blob(s)" in dry.out
    assert xarch("rm", "app:1").code == 0
    assert "removed 0 blob(s)" in xarch("prune").out  # app:2 still holds the content
    # a typo removes nothing
    typo = xarch("rm", "app:2", "nosuch:1")
    assert typo.code == 1 and typo.err_lines[0].startswith("error: ")
    assert "docker.io/library/app:2" in xarch("ls", "-q").out
    assert xarch("rm", "app:2").code == 0
    n_blobs = len(img.blobs) + len(img.manifests) - len(set(img.blobs) & set(simg.blobs))
    dry = xarch("prune", "--dry-run", "--format", "json")
    report = json.loads(dry.out)
    assert report["dryRun"] and report["blobs"] == n_blobs
    real = xarch("prune")
    assert real.code == 0
    assert f"removed {n_blobs} blob(s), freed {report['freedBytes']} bytes" in real.out
    assert xarch("ls", "-q").out.split() == ["docker.io/library/other:1"]
    assert "would remove 0 blob(s)" in xarch("prune", "--dry-run").out
    assert_store_ok(xarch)


def test_store_verify_detects_corruption(
    xarch: Runner, multi: tuple[Path, ImageSet], home: Path
) -> None:
    src, img = multi
    assert xarch("copy", f"oci:{src}:v1", "app:1").code == 0
    assert_store_ok(xarch)
    layer = next(d for d, b in img.blobs.items() if b[:2] == b"\x1f\x8b")
    path = home / "store" / "blobs" / "sha256" / layer.hex
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    r = xarch("store", "verify")
    assert r.code == 1
    assert layer.hex in r.out
    assert r.err_lines == [
        "error: local store has 1 problem(s) (remove the broken images with 'xarch rm' and copy them again)"
    ]


def test_empty_store(xarch: Runner) -> None:
    assert xarch("ls").code == 0
    assert json.loads(xarch("ls", "--format", "json").out) == []
    assert xarch("store", "verify").code == 0
    assert "removed 0 blob(s)" in xarch("prune").out


def test_copy_progress_json_and_tty(
    xarch: Runner, multi: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, img = multi
    r = xarch("--progress", "json", "copy", f"oci:{src}:v1", f"oci:{tmp_path / 'j'}:v1")
    assert r.code == 0
    events = [json.loads(ln) for ln in r.err_lines]
    kinds = [e["kind"] for e in events]
    assert kinds.count("copy") == len(img.blobs)
    assert kinds.count("begin") == len(img.blobs)
    assert kinds.count("manifest") == len(img.manifests)
    assert kinds[-1] == "message"
    q = xarch("--progress", "quiet", "copy", f"oci:{src}:v1", f"oci:{tmp_path / 'q'}:v1")
    assert q.code == 0 and q.err == ""


def test_docker_typed_index_roundtrip(xarch: Runner, tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"], media_type=mt.DOCKER_MANIFEST_LIST)
    src = write_layout(tmp_path / "docker", img)
    r = xarch("copy", f"oci:{src}:v1", f"oci:{tmp_path / 'd2'}:v1")
    assert r.code == 0
    assert _layout_root(tmp_path / "d2", "v1")[1] == img.root_raw
    j = json.loads(xarch("inspect", "--format", "json", f"oci:{src}:v1").out)
    assert j["mediaType"] == mt.DOCKER_MANIFEST_LIST
