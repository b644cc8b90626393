from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from helpers.images import ImageSet, MemorySource, make_index, single_image, write_image
from helpers.layout_check import assert_valid_layout
from oci.schema_check import assert_valid_oci
from xarch.errors import IntegrityError, NotFoundError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.transports.archive import (
    DockerArchiveSink,
    DockerArchiveSource,
    OciArchiveSink,
    OciArchiveSource,
)
from xarch.transports.base import ImageSource
from xarch.transports.copy import CopyEvent, copy_image
from xarch.transports.layout import LayoutSink, LayoutSource
from xarch.transports.store import LocalStore

P = Platform.parse


class RecordingSink:
    """In-memory sink that records the order of operations and verifies blobs."""

    def __init__(self, *, single_platform: bool = False, have: Iterable[Digest] = ()) -> None:
        self.name = "memory:sink"
        self.blobs: dict[Digest, bytes] = {d: b"" for d in have}
        self.manifests: dict[Digest, tuple[str, bytes]] = {}
        self.order: list[tuple[str, Digest]] = []
        self.root: Digest | None = None
        self.committed = False
        if single_platform:
            self.single_platform = True
        self.lock = threading.Lock()

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        data = b"".join(chunks)
        if len(data) != desc.size or not desc.digest.verify(data):
            raise IntegrityError(f"blob {desc.digest} mismatch")
        with self.lock:
            self.blobs[desc.digest] = data
            self.order.append(("blob", desc.digest))

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        d = Digest.from_bytes(raw)
        # children first: everything this manifest references must already be here
        doc = Index.parse(raw) if mt.is_index(media_type) else Manifest.parse(raw)
        refs = doc.manifests if isinstance(doc, Index) else (doc.config, *doc.layers)
        for r in refs:
            assert r.digest in self.manifests or r.digest in self.blobs, f"{r.digest} not yet put"
        self.manifests[d] = (media_type, raw)
        self.order.append(("manifest", d))
        if root:
            self.root = d
        return d

    def commit(self) -> None:
        assert self.root is not None
        self.committed = True

    def close(self) -> None:
        pass


class MountingSink(RecordingSink):
    def __init__(self, mountable: set[Digest]) -> None:
        super().__init__()
        self.mountable = mountable

    def mount_blob(self, desc: Descriptor, source: ImageSource) -> bool:
        if desc.digest in self.mountable:
            self.blobs[desc.digest] = b"mounted"
            return True
        return False


def test_copy_everything_byte_identical() -> None:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    sink = RecordingSink()
    events: list[CopyEvent] = []
    res = copy_image(MemorySource(img), sink, on_event=events.append)
    assert sink.committed
    assert res.root == Descriptor(mt.OCI_INDEX, img.root.digest, img.root.size)
    assert sink.manifests == img.manifests
    assert {d: sink.blobs[d] for d in img.blobs} == img.blobs
    assert res.blobs_copied == len(img.blobs) == 6
    assert res.bytes == sum(len(b) for b in img.blobs.values())
    assert [m.digest for m in res.manifests][-1] == img.root.digest
    assert sorted(e.kind for e in events) == ["copy"] * 6 + ["manifest"] * 4
    # blobs before any manifest, root manifest last
    kinds = [k for k, _ in sink.order]
    assert kinds == ["blob"] * 6 + ["manifest"] * 4
    assert sink.order[-1] == ("manifest", img.root.digest)


def test_skip_existing_and_mount() -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    some = list(img.blobs)[:2]
    sink = RecordingSink(have=some[:1])
    res = copy_image(MemorySource(img), sink)
    assert (res.blobs_skipped, res.blobs_copied) == (1, 3)
    msink = MountingSink({some[1]})
    res = copy_image(MemorySource(img), msink)
    assert (res.blobs_mounted, res.blobs_copied, res.blobs_skipped) == (1, 3, 0)


def test_single_platform_selected_becomes_root() -> None:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    sink = RecordingSink()
    res = copy_image(MemorySource(img), sink, platforms=[P("linux/arm/v7")])
    assert res.root.media_type == mt.OCI_MANIFEST
    assert sink.root == res.root.digest
    assert res.root.digest in img.manifests
    assert len(sink.manifests) == 1
    assert res.blobs_copied == 2
    # aliases are normalised: armhf means arm/v7
    assert copy_image(MemorySource(img), RecordingSink(), platforms=[P("armhf")]).root == res.root


