"""RemoteSource / RemoteSink: the copy-engine verbs over the fake registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeregistry import FakeRegistry, sha256
from remote_samples import SampleImage, sample_image, seed_image

from xarch.errors import IntegrityError, NotFoundError, XarchError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index
from xarch.oci.reference import Reference
from xarch.transports.base import BlobMounter, ImageSink, ImageSource
from xarch.transports.remote import RegistryOptions, RemoteSink, RemoteSource, TransferEvent


def opts(fake: FakeRegistry, **kw: object) -> RegistryOptions:
    return RegistryOptions(transport=fake.transport, sleep=lambda _: None, **kw)


def copy(src: ImageSource, dst: RemoteSink) -> Descriptor:
    """A minimal copy loop (the real engine lives elsewhere): children first, root last."""
    root = src.resolve()
    raw = src.fetch_manifest(root)
    if mt.is_index(root.media_type):
        for child in Index.parse(raw).manifests:
            _copy_image(src, dst, child, root=False)
        dst.put_manifest(raw, root.media_type, root=True)
    else:
        _copy_image(src, dst, root, root=True)
    dst.commit()
    return root


def _copy_image(src: ImageSource, dst: RemoteSink, desc: Descriptor, *, root: bool) -> None:
    from xarch.oci.manifest import Manifest

    raw = src.fetch_manifest(desc)
    manifest = Manifest.parse(raw, desc.media_type)
    for blob in (manifest.config, *manifest.layers):
        if dst.has_blob(blob) or dst.mount_blob(blob, src):
            continue
        dst.put_blob(blob, src.open_blob(blob))
    dst.put_manifest(raw, desc.media_type, root=root)


def test_protocols() -> None:
    fake = FakeRegistry()
    ref = Reference.parse("registry.test/foo:v1")
    assert isinstance(RemoteSource(ref, opts(fake)), ImageSource)
    sink = RemoteSink(ref, opts(fake))
    assert isinstance(sink, ImageSink) and isinstance(sink, BlobMounter)


def test_copy_between_repositories_mounts(fake: FakeRegistry) -> None:
    image = sample_image(layer_sizes=(100, 2000))
    seed_image(fake, "library/src", image)
    events: list[TransferEvent] = []
    src = RemoteSource(Reference.parse("registry.test/library/src:v1"), opts(fake))
    dst = RemoteSink(
        Reference.parse("registry.test/team/dst:latest"), opts(fake), on_event=events.append
    )
    root = copy(src, dst)
    assert root.digest == image.manifest.digest
    assert fake.tags["team/dst"]["latest"] == image.manifest.digest
    assert [e.kind for e in events] == ["mount", "mount", "mount"]
    assert str(events[0]).endswith("from library/src")
    assert fake.count("PATCH") == 0 and fake.count("PUT", "/blobs/uploads/") == 0
    assert dst.pushed == image.manifest.digest


def test_copy_across_registries_uploads() -> None:
    a, b = FakeRegistry("a.test"), FakeRegistry("b.test")
    image = sample_image(layer_sizes=(5000,))
    seed_image(a, "src", image)
    src = RemoteSource(Reference.parse("a.test/src:v1"), opts(a))
    dst = RemoteSink(
        Reference.parse("b.test/dst:v2"), opts(b, chunk_size=2048), monolithic_max=1000
    )
    copy(src, dst)
    assert b.blobs[image.layer_descs[0].digest] == image.layers[0]
    assert b.count("PATCH") == 3  # chunked: 2048 + 2048 + 904
    assert b.tags["dst"]["v2"] == image.manifest.digest


def test_index_children_before_tag(fake: FakeRegistry) -> None:
    amd, arm = sample_image("amd"), sample_image("arm")
    for im in (amd, arm):
        seed_image(fake, "src", im, tag=None)
    index = Index.build([amd.manifest.descriptor, arm.manifest.descriptor])
    fake.add_manifest("src", index.raw, index.media_type, "multi")
    src = RemoteSource(Reference.parse("registry.test/src:multi"), opts(fake))
    dst = RemoteSink(Reference.parse("registry.test/dst:multi"), opts(fake))
    copy(src, dst)
    puts = [p for m, p in fake.log if m == "PUT" and "/dst/manifests/" in p]
    assert puts[:2] == [
        f"/v2/dst/manifests/{amd.manifest.digest}",
        f"/v2/dst/manifests/{arm.manifest.digest}",
    ]
    assert puts[-1] == "/v2/dst/manifests/multi"


def test_nothing_visible_before_commit(fake: FakeRegistry) -> None:
    image = sample_image()
    sink = RemoteSink(Reference.parse("registry.test/dst:v1"), opts(fake))
    for desc, data in image.blobs():
        sink.put_blob(desc, [data])
    sink.put_manifest(image.manifest.raw, image.manifest.media_type, root=True)
    assert "dst" not in fake.tags
    sink.commit()
    assert fake.tags["dst"]["v1"] == image.manifest.digest


def test_commit_without_root() -> None:
    sink = RemoteSink(Reference.parse("registry.test/dst:v1"), opts(FakeRegistry()))
    with pytest.raises(XarchError, match="nothing to commit"):
        sink.commit()


def test_commit_checks_pinned_digest(fake: FakeRegistry) -> None:
    image = sample_image()
    for _, data in image.blobs():
        fake.add_blob("dst", data)
    sink = RemoteSink(Reference.parse(f"registry.test/dst@{sha256(b'other')}"), opts(fake))
    sink.put_manifest(image.manifest.raw, image.manifest.media_type, root=True)
    with pytest.raises(IntegrityError):
        sink.commit()
    ok = RemoteSink(Reference.parse(f"registry.test/dst@{image.manifest.digest}"), opts(fake))
    ok.put_manifest(image.manifest.raw, image.manifest.media_type, root=True)
    ok.commit()
    assert image.manifest.digest in fake.manifests["dst"]
    assert "dst" not in fake.tags


def test_resolve_missing_tag(fake: FakeRegistry) -> None:
    seed_image(fake, "src", sample_image())
    src = RemoteSource(Reference.parse("registry.test/src:nope"), opts(fake))
    with pytest.raises(NotFoundError, match='tag "nope" not found in repository "src"'):
        src.resolve()


def test_fetch_manifest_size_check(fake: FakeRegistry) -> None:
    image: SampleImage = sample_image()
    seed_image(fake, "src", image)
    src = RemoteSource(Reference.parse("registry.test/src:v1"), opts(fake))
    desc = src.resolve()
    wrong = Descriptor(desc.media_type, desc.digest, desc.size + 1)
    with pytest.raises(IntegrityError):
        src.fetch_manifest(wrong)


def test_mount_declined_for_other_hosts_and_denied_sources() -> None:
    a, b = FakeRegistry("a.test"), FakeRegistry("b.test")
    digest = a.add_blob("src", b"x")
    desc = Descriptor(mt.OCI_LAYER, digest, 1)
    sink = RemoteSink(Reference.parse("b.test/dst:v1"), opts(b))
    assert sink.mount_blob(desc, RemoteSource(Reference.parse("a.test/src:v1"), opts(a))) is False
    assert b.log == []  # not even asked
    # same host, but the user may not read the source repository: upload instead
    tok = FakeRegistry("c.test", auth="token")
    tok.acl["alice"] = {"dst"}
    tok.add_blob("secret", b"x")
    o = opts(tok, credentials=("alice", "s3cret"))
    sink = RemoteSink(Reference.parse("c.test/dst:v1"), o)
    assert sink.mount_blob(desc, RemoteSource(Reference.parse("c.test/secret:v1"), o)) is False


def test_blob_fed_to_a_sink_unhashed_is_still_refused_when_wrong(tmp_path: Path) -> None:
    """open_blob_for_sink skips the client's hash: the sink's own check must catch a registry
    that serves other bytes under a digest, and the layout keeps nothing."""
    from xarch.transports.copy import copy_image
    from xarch.transports.layout import LayoutSink, LayoutSource

    fake = FakeRegistry()
    image = sample_image(layer_sizes=(1000,))
    seed_image(fake, "src", image)
    layer = image.layer_descs[0]
    fake.blobs[str(layer.digest)] = b"x" * layer.size  # same size, other bytes
    src = RemoteSource(Reference.parse("registry.test/src:v1"), opts(fake))
    with pytest.raises(IntegrityError):
        b"".join(src.open_blob(layer))  # the verifying path
    assert b"".join(src.open_blob_for_sink(layer)) == b"x" * layer.size  # unhashed path
    sink = LayoutSink(tmp_path / "lay", "v1")
    with pytest.raises(IntegrityError):
        copy_image(src, sink, jobs=1)
    sink.close()
    assert not (tmp_path / "lay" / "blobs" / "sha256" / layer.digest.hex).exists()
    with pytest.raises(NotFoundError):
        LayoutSource(tmp_path / "lay", "v1").resolve()


def test_no_change_push_is_one_head_and_no_write(fake: FakeRegistry) -> None:
    """When the tag already names the index, its children are there: one HEAD, nothing else."""
    from xarch.transports.base import RootProbe
    from xarch.transports.copy import copy_image

    amd, arm = sample_image("amd"), sample_image("arm")
    for im in (amd, arm):
        seed_image(fake, "src", im, tag=None)
    index = Index.build([amd.manifest.descriptor, arm.manifest.descriptor])
    fake.add_manifest("src", index.raw, index.media_type, "multi")

    def push() -> RemoteSink:
        src = RemoteSource(Reference.parse("registry.test/src:multi"), opts(fake))
        dst = RemoteSink(Reference.parse("registry.test/dst:multi"), opts(fake))
        assert isinstance(dst, RootProbe)
        result = copy_image(src, dst)
        assert result.root.digest == index.digest
        assert {m.digest for m in result.manifests} == {
            amd.manifest.digest, arm.manifest.digest, index.digest}
        return dst

    push()
    assert fake.tags["dst"]["multi"] == index.digest
    fake.log.clear()
    again = push()
    assert again.pushed == index.digest
    dst_requests = [(m, p) for m, p in fake.log if "/dst/" in p]
    assert dst_requests == [("HEAD", "/v2/dst/manifests/multi")]

    # the tag moved: everything is checked and the tag is put again
    fake.tags["dst"]["multi"] = amd.manifest.digest
    fake.log.clear()
    push()
    assert fake.tags["dst"]["multi"] == index.digest
    assert fake.count("HEAD", "/dst/manifests/multi") == 1  # has_root's answer is reused
    assert fake.count("PUT", "/dst/manifests/multi") == 1
