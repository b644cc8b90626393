"""OCI 1.1 referrers: artifact manifests, attach/list via the API and the tag-schema fallback,
the local store (+ prune), copying with referrers and cosign tags, and the buildx layout."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers.images import ImageSet, make_index, write_image
from xarch.attest.provenance import SLSA_PROVENANCE_V1, statement
from xarch.attest.referrers import (
    ANNOTATION_CREATED,
    ANNOTATION_PREDICATE_TYPE,
    ANNOTATION_SUBJECT,
    ATTESTATION_MANIFEST,
    CYCLONEDX_JSON,
    EMPTY_DESCRIPTOR,
    IN_TOTO,
    REFERENCE_DIGEST,
    REFERENCE_TYPE,
    SPDX_JSON,
    LocalTarget,
    ReferrerTarget,
    RegistryTarget,
    artifact_manifest,
    attach,
    attachments,
    attestation_manifests_buildx,
    copy_referrers,
    cosign_tag,
    fetch_payload,
    list_referrers,
    referrer_target,
)
from xarch.content.store import REF_NAME
from xarch.errors import InputError, IntegrityError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.oci.platform import Platform
from xarch.oci.reference import Reference
from xarch.transports.layout import LayoutSink, LayoutSource
from xarch.transports.remote import RegistryClient, RegistryOptions
from xarch.transports.remote.source import RemoteSink, RemoteSource
from xarch.transports.store import LocalStore

# The fake registry lives with the registry client tests (it deliberately imports no xarch).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transports" / "remote"))
from fakeregistry import FakeRegistry

CREATED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SPDX_DOC = b'{"spdxVersion":"SPDX-2.3","name":"app"}'


def _provenance(subject: Digest) -> bytes:
    return statement("app", subject, SLSA_PROVENANCE_V1, {"buildDefinition": {}})


@pytest.fixture(autouse=True)
def _no_user_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", os.fspath(tmp_path / "docker-env"))


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[list[RegistryClient]]:
    made: list[RegistryClient] = []
    yield made
    for c in made:
        c.close()


def _client(fake: FakeRegistry, clients: list[RegistryClient], tmp_path: Path) -> RegistryClient:
    c = RegistryClient(
        fake.host,
        RegistryOptions(
            transport=fake.transport,
            sleep=lambda _s: None,
            auth_config=str(tmp_path / "cfg" / "config.json"),
        ),
    )
    clients.append(c)
    return c


def _seed(fake: FakeRegistry, repo: str, img: ImageSet, tag: str = "1") -> None:
    for data in img.blobs.values():
        fake.add_blob(repo, data)
    for d, (m_type, raw) in img.manifests.items():
        fake.add_manifest(repo, raw, m_type, tag=tag if d == img.root.digest else None)


def _platform_entries(img: ImageSet) -> list[Descriptor]:
    return list(Index.parse(img.root_raw).manifests)


# -- artifact manifest -------------------------------------------------------------------------


def test_artifact_manifest_shape() -> None:
    img = make_index(["linux/amd64"])
    entry = _platform_entries(img)[0]
    stmt = _provenance(entry.digest)
    m, layer = artifact_manifest(
        entry, IN_TOTO, stmt, IN_TOTO, {"org.example": "x"}, created=CREATED
    )
    doc = json.loads(m.raw)
    assert doc["mediaType"] == mt.OCI_MANIFEST and doc["artifactType"] == IN_TOTO
    assert doc["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
        "data": "e30=",
    }
    assert base64.b64decode(doc["config"]["data"]) == b"{}"
    # the subject is identity only (no platform), so it equals what registries index
    assert doc["subject"] == {
        "mediaType": entry.media_type,
        "digest": str(entry.digest),
        "size": entry.size,
    }
    assert doc["layers"] == [
        {
            "mediaType": IN_TOTO,
            "digest": str(Digest.from_bytes(stmt)),
            "size": len(stmt),
            "annotations": {ANNOTATION_PREDICATE_TYPE: SLSA_PROVENANCE_V1},
        }
    ]
    assert doc["annotations"] == {
        ANNOTATION_CREATED: "2026-03-04T05:06:07Z",
        ANNOTATION_PREDICATE_TYPE: SLSA_PROVENANCE_V1,
        "org.example": "x",
    }
    assert layer.digest == Digest.from_bytes(stmt)


def test_artifact_manifest_sbom_types() -> None:
    entry = _platform_entries(make_index(["linux/amd64"]))[0]
    m, layer = artifact_manifest(entry, CYCLONEDX_JSON, b"{}", CYCLONEDX_JSON, created=CREATED)
    assert m.artifact_type == CYCLONEDX_JSON and layer.media_type == CYCLONEDX_JSON
    assert ANNOTATION_PREDICATE_TYPE not in m.annotations


def test_in_toto_payload_must_be_a_statement() -> None:
    entry = _platform_entries(make_index(["linux/amd64"]))[0]
    with pytest.raises(InputError, match="not an in-toto statement"):
        artifact_manifest(entry, IN_TOTO, b'{"hello":1}', IN_TOTO)


def test_subject_must_be_a_manifest() -> None:
    with pytest.raises(UsageError):
        artifact_manifest(Descriptor.of(mt.OCI_LAYER_GZIP, b"x"), SPDX_JSON, b"{}", SPDX_JSON)


# -- registry: API and fallback ----------------------------------------------------------------


@pytest.mark.parametrize("api", [True, False], ids=["referrers-api", "tag-fallback"])
def test_attach_and_list_registry(api: bool, tmp_path: Path, clients: list[RegistryClient]) -> None:
    fake = FakeRegistry(referrers_api=api)
    img = make_index(["linux/amd64", "linux/arm64"])
    _seed(fake, "team/app", img)
    target = RegistryTarget(_client(fake, clients, tmp_path), "team/app")
    amd, arm = _platform_entries(img)

    sbom = attach(target, arm, SPDX_JSON, SPDX_DOC, SPDX_JSON, created=CREATED)
    prov = attach(target, arm, IN_TOTO, _provenance(arm.digest), IN_TOTO, created=CREATED)
    assert sbom.artifact_type == SPDX_JSON and prov.artifact_type == IN_TOTO
    assert prov.annotations[ANNOTATION_PREDICATE_TYPE] == SLSA_PROVENANCE_V1

    listed = list_referrers(target, arm.digest)
    assert {d.digest for d in listed} == {sbom.digest, prov.digest}
    by_digest = {d.digest: d for d in listed}
    assert by_digest[prov.digest].artifact_type == IN_TOTO
    assert by_digest[prov.digest].annotations[ANNOTATION_CREATED] == "2026-03-04T05:06:07Z"
    assert [d.digest for d in list_referrers(target, arm.digest, SPDX_JSON)] == [sbom.digest]
    assert list_referrers(target, amd.digest) == []

    fallback = f"sha256-{arm.digest.hex}"
    if api:
        assert fallback not in fake.tags.get("team/app", {})
    else:
        raw, _ = fake.manifests["team/app"][fake.tags["team/app"][fallback]]
        idx = json.loads(raw)
        assert idx["mediaType"] == mt.OCI_INDEX
        assert {m["digest"] for m in idx["manifests"]} == {sbom.digest, prov.digest}
        assert all("artifactType" in m and "annotations" in m for m in idx["manifests"])
    # the image index is untouched: no unknown/unknown entries
    raw_root, _ = fake.manifests["team/app"][fake.tags["team/app"]["1"]]
    assert raw_root == img.root_raw

    manifest, payload = fetch_payload(target, by_digest[sbom.digest])
    assert payload == SPDX_DOC and manifest.subject is not None
    assert manifest.subject.digest == arm.digest


def test_attach_twice_is_idempotent_in_fallback(
    tmp_path: Path, clients: list[RegistryClient]
) -> None:
    fake = FakeRegistry(referrers_api=False)
    img = make_index(["linux/amd64"])
    _seed(fake, "r", img)
    target = RegistryTarget(_client(fake, clients, tmp_path), "r")
    entry = _platform_entries(img)[0]
    a = attach(target, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON, created=CREATED)
    b = attach(target, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON, created=CREATED)
    assert a == b
    assert [d.digest for d in list_referrers(target, entry.digest)] == [a.digest]


def test_fetch_payload_rejects_tampered_blob(tmp_path: Path, clients: list[RegistryClient]) -> None:
    fake = FakeRegistry()
    img = make_index(["linux/amd64"])
    _seed(fake, "r", img)
    target = RegistryTarget(_client(fake, clients, tmp_path), "r")
    entry = _platform_entries(img)[0]
    ref = attach(target, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    fake.blobs[str(Digest.from_bytes(SPDX_DOC))] = SPDX_DOC.replace(b"app", b"evil")
    with pytest.raises(IntegrityError):
        fetch_payload(target, ref)


# -- copy --------------------------------------------------------------------------------------


def _fake_signature(fake: FakeRegistry, repo: str, subject: Digest, text: bytes) -> Digest:
    """A cosign-like signature manifest under sha256-<hex>.sig (content is opaque here)."""
    layer = text
    cfg = b'{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}'
    fake.add_blob(repo, layer)
    fake.add_blob(repo, cfg)
    m = Manifest.build(
        Descriptor.of(mt.OCI_CONFIG, cfg),
        [Descriptor.of("application/vnd.dev.cosign.simplesigning.v1+json", layer)],
    )
    return Digest(fake.add_manifest(repo, m.raw, mt.OCI_MANIFEST, tag=cosign_tag(subject)))


@pytest.mark.parametrize(("src_api", "dst_api"), [(True, False), (False, True), (False, False)])
def test_copy_referrers_between_registries(
    src_api: bool, dst_api: bool, tmp_path: Path, clients: list[RegistryClient]
) -> None:
    sfake = FakeRegistry("src.test", referrers_api=src_api)
    dfake = FakeRegistry("dst.test", referrers_api=dst_api)
    img = make_index(["linux/amd64", "linux/arm64"])
    _seed(sfake, "a/app", img)
    _seed(dfake, "b/app", img)  # the image itself was copied first
    src = RegistryTarget(_client(sfake, clients, tmp_path), "a/app")
    dst = RegistryTarget(_client(dfake, clients, tmp_path), "b/app")
    amd, arm = _platform_entries(img)
    sbom = attach(src, arm, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    prov = attach(src, amd, IN_TOTO, _provenance(amd.digest), IN_TOTO)
    # a signature on the SBOM, itself a referrer (of a referrer)
    sbom_desc = Descriptor(sbom.media_type, sbom.digest, sbom.size)
    sig_on_sbom = attach(
        src, sbom_desc, "application/vnd.example.sig", b"sig", "application/octet-stream"
    )
    index_sig = _fake_signature(sfake, "a/app", img.root.digest, b"index-signature")
    sbom_sig = _fake_signature(sfake, "a/app", sbom.digest, b"sbom-signature")

    copied: list[Descriptor] = []
    res = copy_referrers(src, dst, [img.root.digest, amd.digest, arm.digest], on_copy=copied.append)
    assert {d.digest for d in res.referrers} == {sbom.digest, prov.digest, sig_on_sbom.digest}
    assert set(res.tags) == {cosign_tag(img.root.digest), cosign_tag(sbom.digest)}
    assert res.conflicts == []
    assert len(copied) == 5

    assert [d.digest for d in list_referrers(dst, arm.digest)] == [sbom.digest]
    assert [d.digest for d in list_referrers(dst, amd.digest)] == [prov.digest]
    assert [d.digest for d in list_referrers(dst, sbom.digest)] == [sig_on_sbom.digest]
    assert dfake.tags["b/app"][cosign_tag(img.root.digest)] == index_sig
    assert dfake.tags["b/app"][cosign_tag(sbom.digest)] == sbom_sig
    _m, payload = fetch_payload(dst, list_referrers(dst, arm.digest)[0])
    assert payload == SPDX_DOC
    assert (f"sha256-{arm.digest.hex}" in dfake.tags["b/app"]) is (not dst_api)

    # again: nothing new
    again = copy_referrers(src, dst, [img.root.digest, amd.digest, arm.digest])
    assert again.tags == [] and again.conflicts == []
    assert [d.digest for d in list_referrers(dst, arm.digest)] == [sbom.digest]


def test_copy_within_one_registry_mounts(tmp_path: Path, clients: list[RegistryClient]) -> None:
    fake = FakeRegistry(referrers_api=False)
    img = make_index(["linux/arm64"])
    _seed(fake, "a/app", img)
    _seed(fake, "b/app", img)
    c = _client(fake, clients, tmp_path)
    src, dst = RegistryTarget(c, "a/app"), RegistryTarget(c, "b/app")
    entry = _platform_entries(img)[0]
    attach(src, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    fake.log.clear()
    copy_referrers(src, dst, [entry.digest])
    assert fake.count("POST", r"/v2/b/app/blobs/uploads") >= 1
    assert any("mount=" in p for m, p in fake.log if m == "POST")
    assert fake.count("PATCH") == 0 and fake.count("PUT", r"/blobs/") == 0
    assert len(list_referrers(dst, entry.digest)) == 1


def test_copy_cosign_tag_conflict_and_force(tmp_path: Path, clients: list[RegistryClient]) -> None:
    sfake, dfake = FakeRegistry("s.test"), FakeRegistry("d.test")
    img = make_index(["linux/amd64"])
    _seed(sfake, "app", img)
    _seed(dfake, "app", img)
    src_sig = _fake_signature(sfake, "app", img.root.digest, b"theirs")
    _fake_signature(dfake, "app", img.root.digest, b"ours")
    src = RegistryTarget(_client(sfake, clients, tmp_path), "app")
    dst = RegistryTarget(_client(dfake, clients, tmp_path), "app")
    res = copy_referrers(src, dst, [img.root.digest])
    assert res.conflicts == [cosign_tag(img.root.digest)] and res.tags == []
    assert dfake.tags["app"][cosign_tag(img.root.digest)] != src_sig
    res = copy_referrers(src, dst, [img.root.digest], force=True)
    assert res.tags == [cosign_tag(img.root.digest)]
    assert dfake.tags["app"][cosign_tag(img.root.digest)] == src_sig


def test_copy_without_cosign_tags(tmp_path: Path, clients: list[RegistryClient]) -> None:
    sfake, dfake = FakeRegistry("s.test"), FakeRegistry("d.test")
    img = make_index(["linux/amd64"])
    _seed(sfake, "app", img)
    _seed(dfake, "app", img)
    _fake_signature(sfake, "app", img.root.digest, b"sig")
    res = copy_referrers(
        RegistryTarget(_client(sfake, clients, tmp_path), "app"),
        RegistryTarget(_client(dfake, clients, tmp_path), "app"),
        [img.root.digest],
        cosign=False,
    )
    assert res.tags == [] and cosign_tag(img.root.digest) not in dfake.tags["app"]


# -- local store and layouts -------------------------------------------------------------------


def test_local_store_attach_list_and_prune(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(store.sink("app:1"), img)
    index_before = store.content.index_path.read_bytes()
    target = LocalTarget.for_store(store, "app:1")
    amd, arm = _platform_entries(img)
    sbom = attach(target, arm, SPDX_JSON, SPDX_DOC, SPDX_JSON, created=CREATED)
    prov = attach(target, arm, IN_TOTO, _provenance(arm.digest), IN_TOTO, created=CREATED)
    sig = attach(
        target,
        Descriptor(sbom.media_type, sbom.digest, sbom.size),
        "application/vnd.example.sig",
        b"sig",
        "application/octet-stream",
    )
    # the store's index.json is not touched: referrers are not GC roots
    assert store.content.index_path.read_bytes() == index_before
    assert [d.digest for d in list_referrers(target, arm.digest)] == sorted(
        [sbom.digest, prov.digest]
    )
    assert [d.digest for d in list_referrers(target, arm.digest, IN_TOTO)] == [prov.digest]
    assert list_referrers(target, amd.digest) == []
    assert [d.digest for d in list_referrers(target, sbom.digest)] == [sig.digest]
    listed = {d.digest: d for d in list_referrers(target, arm.digest)}
    assert listed[prov.digest].annotations[ANNOTATION_PREDICATE_TYPE] == SLSA_PROVENANCE_V1
    assert fetch_payload(target, listed[sbom.digest])[1] == SPDX_DOC

    # prune keeps referrers (and referrers of referrers) of a named image, with their blobs
    report = store.prune(wait=5)
    assert report.removed_blobs == 0
    assert len(list_referrers(target, arm.digest)) == 2
    assert fetch_payload(target, listed[sbom.digest])[1] == SPDX_DOC
    assert len(list_referrers(target, sbom.digest)) == 1

    # once the image is gone, prune collects its attestations too
    store.remove("app:1")
    store.prune(wait=5)
    assert list_referrers(target, arm.digest) == []
    assert not store.content.has(Digest.from_bytes(SPDX_DOC))
    assert not store.content.has(sig.digest)


def test_local_store_cosign_tags_use_repository_names(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    img = make_index(["linux/amd64"])
    write_image(store.sink("app:1"), img)
    target = LocalTarget.for_store(store, "app:1")
    m = Manifest.build(EMPTY_DESCRIPTOR, [])
    with target.session():
        target.put_blob(EMPTY_DESCRIPTOR, [b"{}"])
        desc = target.put_manifest(m.raw, m.media_type, tag=cosign_tag(img.root.digest))
    names = [e.name for e in store.list()]
    assert f"docker.io/library/app:{cosign_tag(img.root.digest)}" in names
    assert target.resolve_tag(cosign_tag(img.root.digest)) == desc
    assert target.resolve_tag(cosign_tag(Digest.from_bytes(b"other"))) is None


def test_layout_records_referrers_in_index(tmp_path: Path) -> None:
    img = make_index(["linux/amd64"])
    write_image(LayoutSink(tmp_path / "lay", "v1"), img)
    target = LocalTarget.for_layout(tmp_path / "lay")
    entry = _platform_entries(img)[0]
    ref = attach(target, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    attach(target, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON)  # no duplicate entry
    entries = target.content.read_index()
    recorded = [e for e in entries if e.annotations.get(ANNOTATION_SUBJECT)]
    assert len(recorded) == 1
    assert recorded[0].digest == ref.digest and REF_NAME not in recorded[0].annotations
    assert recorded[0].annotations[ANNOTATION_SUBJECT] == str(entry.digest)
    assert recorded[0].artifact_type == SPDX_JSON
    # the tagged image is still what "v1" resolves to
    assert LayoutSource(tmp_path / "lay", "v1").resolve().digest == img.root.digest
    assert [d.digest for d in list_referrers(target, entry.digest)] == [ref.digest]


def test_copy_store_to_registry_and_back(tmp_path: Path, clients: list[RegistryClient]) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(store.sink("app:1"), img)
    local = LocalTarget.for_store(store, "app:1")
    amd, arm = _platform_entries(img)
    attach(local, arm, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    attach(local, amd, IN_TOTO, _provenance(amd.digest), IN_TOTO)
    fake = FakeRegistry(referrers_api=False)
    _seed(fake, "app", img)
    remote = RegistryTarget(_client(fake, clients, tmp_path), "app")
    res = copy_referrers(local, remote, [img.root.digest, amd.digest, arm.digest])
    assert len(res.referrers) == 2
    assert len(list_referrers(remote, arm.digest)) == 1

    store2 = LocalStore(tmp_path / "store2", fsync=False)
    write_image(store2.sink("copy:1"), img)
    back = LocalTarget.for_store(store2, "copy:1")
    res = copy_referrers(remote, back, [img.root.digest, amd.digest, arm.digest])
    assert len(res.referrers) == 2
    assert [d.artifact_type for d in list_referrers(back, amd.digest)] == [IN_TOTO]
    assert store2.prune(wait=5).removed_blobs == 0
    assert len(list_referrers(back, arm.digest)) == 1


def test_referrer_target_adapter(tmp_path: Path, clients: list[RegistryClient]) -> None:
    fake = FakeRegistry()
    client = _client(fake, clients, tmp_path)
    ref = Reference.parse(f"{fake.host}/team/app:1")
    for endpoint in (RemoteSource(ref, client=client), RemoteSink(ref, client=client)):
        t = referrer_target(endpoint)
        assert isinstance(t, RegistryTarget) and t.repository == "team/app"
    store = LocalStore(tmp_path / "store", fsync=False)
    write_image(store.sink("app:1"), make_index(["linux/amd64"]))
    for endpoint2 in (store.source("app:1"), store.sink("app:2")):
        t2 = referrer_target(endpoint2)
        assert isinstance(t2, LocalTarget) and t2.repository == "docker.io/library/app"
    write_image(LayoutSink(tmp_path / "lay", "v1"), make_index(["linux/amd64"]))
    t3 = referrer_target(LayoutSource(tmp_path / "lay", "v1"))
    assert isinstance(t3, LocalTarget) and t3.record_in_index
    assert referrer_target(object()) is None
    assert isinstance(t3, ReferrerTarget)


# -- buildx layout (opt-in) --------------------------------------------------------------------


def test_buildx_layout() -> None:
    img = make_index(["linux/amd64", "linux/arm64"])
    index = Index.parse(img.root_raw)
    amd, arm = index.manifests
    stmts = {
        amd.digest: [_provenance(amd.digest)],
        arm.digest: [
            _provenance(arm.digest),
            statement("app", arm.digest, "https://spdx.dev/Document", {}),
        ],
    }
    out = attestation_manifests_buildx(index, stmts)
    entries = out.index.manifests
    assert entries[:2] == index.manifests  # images first, unchanged
    unknown = [e for e in entries if e.platform == Platform("unknown", "unknown")]
    assert len(unknown) == 2 and entries[2:] == tuple(unknown)
    for e, image in zip(unknown, (amd, arm), strict=True):
        assert e.annotations == {
            REFERENCE_DIGEST: str(image.digest),
            REFERENCE_TYPE: ATTESTATION_MANIFEST,
        }
    assert [m.digest for m in out.manifests] == [e.digest for e in unknown]
    arm_att = out.manifests[1]
    assert [layer.media_type for layer in arm_att.layers] == [IN_TOTO, IN_TOTO]
    assert [layer.annotations[ANNOTATION_PREDICATE_TYPE] for layer in arm_att.layers] == [
        SLSA_PROVENANCE_V1,
        "https://spdx.dev/Document",
    ]
    cfg = json.loads(out.blobs[arm_att.config.digest])
    assert cfg["architecture"] == "unknown" and cfg["os"] == "unknown"
    assert cfg["rootfs"]["diff_ids"] == [str(layer.digest) for layer in arm_att.layers]
    for layer in arm_att.layers:
        assert layer.digest.verify(out.blobs[layer.digest])
    # re-running replaces rather than duplicates
    again = attestation_manifests_buildx(out.index, {amd.digest: [_provenance(amd.digest)]})
    assert (
        len([e for e in again.index.manifests if e.platform == Platform("unknown", "unknown")]) == 2
    )


def test_default_attach_leaves_no_unknown_platforms(
    tmp_path: Path, clients: list[RegistryClient]
) -> None:
    fake = FakeRegistry()
    img = make_index(["linux/amd64", "linux/arm64"])
    _seed(fake, "app", img)
    target = RegistryTarget(_client(fake, clients, tmp_path), "app")
    for e in _platform_entries(img):
        attach(target, e, IN_TOTO, _provenance(e.digest), IN_TOTO)
    raw, _ = fake.manifests["app"][fake.tags["app"]["1"]]
    assert all(
        e.platform is not None and e.platform.os != "unknown" for e in Index.parse(raw).manifests
    )


def test_buildx_rejects_bad_input() -> None:
    img = make_index(["linux/amd64"])
    index = Index.parse(img.root_raw)
    entry = index.manifests[0]
    with pytest.raises(InputError, match="another subject"):
        attestation_manifests_buildx(index, {entry.digest: [_provenance(Digest.from_bytes(b"x"))]})
    with pytest.raises(InputError, match="not an in-toto"):
        attestation_manifests_buildx(index, {entry.digest: [b"{}"]})
    with pytest.raises(UsageError, match="not an image"):
        attestation_manifests_buildx(index, {Digest.from_bytes(b"x"): [_provenance(entry.digest)]})
    docker = make_index(["linux/amd64"], media_type=mt.DOCKER_MANIFEST_LIST)
    dindex = Index.parse(docker.root_raw)
    with pytest.raises(UsageError, match="OCI index"):
        attestation_manifests_buildx(
            dindex, {dindex.manifests[0].digest: [_provenance(dindex.manifests[0].digest)]}
        )


def test_copy_skips_stale_fallback_entries(tmp_path: Path, clients: list[RegistryClient]) -> None:
    sfake = FakeRegistry("s.test", referrers_api=False)
    dfake = FakeRegistry("d.test")
    img = make_index(["linux/amd64"])
    _seed(sfake, "app", img)
    _seed(dfake, "app", img)
    src = RegistryTarget(_client(sfake, clients, tmp_path), "app")
    dst = RegistryTarget(_client(dfake, clients, tmp_path), "app")
    entry = _platform_entries(img)[0]
    gone = attach(src, entry, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    kept = attach(src, entry, IN_TOTO, _provenance(entry.digest), IN_TOTO)
    del sfake.manifests["app"][str(gone.digest)]  # deleted, fallback index not updated
    res = copy_referrers(src, dst, [entry.digest])
    assert [d.digest for d in res.missing] == [gone.digest]
    assert [d.digest for d in res.referrers] == [kept.digest]
    assert [d.digest for d in list_referrers(dst, entry.digest)] == [kept.digest]


def test_attachments_overview(tmp_path: Path, clients: list[RegistryClient]) -> None:
    fake = FakeRegistry(referrers_api=False)
    img = make_index(["linux/amd64", "linux/arm64"])
    index = Index.parse(img.root_raw)
    amd, arm = index.manifests
    # an index that also carries buildx-style attestations for arm64
    bx = attestation_manifests_buildx(index, {arm.digest: [_provenance(arm.digest)]})
    for data in [*img.blobs.values(), *bx.blobs.values()]:
        fake.add_blob("app", data)
    for d, (m_type, raw) in img.manifests.items():
        if d != img.root.digest:
            fake.add_manifest("app", raw, m_type)
    for m in bx.manifests:
        fake.add_manifest("app", m.raw, m.media_type)
    fake.add_manifest("app", bx.index.raw, mt.OCI_INDEX, tag="1")
    target = RegistryTarget(_client(fake, clients, tmp_path), "app")
    sbom = attach(target, amd, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    sig = _fake_signature(fake, "app", bx.index.digest, b"sig")

    got = attachments(target, bx.index.descriptor)
    assert [a.subject.digest for a in got] == [bx.index.digest, amd.digest, arm.digest]
    assert got[0].cosign_tags == ((cosign_tag(bx.index.digest), got[0].cosign_tags[0][1]),)
    assert got[0].cosign_tags[0][1].digest == sig
    assert [d.digest for d in got[1].referrers] == [sbom.digest] and got[1].buildx == ()
    assert got[1].subject.platform == Platform.parse("linux/amd64")
    assert got[2].referrers == () and [d.digest for d in got[2].buildx] == [bx.manifests[0].digest]


def test_api_copy_carries_referrers_unless_told_not_to(tmp_path: Path) -> None:
    from xarch import api

    img = make_index(["linux/amd64", "linux/arm64"])
    write_image(LayoutSink(tmp_path / "src", "v1"), img)
    src = LocalTarget.for_layout(tmp_path / "src")
    amd, arm = _platform_entries(img)
    sbom = attach(src, arm, SPDX_JSON, SPDX_DOC, SPDX_JSON)
    prov = attach(src, amd, IN_TOTO, _provenance(amd.digest), IN_TOTO)
    store = LocalStore(tmp_path / "store", fsync=False)

    res = api.copy(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'dst'}:v1", store=store)
    assert res.referrers == 2 and res.root.digest == img.root.digest
    dst = LocalTarget.for_layout(tmp_path / "dst")
    assert [d.digest for d in list_referrers(dst, arm.digest)] == [sbom.digest]
    assert [d.digest for d in list_referrers(dst, amd.digest)] == [prov.digest]

    bare = api.copy(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'bare'}:v1", store=store,
                    referrers=False)
    assert bare.referrers == 0
    assert list_referrers(LocalTarget.for_layout(tmp_path / "bare"), arm.digest) == []
    # an archive cannot hold referrers: the image alone, no error
    one = api.copy(f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'a.tar'}",
                   platforms=["linux/arm64"], store=store)
    assert one.referrers == 0