def test_several_platforms_make_a_new_index() -> None:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7"], annotations={"a": "b"})
    sink = RecordingSink()
    res = copy_image(MemorySource(img), sink, platforms=[P("linux/arm64"), P("linux/amd64")])
    assert res.root.digest != img.root.digest
    raw = sink.manifests[res.root.digest][1]
    assert_valid_oci(mt.OCI_INDEX, raw)
    idx = Index.parse(raw)
    # source order kept, only the selected entries, annotations preserved
    assert [str(d.platform) for d in idx.manifests] == ["linux/amd64", "linux/arm64"]
    assert dict(idx.annotations) == {"a": "b"}
    assert res.blobs_copied == 4
    # selecting every platform keeps the original index byte for byte
    res = copy_image(
        MemorySource(img), RecordingSink(), platforms=[P("linux/arm/v7"), P("amd64"), P("arm64")]
    )
    assert res.root.digest == img.root.digest


def test_docker_manifest_list_filter_keeps_media_type() -> None:
    img = make_index(
        ["linux/amd64", "linux/arm64", "linux/386"], media_type=mt.DOCKER_MANIFEST_LIST
    )
    sink = RecordingSink()
    res = copy_image(MemorySource(img), sink, platforms=[P("linux/386"), P("linux/amd64")])
    assert res.root.media_type == mt.DOCKER_MANIFEST_LIST
    assert_valid_oci(mt.DOCKER_MANIFEST_LIST, sink.manifests[res.root.digest][1])


def test_missing_platform() -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    with pytest.raises(NotFoundError, match=r"linux/s390x \(available: linux/amd64, linux/arm64\)"):
        copy_image(MemorySource(img), RecordingSink(), platforms=[P("linux/s390x")])
    single = single_image("linux/amd64")
    res = copy_image(MemorySource(single), RecordingSink(), platforms=[P("x86_64")])
    assert res.root.digest == single.root.digest
    with pytest.raises(NotFoundError, match="image is for linux/amd64"):
        copy_image(MemorySource(single), RecordingSink(), platforms=[P("linux/arm64")])


def test_attestation_manifests_follow_their_image() -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    idx = Index.parse(img.root_raw)
    arm = next(d for d in idx.manifests if d.platform and d.platform.architecture == "arm64")
    att_img = single_image("linux/amd64", {"att": b"{}"})
    att_desc = Descriptor(
        mt.OCI_MANIFEST,
        att_img.root.digest,
        att_img.root.size,
        annotations={
            "vnd.docker.reference.digest": arm.digest,
            "vnd.docker.reference.type": "attestation-manifest",
        },
        platform=Platform("unknown", "unknown"),
    )
    new_idx = Index.build([*idx.manifests, att_desc])
    full = ImageSet(new_idx.descriptor, dict(img.manifests), dict(img.blobs))
    full.manifests.update(att_img.manifests)
    full.manifests[new_idx.digest] = (mt.OCI_INDEX, new_idx.raw)
    full.blobs.update(att_img.blobs)
    sink = RecordingSink()
    # several platforms: the new index keeps the attestation of a kept image
    res = copy_image(MemorySource(full), sink, platforms=[P("linux/arm64"), P("linux/amd64")])
    out = Index.parse(sink.manifests[res.root.digest][1])
    assert [d.digest for d in out.manifests] == [
        *(d.digest for d in idx.manifests),
        att_img.root.digest,
    ]
    assert res.root.digest == new_idx.digest  # that is every entry: original index kept
    # one platform: just that image (like docker pull --platform), attestation left behind
    sink = RecordingSink()
    res = copy_image(MemorySource(full), sink, platforms=[P("linux/arm64")])
    assert res.root.digest == arm.digest and list(sink.manifests) == [arm.digest]
    # the attestation of a platform not selected is dropped along with it
    amd = next(d for d in idx.manifests if d.platform and d.platform.architecture == "amd64")
    att2 = Index.build([amd, arm, att_desc])
    full.manifests[att2.digest] = (mt.OCI_INDEX, att2.raw)
    full.root = att2.descriptor
    res = copy_image(MemorySource(full), sink := RecordingSink(), platforms=[P("linux/amd64")])
    assert list(sink.manifests) == [amd.digest]
    with pytest.raises(UsageError, match="single platform"):
        copy_image(MemorySource(full), RecordingSink(single_platform=True))


def test_single_platform_sink() -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    with pytest.raises(UsageError, match="docker-archive holds a single platform; pass --platform"):
        copy_image(MemorySource(img), RecordingSink(single_platform=True))
    with pytest.raises(UsageError):
        copy_image(
            MemorySource(img),
            RecordingSink(single_platform=True),
            platforms=[P("amd64"), P("arm64")],
        )
    res = copy_image(MemorySource(img), RecordingSink(single_platform=True), platforms=[P("amd64")])
    assert res.root.media_type == mt.OCI_MANIFEST


