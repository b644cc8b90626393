from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.images import make_index, make_layer, single_image, write_image
from helpers.layout_check import assert_valid_layout
from oci.schema_check import assert_valid_oci
from xarch.errors import InputError, IntegrityError, NotFoundError, UsageError, XarchError
from xarch.oci import mediatype as mt
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform
from xarch.transports.archive import (
    DockerArchiveSink,
    DockerArchiveSource,
    OciArchiveSink,
    OciArchiveSource,
    TarIndex,
    safe_member_path,
)
from xarch.transports.copy import copy_image
from xarch.transports.layout import LayoutSink, LayoutSource


def _tar(members: list[tuple[str, bytes | str, str]]) -> bytes:
    """(name, data or link target, kind in file|sym|hard)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                ti.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                ti.linkname = str(data)
                tf.addfile(ti)
    return buf.getvalue()


# -- oci-archive ------------------------------------------------------------------------------


def test_oci_archive_round_trip_and_determinism(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(OciArchiveSink(tmp_path / "a.tar", "v1"), img)
    write_image(OciArchiveSink(tmp_path / "b.tar", "v1"), img)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tf:
        names = tf.getnames()
        assert names[:2] == ["oci-layout", "index.json"]
        assert all(m.mtime == 0 and m.uid == 0 for m in tf.getmembers())
        tf.extractall(tmp_path / "x", filter="data")
    assert_valid_layout(tmp_path / "x")
    src = OciArchiveSource(tmp_path / "a.tar", "v1")
    res = copy_image(src, LayoutSink(tmp_path / "lay", "v1"))
    src.close()
    assert res.root.digest == img.root.digest
    for d, data in img.blobs.items():
        assert (tmp_path / "lay" / "blobs" / "sha256" / d.hex).read_bytes() == data
    # no scratch directories left next to the archive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar", "lay", "x"]


def test_oci_archive_single_entry_without_tag(tmp_path: Path) -> None:
    img = single_image()
    write_image(OciArchiveSink(tmp_path / "a.tar"), img)
    assert OciArchiveSource(tmp_path / "a.tar").resolve().digest == img.root.digest
    with pytest.raises(NotFoundError):
        OciArchiveSource(tmp_path / "a.tar", "nope").resolve()


def test_oci_archive_gzip_compressed_is_readable(tmp_path: Path) -> None:
    img = single_image()
    write_image(OciArchiveSink(tmp_path / "a.tar", "t"), img)
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress((tmp_path / "a.tar").read_bytes()))
    src = OciArchiveSource(tmp_path / "a.tar.gz", "t")
    res = copy_image(src, LayoutSink(tmp_path / "lay", "t"))
    src.close()
    assert res.root.digest == img.root.digest


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    sink = OciArchiveSink(tmp_path / "a.tar", "t")
    with pytest.raises(UsageError):
        sink.commit()
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello, not a tar" * 100)
    with pytest.raises(InputError):
        OciArchiveSource(tmp_path / "junk")
    with pytest.raises(NotFoundError):
        OciArchiveSource(tmp_path / "missing.tar")
    (tmp_path / "empty.tar").write_bytes(_tar([("foo", b"bar", "file")]))
    with pytest.raises(InputError, match=r"no index\.json"):
        OciArchiveSource(tmp_path / "empty.tar")


# -- tar indexing safety ----------------------------------------------------------------------


def test_tar_index_paths_and_links(tmp_path: Path) -> None:
    (tmp_path / "t.tar").write_bytes(
        _tar(
            [
                ("./a/real", b"data", "file"),
                ("a/rel", "real", "sym"),
                ("b/up", "../a/real", "sym"),
                ("hard", "a/real", "hard"),
                ("../escape", b"x", "file"),
                ("/abs", b"x", "file"),
                ("esc", "../../etc/passwd", "sym"),
                ("absl", "/etc/passwd", "sym"),
                ("loop1", "loop2", "sym"),
                ("loop2", "loop1", "sym"),
            ]
        )
    )
    t = TarIndex(tmp_path / "t.tar", "test")
    for name in ("a/real", "./a/real", "a/rel", "b/up", "hard", "a/../a/real"):
        assert t.read(name) == b"data", name
    for bad in ("../escape", "/abs", "esc", "absl", "loop1"):
        with pytest.raises((InputError, NotFoundError)):
            t.read(bad)
    assert not t.exists("escape")


@given(st.text(max_size=40))
def test_safe_member_path_never_escapes(name: str) -> None:
    p = safe_member_path(name)
    if p is not None:
        assert not p.startswith("/") and p != ".." and not p.startswith("../")
        assert "/../" not in f"/{p}/"


# -- docker-archive ---------------------------------------------------------------------------


def test_docker_archive_write_read(tmp_path: Path) -> None:
    img = single_image(
        "linux/arm64", [{"a": b"1"}, {"b": b"2"}, {"a": b"1"}], media_type=mt.DOCKER_MANIFEST
    )
    sink = DockerArchiveSink(tmp_path / "d.tar", "example.com/app:1.0")
    write_image(sink, img)
    sink.close()
    with tarfile.open(tmp_path / "d.tar") as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = set(tf.getnames())
        src_m = Manifest.parse(img.root_raw)
        assert manifest == [
            {
                "Config": f"{src_m.config.digest.hex}.json",
                "RepoTags": ["example.com/app:1.0"],
                "Layers": manifest[0]["Layers"],
            }
        ]
        # layers are written uncompressed, named by diffID, duplicates once
        assert (
            len(manifest[0]["Layers"]) == 3 and manifest[0]["Layers"][0] == manifest[0]["Layers"][2]
        )
        assert names == {"manifest.json", manifest[0]["Config"], *manifest[0]["Layers"]}
        for lname in manifest[0]["Layers"]:
            data = tf.extractfile(lname).read()  # type: ignore[union-attr]
            assert Digest.from_bytes(data).hex + ".tar" == lname
    src = DockerArchiveSource(tmp_path / "d.tar", "example.com/app:1.0")
    desc = src.resolve()
    raw = src.fetch_manifest(desc)
    assert desc.media_type == mt.DOCKER_MANIFEST
    assert_valid_oci(mt.DOCKER_MANIFEST, raw)
    m = Manifest.parse(raw)
    assert m.config.digest == src_m.config.digest
    assert [layer.media_type for layer in m.layers] == [mt.DOCKER_LAYER] * 3
    # copy out to a layout and back: same manifest (deterministic)
    res = copy_image(src, LayoutSink(tmp_path / "lay", "x"))
    assert res.root.digest == desc.digest
    assert_valid_layout(tmp_path / "lay")
    src.close()
    # docker.io names are written in the familiar form docker save uses
    write_image(DockerArchiveSink(tmp_path / "e.tar", "docker.io/library/hello"), img)
    with tarfile.open(tmp_path / "e.tar") as tf:
        assert json.loads(tf.extractfile("manifest.json").read())[0]["RepoTags"] == ["hello:latest"]  # type: ignore[union-attr]
    assert DockerArchiveSource(tmp_path / "e.tar", "hello:latest").resolve() == desc
    assert DockerArchiveSource(tmp_path / "e.tar", "@0").resolve() == desc
    with pytest.raises(NotFoundError):
        DockerArchiveSource(tmp_path / "e.tar", "other:1").resolve()


def test_docker_archive_rejects_index(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    sink = DockerArchiveSink(tmp_path / "d.tar", "app:1")
    with pytest.raises(UsageError, match="single platform; pass --platform"):
        copy_image(LayoutSourceFor(tmp_path, img), sink)
    sink.close()
    assert not (tmp_path / "d.tar").exists()
    # with one platform selected it works
    sink = DockerArchiveSink(tmp_path / "d.tar", "app:1")
    res = copy_image(
        LayoutSourceFor(tmp_path, img), sink, platforms=[Platform.parse("linux/arm64")]
    )
    sink.close()
    assert res.root.media_type == mt.OCI_MANIFEST
    cfg = json.loads(
        next(
            iter(
                v
                for v in _members(tmp_path / "d.tar").items()
                if v[0].endswith(".json") and v[0] != "manifest.json"
            )
        )[1]
    )
    assert cfg["architecture"] == "arm64"


def LayoutSourceFor(tmp: Path, img) -> LayoutSource:  # type: ignore[no-untyped-def]
    root = tmp / "src-layout"
    if not root.exists():
        write_image(LayoutSink(root, "t"), img)
    return LayoutSource(root, "t")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_docker_archive_diffid_mismatch(tmp_path: Path) -> None:
    img = single_image()
    m = Manifest.parse(img.root_raw)
    # swap the layer content for another valid gzip whose diffID differs from the config
    other, _ = make_layer({"evil": b"x"})
    img.blobs.pop(m.layers[0].digest)
    bad = Manifest.build(
        m.config, [m.layers[0].replace(digest=Digest.from_bytes(other), size=len(other))]
    )
    img.blobs[Digest.from_bytes(other)] = other
    img.manifests = {bad.digest: (bad.media_type, bad.raw)}
    img.root = bad.descriptor
    sink = DockerArchiveSink(tmp_path / "d.tar", "app:1")
    with pytest.raises(IntegrityError, match="config says"):
        write_image(sink, img)
    sink.close()
    assert list(tmp_path.iterdir()) == []


def _docker_tar(
    tmp_path: Path, layers: list[tuple[str, bytes]], diff_ids: list[str], extra=()
) -> Path:  # type: ignore[no-untyped-def]
    cfg = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    cfg_name = Digest.from_bytes(cfg).hex + ".json"
    manifest = [{"Config": cfg_name, "RepoTags": ["foo:bar"], "Layers": [n for n, _ in layers]}]
    members = [(cfg_name, cfg, "file"), *((n, d, "file") for n, d in layers), *extra]
    members.append(("manifest.json", json.dumps(manifest).encode(), "file"))
    p = tmp_path / "x.tar"
    p.write_bytes(_tar(members))
    return p


def test_docker_archive_read_gzip_and_legacy_symlinks(tmp_path: Path) -> None:
    gz, diff = make_layer({"f": b"1"})
    tar, diff2 = make_layer({"g": b"2"}, compress=False)
    p = _docker_tar(
        tmp_path,
        [("aaa/layer.tar", gz), ("ccc/layer.tar", b"")],
        [diff, diff2],
        extra=[("bbb/layer.tar", tar, "file")],
    )
    # make ccc/layer.tar a symlink to ../bbb/layer.tar as docker save does for shared layers
    data = p.read_bytes()
    members = [
        (m, d, k)
        for m, d, k in [
            ("ccc/layer.tar", "../bbb/layer.tar", "sym"),
        ]
    ]
    with tarfile.open(p) as tf:
        existing = [
            (m.name, tf.extractfile(m).read(), "file")  # type: ignore[union-attr]
            for m in tf.getmembers()
            if m.name != "ccc/layer.tar"
        ]
    p.write_bytes(_tar(existing + members))
    assert data != p.read_bytes()
    src = DockerArchiveSource(p)
    m = Manifest.parse(src.fetch_manifest(src.resolve()))
    assert [layer.media_type for layer in m.layers] == [mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER]
    assert m.layers[0].digest == Digest.from_bytes(gz)
    assert b"".join(src.open_blob(m.layers[1])) == tar


def test_docker_archive_bad_inputs(tmp_path: Path) -> None:
    gz, diff = make_layer({"f": b"1"})
    p = _docker_tar(tmp_path, [("l.tar", gz)], [Digest.from_bytes(b"other")])
    with pytest.raises(IntegrityError, match="diffID"):
        DockerArchiveSource(p).resolve()
    p = _docker_tar(tmp_path, [("../../etc/passwd", gz)], [diff])
    with pytest.raises(InputError, match="unsafe path"):
        DockerArchiveSource(p).resolve()
    p = _docker_tar(tmp_path, [("l.tar", gz)], [diff, diff])
    with pytest.raises(InputError, match="config lists 2 layers"):
        DockerArchiveSource(p).resolve()
    p.write_bytes(_tar([("manifest.json", b"{}", "file")]))
    with pytest.raises(InputError, match="JSON array"):
        DockerArchiveSource(p).resolve()
    p.write_bytes(_tar([("x", b"{}", "file")]))
    with pytest.raises(InputError, match=r"no manifest\.json"):
        DockerArchiveSource(p).resolve()


def test_docker_archive_sink_rejects_digest_ref(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        DockerArchiveSink(tmp_path / "x.tar", "app@sha256:" + "a" * 64)
    with pytest.raises(UsageError):
        DockerArchiveSink(tmp_path / "x.tar", "Not Valid")


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2048))
def test_garbage_archives_only_raise_xarch_errors(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("g") / "g.tar"
    p.write_bytes(data)
    for cls in (OciArchiveSource, DockerArchiveSource):
        try:
            src = cls(p)
            src.resolve()
        except XarchError:
            pass


# -- interop ----------------------------------------------------------------------------------

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
@skopeo
def test_skopeo_reads_our_archives(tmp_path: Path) -> None:
    img = single_image("linux/amd64", [{"a": b"1"}, {"b": b"2"}])
    write_image(DockerArchiveSink(tmp_path / "d.tar", "app:1"), img)
    write_image(OciArchiveSink(tmp_path / "o.tar", "t"), img)
    _run("skopeo", "copy", f"docker-archive:{tmp_path}/d.tar", f"oci:{tmp_path}/from-docker:x")
    _run("skopeo", "copy", f"oci-archive:{tmp_path}/o.tar:t", f"oci:{tmp_path}/from-oci:x")
    assert LayoutSource(tmp_path / "from-oci", "x").resolve().digest == img.root.digest
    assert_valid_layout(tmp_path / "from-docker")


@pytest.mark.integration
@skopeo
def test_we_read_skopeo_archives(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(LayoutSink(tmp_path / "lay", "v1"), img)
    _run(
        "skopeo",
        "copy",
        "--override-arch",
        "arm64",
        f"oci:{tmp_path}/lay:v1",
        f"docker-archive:{tmp_path}/d.tar:bar:2",
    )
    _run("skopeo", "copy", "--all", f"oci:{tmp_path}/lay:v1", f"oci-archive:{tmp_path}/o.tar:v9")
    src = DockerArchiveSource(tmp_path / "d.tar", "bar:2")
    res = copy_image(src, LayoutSink(tmp_path / "out", "d"))
    assert res.blobs_copied == 2
    src2 = OciArchiveSource(tmp_path / "o.tar", "v9")
    assert copy_image(src2, LayoutSink(tmp_path / "out", "o")).root.digest == img.root.digest
    assert_valid_layout(tmp_path / "out")


def test_docker_archive_moby25_layout(tmp_path: Path) -> None:
    """docker save ≥ 25 writes an OCI layout plus manifest.json pointing into blobs/sha256."""
    img = single_image("linux/amd64", [{"a": b"1"}], compress=False)
    m = Manifest.parse(img.root_raw)
    cfg = img.blobs[m.config.digest]
    layer = img.blobs[m.layers[0].digest]
    entry = {
        "Config": f"blobs/sha256/{m.config.digest.hex}",
        "RepoTags": ["moby:25"],
        "Layers": [f"blobs/sha256/{m.layers[0].digest.hex}"],
    }
    members: list[tuple[str, bytes | str, str]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', "file"),
        (f"blobs/sha256/{m.config.digest.hex}", cfg, "file"),
        (f"blobs/sha256/{m.layers[0].digest.hex}", layer, "file"),
        ("manifest.json", json.dumps([entry]).encode(), "file"),
    ]
    (tmp_path / "m.tar").write_bytes(_tar(members))
    src = DockerArchiveSource(tmp_path / "m.tar", "moby:25")
    out = Manifest.parse(src.fetch_manifest(src.resolve()))
    assert out.config.digest == m.config.digest
    assert out.layers[0].digest == m.layers[0].digest  # uncompressed: digest == diffID
    # a config whose content does not match its content-addressed name is refused
    members[1] = (f"blobs/sha256/{m.config.digest.hex}", cfg + b" ", "file")
    (tmp_path / "m.tar").write_bytes(_tar(members))
    with pytest.raises(IntegrityError, match="does not match its name"):
        DockerArchiveSource(tmp_path / "m.tar").resolve()


def test_decompressed_chunks() -> None:
    import zstandard

    from xarch.transports.archive import compression_of, decompressed_chunks

    data = bytes(range(256)) * 5000
    multi_gz = gzip.compress(data[:1000], mtime=0) + gzip.compress(data[1000:], mtime=0)
    cctx = zstandard.ZstdCompressor()
    multi_zst = cctx.compress(data[:7]) + cctx.compress(data[7:])
    for blob, kind in ((multi_gz, "gzip"), (multi_zst, "zstd"), (data, "none")):
        assert compression_of(blob[:4]) == kind
        chunks = [blob[i : i + 333] for i in range(0, len(blob), 333)]
        assert b"".join(decompressed_chunks(chunks, kind)) == data
    for bad, kind in ((multi_gz[:-20], "gzip"), (b"\x28\xb5\x2f\xfd" + b"garbage" * 10, "zstd")):
        with pytest.raises(IntegrityError):
            b"".join(decompressed_chunks([bad], kind))
