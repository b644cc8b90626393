"""BaseResolver: bases resolved per build and per platform, against an in-process registry.

Sequences as users run them: one platform, then another, in the same store; a tag that moves;
a registry that goes away; a digest-pinned FROM; --pull.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.transports.remote.fakeregistry import FakeRegistry

from helpers.images import ImageSet, make_index, single_image
from xarch.builder.bases import BaseResolver
from xarch.errors import NotFoundError
from xarch.oci.manifest import Index
from xarch.oci.platform import Platform
from xarch.transports.remote import RegistryOptions
from xarch.transports.store import LocalStore

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
S390X = Platform.parse("linux/s390x")
REPO = "lib/base"
REF = f"registry.test/{REPO}:1"


def _push(fake: FakeRegistry, image: ImageSet, tag: str = "1", repo: str = REPO) -> str:
    for data in image.blobs.values():
        fake.add_blob(repo, data)
    for digest, (media_type, raw) in image.manifests.items():
        fake.add_manifest(repo, raw, media_type, tag=tag if digest == image.root.digest else None)
    return str(image.root.digest)


def _entry(image: ImageSet, platform: Platform) -> str:
    idx = Index.parse(image.root_raw)
    return next(str(d.digest) for d in idx.manifests if d.platform and platform.matches(d.platform))


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    s.content.init()
    return s


def _resolver(store: LocalStore, fake: FakeRegistry, **kw: object) -> tuple[BaseResolver, list[str]]:
    warnings: list[str] = []
    opts = RegistryOptions(transport=fake.transport, sleep=lambda _: None, retries=0,
                           auth_config="/nonexistent/config.json")
    return BaseResolver(store, registry_options=opts, warn=warnings.append, **kw), warnings  # type: ignore[arg-type]


def test_each_platform_gets_its_own_image_in_one_store(store: LocalStore, fake: FakeRegistry) -> None:
    image = make_index(["linux/amd64", "linux/arm64", "linux/s390x"])
    _push(fake, image)
    r1, _ = _resolver(store, fake)
    a = r1.resolve(REF, AMD64)
    r2, _ = _resolver(store, fake)  # the next build, same home
    b = r2.resolve(REF, ARM64)
    assert a.manifest_digest == _entry(image, AMD64)
    assert b.manifest_digest == _entry(image, ARM64)
    assert (a.platform.architecture, b.platform.architecture) == ("amd64", "arm64")
    # only what the builds used was fetched: the s390x image never was
    assert fake.count("GET", _entry(image, S390X)) == 0
    # and nothing appears under a user's name
    assert store.list() == []


def test_one_manifest_request_per_base_and_build(store: LocalStore, fake: FakeRegistry) -> None:
    image = make_index(["linux/amd64", "linux/arm64"])
    _push(fake, image)
    r, _ = _resolver(store, fake)
    r.resolve(REF, AMD64)
    r.resolve(REF, ARM64)
    tag_requests = fake.count("HEAD", r"/manifests/1$") + fake.count("GET", r"/manifests/1$")
    assert tag_requests == 1


def test_moved_tag_is_seen_by_the_next_build(store: LocalStore, fake: FakeRegistry) -> None:
    v1 = make_index(["linux/amd64"], files={"etc/v": b"1"})
    v2 = make_index(["linux/amd64"], files={"etc/v": b"2"})
    _push(fake, v1)
    first = _resolver(store, fake)[0].resolve(REF, AMD64)
    _push(fake, v2)
    second = _resolver(store, fake)[0].resolve(REF, AMD64)
    assert first.manifest_digest == _entry(v1, AMD64)
    assert second.manifest_digest == _entry(v2, AMD64)
    rec = store.pulled(REF)
    assert rec is not None and rec.descriptor.digest == v2.root.digest


def test_digest_pinned_base_needs_no_network_once_cached(store: LocalStore, fake: FakeRegistry) -> None:
    v1 = make_index(["linux/amd64"])
    digest = _push(fake, v1)
    pinned = f"registry.test/{REPO}@{digest}"
    _resolver(store, fake)[0].resolve(pinned, AMD64)
    fake.add_fault("HEAD", ".", "connect_error", times=-1)
    fake.add_fault("GET", ".", "connect_error", times=-1)
    before = len(fake.log)
    again = _resolver(store, fake)[0].resolve(pinned, AMD64)
    assert again.manifest_digest == _entry(v1, AMD64)
    assert len(fake.log) == before


def test_unreachable_registry_falls_back_with_a_warning(store: LocalStore, fake: FakeRegistry) -> None:
    v1 = make_index(["linux/amd64"])
    _push(fake, v1)
    _resolver(store, fake)[0].resolve(REF, AMD64)
    fake.add_fault("HEAD", ".", "connect_error", times=-1)
    fake.add_fault("GET", ".", "connect_error", times=-1)
    r, warnings = _resolver(store, fake)
    got = r.resolve(REF, AMD64)
    assert got.manifest_digest == _entry(v1, AMD64)
    assert len(warnings) == 1
    assert "unreachable" in warnings[0] and str(v1.root.digest) in warnings[0]


def test_unreachable_registry_without_a_record_is_an_error(store: LocalStore, fake: FakeRegistry) -> None:
    fake.add_fault("HEAD", ".", "connect_error", times=-1)
    fake.add_fault("GET", ".", "connect_error", times=-1)
    with pytest.raises(NotFoundError, match="unreachable"):
        _resolver(store, fake)[0].resolve(REF, AMD64)


def test_unreachable_registry_and_a_platform_never_fetched(store: LocalStore, fake: FakeRegistry) -> None:
    _push(fake, make_index(["linux/amd64", "linux/arm64"]))
    _resolver(store, fake)[0].resolve(REF, AMD64)
    fake.add_fault("HEAD", ".", "connect_error", times=-1)
    fake.add_fault("GET", ".", "connect_error", times=-1)
    with pytest.raises(NotFoundError, match="linux/arm64"):
        _resolver(store, fake)[0].resolve(REF, ARM64)


def test_pull_refetches(store: LocalStore, fake: FakeRegistry) -> None:
    image = make_index(["linux/amd64"])
    _push(fake, image)
    _resolver(store, fake)[0].resolve(REF, AMD64)
    gets = fake.count("GET", str(image.root.digest))
    _resolver(store, fake)[0].resolve(REF, AMD64)
    assert fake.count("GET", str(image.root.digest)) == gets  # cached root: not fetched again
    _resolver(store, fake, pull=True)[0].resolve(REF, AMD64)
    assert fake.count("GET", str(image.root.digest)) == gets + 1


def test_missing_platform_names_every_platform_of_the_base(store: LocalStore, fake: FakeRegistry) -> None:
    _push(fake, make_index(["linux/amd64", "linux/arm64", "linux/s390x"]))
    _resolver(store, fake)[0].resolve(REF, AMD64)
    with pytest.raises(NotFoundError) as e:
        _resolver(store, fake)[0].resolve(REF, Platform.parse("linux/ppc64le"))
    assert "linux/amd64, linux/arm64, linux/s390x" in str(e.value)


def test_single_platform_base_serves_only_its_platform(store: LocalStore, fake: FakeRegistry) -> None:
    _push(fake, single_image("linux/amd64"))
    assert _resolver(store, fake)[0].resolve(REF, AMD64).platform.architecture == "amd64"
    with pytest.raises(NotFoundError, match=r"image is for linux/amd64, not linux/arm64"):
        _resolver(store, fake)[0].resolve(REF, ARM64)


def test_index_entry_lying_about_its_platform_is_refused(store: LocalStore, fake: FakeRegistry) -> None:
    amd = single_image("linux/amd64")
    from xarch.oci import mediatype as mt
    from xarch.oci.descriptor import Descriptor

    raw = amd.root_raw
    idx = Index.build([Descriptor.of(mt.OCI_MANIFEST, raw, platform=ARM64)])
    image = ImageSet(idx.descriptor, {**amd.manifests, idx.digest: (mt.OCI_INDEX, idx.raw)},
                     amd.blobs)
    _push(fake, image)
    with pytest.raises(NotFoundError, match="config is for linux/amd64"):
        _resolver(store, fake)[0].resolve(REF, ARM64)


def test_a_name_in_the_local_store_is_used_as_is(store: LocalStore, fake: FakeRegistry) -> None:
    from helpers.images import write_image

    local = make_index(["linux/amd64"], files={"etc/v": b"local"})
    write_image(store.sink(REF), local)
    _push(fake, make_index(["linux/amd64"], files={"etc/v": b"remote"}))
    got = _resolver(store, fake)[0].resolve(REF, AMD64)
    assert got.manifest_digest == _entry(local, AMD64)
    assert fake.log == []


def test_store_verify_accepts_partial_pulls(store: LocalStore, fake: FakeRegistry) -> None:
    _push(fake, make_index(["linux/amd64", "linux/arm64"]))
    _resolver(store, fake)[0].resolve(REF, AMD64)
    assert store.verify() == []
    # a layer of a fetched platform going missing is still reported
    rec = store.pulled(REF)
    assert rec is not None
    man_digest = Index.parse(store.content.read_bytes(rec.descriptor.digest)).manifests[0].digest
    from xarch.oci.manifest import Manifest

    layer = Manifest.parse(store.content.read_bytes(man_digest)).layers[0]
    store.content.path(layer.digest).unlink()
    assert any("missing" in p for p in store.verify())


def test_blob_origins_name_the_base_repository(store: LocalStore, fake: FakeRegistry) -> None:
    image = make_index(["linux/amd64"])
    _push(fake, image)
    _resolver(store, fake)[0].resolve(REF, AMD64)
    origins = store.blob_origins()
    layer_digests = [d for d in image.blobs if store.content.has(d)]
    assert layer_digests
    assert all(origins[d] == [f"registry.test/{REPO}"] for d in layer_digests)


def test_a_stored_name_lacking_the_platform_says_how_to_use_the_registry(
        store: LocalStore, fake: FakeRegistry) -> None:
    from helpers.images import write_image

    # what an older xarch left: the base's own name holding only the platform it needed
    write_image(store.sink(REF), single_image("linux/amd64"))
    _push(fake, make_index(["linux/amd64", "linux/arm64"]))
    with pytest.raises(NotFoundError) as e:
        _resolver(store, fake)[0].resolve(REF, ARM64)
    assert "image is for linux/amd64, not linux/arm64" in e.value.message
    assert f"xarch rm {REF}" in str(e.value.hint)