def test_failures_commit_nothing(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    layer = next(d for d, b in img.blobs.items() if b[:2] == b"\x1f\x8b")
    for src in (MemorySource(img, corrupt=[layer]), MemorySource(img, fail=[layer])):
        sink = LayoutSink(tmp_path / "lay", "t")
        with pytest.raises((IntegrityError, NotFoundError)):
            copy_image(src, sink, jobs=3)
        sink.close()
        with pytest.raises(NotFoundError):
            LayoutSource(tmp_path / "lay", "t").resolve()
        assert not (tmp_path / "lay" / "blobs" / "sha256" / layer.hex).exists()
    store = LocalStore(tmp_path / "store")
    sink2 = store.sink("app:1")
    with pytest.raises(IntegrityError):
        copy_image(MemorySource(img, corrupt=[layer]), sink2)
    sink2.close()
    assert store.list() == []
    # a manifest whose bytes do not match its descriptor is refused before anything is written
    bad = ImageSet(img.root, dict(img.manifests), dict(img.blobs))
    child = next(d for d in img.manifests if d != img.root.digest)
    bad.manifests[child] = (mt.OCI_MANIFEST, img.manifests[child][1] + b" ")
    sink3 = RecordingSink()
    with pytest.raises(IntegrityError):
        copy_image(MemorySource(bad), sink3)
    assert not sink3.committed and sink3.order == []


class SlowSource(MemorySource):
    def __init__(self, image: ImageSet) -> None:
        super().__init__(image)
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
        return super().open_blob(desc)


def test_bounded_parallelism() -> None:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le"])
    src = SlowSource(img)
    copy_image(src, RecordingSink(), jobs=3)
    assert 1 < src.peak <= 3
    src = SlowSource(img)
    copy_image(src, RecordingSink(), jobs=1)
    assert src.peak == 1
    with pytest.raises(UsageError):
        copy_image(src, RecordingSink(), jobs=0)


def test_nested_index() -> None:
    inner = make_index(["linux/amd64", "linux/arm64"])
    outer_idx = Index.build([inner.root])
    img = ImageSet(outer_idx.descriptor, dict(inner.manifests), dict(inner.blobs))
    img.manifests[outer_idx.digest] = (mt.OCI_INDEX, outer_idx.raw)
    sink = RecordingSink()
    res = copy_image(MemorySource(img), sink)
    assert len(res.manifests) == 4 and sink.order[-1] == ("manifest", outer_idx.digest)


def test_chain_through_every_local_transport(tmp_path: Path) -> None:
    img = make_index(["linux/amd64", "linux/arm64"], media_type=mt.DOCKER_MANIFEST_LIST)
    write_image(LayoutSink(tmp_path / "lay", "v1"), img)
    store = LocalStore(tmp_path / "store")
    r1 = copy_image(LayoutSource(tmp_path / "lay", "v1"), store.sink("app:1"))
    r2 = copy_image(store.source("app:1"), OciArchiveSink(tmp_path / "o.tar", "v1"))
    src = OciArchiveSource(tmp_path / "o.tar", "v1")
    r3 = copy_image(src, LayoutSink(tmp_path / "lay2", "v1"))
    src.close()
    assert r1.root.digest == r2.root.digest == r3.root.digest == img.root.digest
    assert_valid_layout(tmp_path / "lay2")
    # store → docker-archive (one platform) → store → layout: the image survives
    r4 = copy_image(
        store.source("app:1"),
        DockerArchiveSink(tmp_path / "d.tar", "app:arm"),
        platforms=[P("arm64")],
    )
    dsrc = DockerArchiveSource(tmp_path / "d.tar")
    r5 = copy_image(dsrc, store.sink("app:arm"))
    dsrc.close()
    assert r5.root.media_type == mt.DOCKER_MANIFEST
    m_in = Manifest.parse(img.manifests[r4.root.digest][1])
    m_out = Manifest.parse(store.content.read_bytes(r5.root))
    assert m_in.config.digest == m_out.config.digest  # same config → same image ID for docker
    assert store.verify() == []
    # second copy skips everything
    r6 = copy_image(LayoutSource(tmp_path / "lay", "v1"), store.sink("app:again"))
    assert r6.blobs_copied == 0 and r6.blobs_skipped == len(img.blobs)
