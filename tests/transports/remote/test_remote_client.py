"""RegistryClient against the in-process fake registry: protocol, integrity, faults, auth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fakeregistry import FakeRegistry, sha256
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from remote_samples import sample_image, seed_image

from xarch.errors import (
    AuthError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.transports.remote import (
    RegistryClient,
    RegistryNotFoundError,
    RegistryOptions,
    TransferEvent,
)
from xarch.transports.remote.errors import RegistryAuthError

MakeClient = Callable[..., RegistryClient]


# -- ping / scheme ----------------------------------------------------------------------


def test_ping_https(fake: FakeRegistry, make_client: MakeClient) -> None:
    client = make_client(fake)
    client.ping()
    assert client.base_url() == "https://registry.test"


def test_loopback_falls_back_to_plain_http(make_client: MakeClient) -> None:
    fake = FakeRegistry("127.0.0.1:5000", scheme="http")
    client = make_client(fake)
    client.ping()
    assert client.base_url() == "http://127.0.0.1:5000"
    # https was tried first, as docker does
    assert fake.log[0] == ("GET", "/v2/")


def test_non_loopback_plain_http_needs_insecure(make_client: MakeClient) -> None:
    fake = FakeRegistry("registry.test", scheme="http")
    with pytest.raises(NetworkError) as info:
        make_client(fake).ping()
    assert "TLS handshake with registry registry.test failed" in str(info.value)
    assert "--insecure" in str(info.value)
    client = make_client(fake, insecure=True)
    client.ping()
    assert client.base_url() == "http://registry.test"


def test_connection_refused_message(make_client: MakeClient, sleeps: list[float]) -> None:
    fake = FakeRegistry("127.0.0.1:5000")
    client = RegistryClient("127.0.0.1:5001", client_options(fake, sleeps))
    with pytest.raises(NetworkError) as info:
        client.ping()
    assert str(info.value) == (
        "cannot reach registry 127.0.0.1:5001: connection refused "
        "(is it running? use --insecure for plain HTTP)"
    )
    assert sleeps == []  # refusals fail fast, no backoff


def client_options(fake: FakeRegistry, sleeps: list[float]):
    from xarch.transports.remote import RegistryOptions

    return RegistryOptions(transport=fake.transport, sleep=sleeps.append)


def test_ping_on_a_non_registry(make_client: MakeClient) -> None:
    fake = FakeRegistry()
    fake.add_fault("GET", r"^/v2/$", "status", status=404, times=-1)
    with pytest.raises(RegistryError):
        make_client(fake).ping()


# -- manifests --------------------------------------------------------------------------


def test_get_manifest_by_tag_and_digest(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    digest = seed_image(fake, "library/foo", image)
    client = make_client(fake)
    raw, media_type, got = client.get_manifest("library/foo", "v1")
    assert raw == image.manifest.raw
    assert media_type == mt.OCI_MANIFEST
    assert got == digest == image.manifest.digest
    assert client.get_manifest("library/foo", digest)[2] == digest


def test_get_manifest_sends_accept(fake: FakeRegistry, make_client: MakeClient) -> None:
    seen: list[str] = []
    inner = fake.transport

    def spy(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            seen.append(request.headers.get("accept", ""))
        return inner.handle_request(request)

    seed_image(fake, "foo", sample_image())
    client = make_client(fake, transport=httpx.MockTransport(spy))
    client.get_manifest("foo", "v1")
    assert mt.OCI_INDEX in seen[0] and mt.DOCKER_MANIFEST in seen[0]


def test_manifest_not_found_message(fake: FakeRegistry, make_client: MakeClient) -> None:
    fake.host = "127.0.0.1:5000"
    fake.scheme = "http"
    seed_image(fake, "foo", sample_image())
    with pytest.raises(RegistryNotFoundError) as info:
        make_client(fake).get_manifest("foo", "nope")
    assert str(info.value) == (
        'registry 127.0.0.1:5000: manifest unknown: tag "nope" not found in repository "foo" (MANIFEST_UNKNOWN)'
    )
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, RegistryError)
    assert info.value.code == "MANIFEST_UNKNOWN" and info.value.status == 404


def test_manifest_corrupted_by_registry(fake: FakeRegistry, make_client: MakeClient) -> None:
    digest = seed_image(fake, "foo", sample_image())
    fake.add_fault("GET", "/manifests/", "corrupt", times=-1)
    client = make_client(fake)
    with pytest.raises(IntegrityError, match="does not match"):
        client.get_manifest("foo", digest)
    with pytest.raises(IntegrityError, match="Docker-Content-Digest"):
        client.get_manifest("foo", "v1")


def test_manifest_header_digest_mismatch(fake: FakeRegistry, make_client: MakeClient) -> None:
    seed_image(fake, "foo", sample_image())
    inner = fake.transport

    def lying(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if "/manifests/" in request.url.path:
            resp.read()
            headers = dict(resp.headers)
            headers["docker-content-digest"] = sha256(b"other")
            return httpx.Response(resp.status_code, headers=headers, content=resp.content)
        return resp

    client = make_client(fake, transport=httpx.MockTransport(lying))
    with pytest.raises(IntegrityError):
        client.get_manifest("foo", "v1")


_hex = st.text("0123456789abcdef", min_size=64, max_size=64)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hexpart=_hex, tag=st.sampled_from(["v1", "latest", "1.2.3-rc_1"]))
def test_lying_head_digest_is_reported_as_the_lie_it_is(
    tmp_path: Path, hexpart: str, tag: str
) -> None:
    """HEAD by tag reports digest X; the registry has no X. That is the registry's wrong
    digest for the tag (IntegrityError), not a missing manifest."""
    image = sample_image()
    lie = f"sha256:{hexpart}"
    assume(lie != image.manifest.digest)
    fake = FakeRegistry(manifest_digest_header=lie)
    seed_image(fake, "foo", image, tag=tag)
    options = RegistryOptions(
        transport=fake.transport, sleep=lambda _: None, auth_config=str(tmp_path / "c.json")
    )
    with RegistryClient(fake.host, options) as client:
        desc = client.head_manifest("foo", tag)
        assert desc is not None and desc.digest == lie
        with pytest.raises(IntegrityError) as info:
            client.get_manifest("foo", lie)
    assert not isinstance(info.value, NotFoundError)
    assert str(info.value).startswith(
        f'registry registry.test reported digest {lie} for tag "{tag}" in repository "foo"'
    )


def test_lying_head_digest_through_the_source(fake: FakeRegistry, make_client: MakeClient) -> None:
    """What a build or copy does: resolve the tag (HEAD), then fetch by digest."""
    from xarch.oci.reference import Reference
    from xarch.transports.remote import RemoteSource

    lie = sha256(b"some other manifest")
    fake.manifest_digest_header = lie
    seed_image(fake, "foo", sample_image())
    source = RemoteSource(Reference.parse("registry.test/foo:v1"), client=make_client(fake))
    with pytest.raises(IntegrityError, match=f'reported digest {lie} for tag "v1"'):
        source.fetch_manifest(source.resolve())


def test_lying_head_digest_serving_other_bytes(fake: FakeRegistry, make_client: MakeClient) -> None:
    """The registry answers for the reported digest with the tag's real bytes: the mismatch
    names the tag it was reported for."""
    image = sample_image()
    seed_image(fake, "foo", image)
    lie = sha256(b"x")
    inner = fake.transport

    def serve_tag_for_lie(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"/manifests/{lie}"):
            request = httpx.Request(request.method, str(request.url).replace(lie, "v1"))
        resp = inner.handle_request(request)
        if "/manifests/" in request.url.path:
            resp.read()
            headers = {**resp.headers, "docker-content-digest": lie}
            return httpx.Response(resp.status_code, headers=headers, content=resp.content)
        return resp

    client = make_client(fake, transport=httpx.MockTransport(serve_tag_for_lie))
    desc = client.head_manifest("foo", "v1")
    assert desc is not None and desc.digest == lie
    with pytest.raises(IntegrityError) as info:
        client.get_manifest("foo", lie)
    assert 'reported for tag "v1" by Docker-Content-Digest' in str(info.value)
    assert f"content hashes to {image.manifest.digest}" in str(info.value)


def test_media_type_sniffed_when_generic(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    for _, data in image.blobs():
        fake.add_blob("foo", data)
    fake.add_manifest("foo", image.manifest.raw, "application/json", "v1")
    _, media_type, _ = make_client(fake).get_manifest("foo", "v1")
    assert media_type == mt.OCI_MANIFEST


def test_head_manifest(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    digest = seed_image(fake, "foo", image)
    client = make_client(fake)
    desc = client.head_manifest("foo", "v1")
    assert desc == Descriptor(mt.OCI_MANIFEST, Digest(digest), len(image.manifest.raw))
    assert client.head_manifest("foo", "missing") is None
    assert fake.count("GET", "/manifests/") == 0


def test_put_and_delete_manifest(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    client = make_client(fake)
    for desc, data in image.blobs():
        client.upload_blob("foo", desc, [data])
    digest = client.put_manifest("foo", "v1", image.manifest.raw, image.manifest.media_type)
    assert digest == image.manifest.digest
    assert fake.tags["foo"]["v1"] == digest
    client.delete_manifest("foo", digest)
    assert client.head_manifest("foo", "v1") is None


def test_put_manifest_with_missing_blob(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    with pytest.raises(RegistryError) as info:
        make_client(fake).put_manifest("foo", "v1", image.manifest.raw, image.manifest.media_type)
    assert info.value.code == "MANIFEST_BLOB_UNKNOWN"


def test_put_manifest_by_wrong_digest_is_refused_locally(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    with pytest.raises(IntegrityError):
        make_client(fake).put_manifest("foo", sha256(b"x"), b"{}", mt.OCI_MANIFEST)
    assert fake.count("PUT") == 0


def test_delete_disabled(make_client: MakeClient) -> None:
    fake = FakeRegistry(delete_enabled=False)
    digest = seed_image(fake, "foo", sample_image())
    with pytest.raises(RegistryError) as info:
        make_client(fake).delete_manifest("foo", digest)
    assert info.value.code == "UNSUPPORTED" and info.value.status == 405
    assert "deletion disabled" in str(info.value)


# -- blobs: download ----------------------------------------------------------------------


def test_get_blob_streams_and_verifies(
    fake: FakeRegistry, make_client: MakeClient, events: list[TransferEvent]
) -> None:
    image = sample_image(layer_sizes=(3 * 1024 * 1024 + 17,))
    seed_image(fake, "foo", image)
    desc = image.layer_descs[0]
    chunks = list(make_client(fake).get_blob("foo", desc))
    assert len(chunks) > 1
    assert b"".join(chunks) == image.layers[0]
    assert [e.kind for e in events] == ["download"]


def test_get_blob_not_found(fake: FakeRegistry, make_client: MakeClient) -> None:
    desc = Descriptor.of(mt.OCI_LAYER, b"absent")
    fake.tags["foo"] = {}
    with pytest.raises(RegistryNotFoundError, match="BLOB_UNKNOWN"):
        make_client(fake).get_blob_bytes("foo", desc)


def test_blob_whose_bytes_do_not_match(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    seed_image(fake, "foo", image)
    fake.add_fault("GET", "/blobs/", "corrupt", times=-1)
    with pytest.raises(IntegrityError, match="does not match its digest"):
        make_client(fake).get_blob_bytes("foo", image.layer_descs[0])


def test_blob_bytes_stored_under_wrong_digest(fake: FakeRegistry, make_client: MakeClient) -> None:
    """A registry serving other content under a digest (same size) is caught."""
    good = b"a" * 100
    digest = sha256(good)
    fake.blobs[digest] = b"b" * 100
    fake.repo_blobs["foo"] = {digest}
    with pytest.raises(IntegrityError):
        make_client(fake).get_blob_bytes("foo", Descriptor(mt.OCI_LAYER, Digest(digest), 100))


def test_blob_larger_than_descriptor(fake: FakeRegistry, make_client: MakeClient) -> None:
    data = b"x" * 100
    digest = fake.add_blob("foo", data)
    with pytest.raises(IntegrityError, match="larger"):
        make_client(fake).get_blob_bytes("foo", Descriptor(mt.OCI_LAYER, Digest(digest), 50))


def test_truncated_body_once_resumes_with_range(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    image = sample_image(layer_sizes=(5000,))
    seed_image(fake, "foo", image)
    fake.add_fault("GET", "/blobs/", "truncate", after_bytes=1234)
    data = make_client(fake).get_blob_bytes("foo", image.layer_descs[0])
    assert data == image.layers[0]
    assert len(sleeps) == 1
    ranged = [p for m, p in fake.log if m == "GET" and "/blobs/" in p]
    assert len(ranged) == 2


def test_truncated_body_always_is_integrity_error(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    image = sample_image(layer_sizes=(5000,))
    seed_image(fake, "foo", image)
    fake.range_support = False
    fake.add_fault("GET", "/blobs/", "truncate", after_bytes=1000, times=-1)
    with pytest.raises(IntegrityError, match="truncated: got 1000 of 5000 bytes"):
        make_client(fake, retries=2).get_blob_bytes("foo", image.layer_descs[0])


def test_connection_drop_mid_stream_resumes(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image(layer_sizes=(4000,))
    seed_image(fake, "foo", image)
    fake.add_fault("GET", "/blobs/", "read_error", after_bytes=1500)
    assert make_client(fake).get_blob_bytes("foo", image.layer_descs[0]) == image.layers[0]


def test_resume_without_range_support_skips_prefix(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    image = sample_image(layer_sizes=(4000,))
    seed_image(fake, "foo", image)
    fake.range_support = False
    fake.add_fault("GET", "/blobs/", "read_error", after_bytes=1500)
    assert make_client(fake).get_blob_bytes("foo", image.layer_descs[0]) == image.layers[0]


# -- retries --------------------------------------------------------------------------------


def test_500_then_success(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float], events: list[TransferEvent]
) -> None:
    seed_image(fake, "foo", sample_image())
    fake.add_fault("GET", "/manifests/v1", "status", status=500, times=2)
    make_client(fake).get_manifest("foo", "v1")
    assert len(sleeps) == 2
    assert sleeps[0] <= 0.5 and sleeps[1] <= 1.0  # exponential with jitter, base 0.5
    retry_events = [e for e in events if e.kind == "retry"]
    assert len(retry_events) == 2 and "HTTP 500" in retry_events[0].detail


def test_429_honours_retry_after(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    seed_image(fake, "foo", sample_image())
    fake.add_fault("GET", "/manifests/v1", "status", status=429, headers={"Retry-After": "7"})
    make_client(fake).get_manifest("foo", "v1")
    assert sleeps == [7.0]


def test_429_http_date_retry_after(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    seed_image(fake, "foo", sample_image())
    fake.add_fault(
        "GET",
        "/manifests/v1",
        "status",
        status=429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    make_client(fake).get_manifest("foo", "v1")
    assert sleeps == [0.0]  # a date in the past: retry now


def test_retries_are_bounded(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    seed_image(fake, "foo", sample_image())
    fake.add_fault("GET", "/manifests/v1", "status", status=503, times=-1)
    with pytest.raises(RegistryError) as info:
        make_client(fake, retries=3).get_manifest("foo", "v1")
    assert info.value.status == 503
    assert len(sleeps) == 3


def test_501_is_not_retried(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    seed_image(fake, "foo", sample_image())
    fake.add_fault("GET", "/manifests/v1", "status", status=501, times=-1)
    with pytest.raises(RegistryError):
        make_client(fake).get_manifest("foo", "v1")
    assert sleeps == []


def test_connection_errors_are_retried(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    seed_image(fake, "foo", sample_image())
    client = make_client(fake)
    client.ping()
    fake.add_fault("GET", "/manifests/v1", "connect_error", times=2)
    client.get_manifest("foo", "v1")
    assert len(sleeps) == 2


def test_connection_errors_exhausted(fake: FakeRegistry, make_client: MakeClient) -> None:
    client = make_client(fake, retries=1)
    client.ping()
    fake.add_fault("GET", "/manifests/v1", "connect_error", times=-1)
    with pytest.raises(NetworkError, match=r"cannot reach registry registry\.test"):
        client.get_manifest("foo", "v1")


# -- blobs: upload -----------------------------------------------------------------------------


def test_monolithic_upload(
    fake: FakeRegistry, make_client: MakeClient, events: list[TransferEvent]
) -> None:
    data = b"hello world" * 100
    desc = Descriptor.of(mt.OCI_LAYER, data)
    client = make_client(fake)
    client.upload_blob("foo", desc, [data[:10], data[10:]])
    assert fake.blobs[desc.digest] == data
    assert fake.count("POST", "/blobs/uploads/") == 1
    assert fake.count("PUT", "/blobs/uploads/") == 1
    assert fake.count("PATCH") == 0
    assert [e.kind for e in events] == ["upload"]
    # second time: HEAD says it exists, nothing is sent
    client.upload_blob("foo", desc, [data])
    assert fake.count("POST", "/blobs/uploads/") == 1
    assert events[-1].kind == "skip"


def test_monolithic_put_is_sized_not_chunked_and_resendable(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    data = bytes(range(256)) * 9000  # 2.2 MiB: more than one send slice
    desc = Descriptor.of(mt.OCI_LAYER, data)
    inner = fake.transport
    seen: list[tuple[str | None, str | None]] = []

    def record(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            seen.append((request.headers.get("content-length"),
                         request.headers.get("transfer-encoding")))
        return inner.handle_request(request)

    fake.add_fault("PUT", "/blobs/uploads/", "status", status=503)  # the body goes out twice
    client = make_client(fake, transport=httpx.MockTransport(record))
    client.upload_blob("foo", desc, [data[:100], data[100:]])
    assert fake.blobs[desc.digest] == data
    assert seen == [(str(len(data)), None)] * 2


def test_chunked_upload_of_multi_chunk_blob(fake: FakeRegistry, make_client: MakeClient) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    desc = Descriptor.of(mt.OCI_LAYER, data)
    client = make_client(fake, chunk_size=3000)
    client.upload_blob(
        "foo", desc, [data[i : i + 700] for i in range(0, len(data), 700)], monolithic_max=1000
    )
    assert fake.blobs[desc.digest] == data
    assert fake.count("PATCH") == 4  # 3000+3000+3000+1240
    assert fake.count("PUT", "/blobs/uploads/") == 1
    assert not fake.uploads


def test_chunked_upload_recovers_from_a_failed_patch(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    data = bytes(range(256)) * 40
    desc = Descriptor.of(mt.OCI_LAYER, data)
    fake.add_fault("PATCH", "/blobs/uploads/", "status", status=500)
    client = make_client(fake, chunk_size=4096)
    client.upload_blob("foo", desc, [data], monolithic_max=0)
    assert fake.blobs[desc.digest] == data
    assert fake.count("GET", "/blobs/uploads/") == 1  # asked for the session status first
    assert len(sleeps) == 1


def test_chunked_upload_when_failed_patch_actually_landed(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    """The chunk reached the registry but the answer was lost: do not send it twice."""
    data = bytes(range(256)) * 40
    desc = Descriptor.of(mt.OCI_LAYER, data)
    inner = fake.transport
    state = {"dropped": False}

    def drop_first_patch_answer(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if request.method == "PATCH" and not state["dropped"]:
            state["dropped"] = True
            raise httpx.ReadError("connection reset", request=request)
        return resp

    client = make_client(
        fake, chunk_size=4096, transport=httpx.MockTransport(drop_first_patch_answer)
    )
    client.upload_blob("foo", desc, [data], monolithic_max=0)
    assert fake.blobs[desc.digest] == data
    assert fake.count("PATCH") == 3  # 4096 + 4096 + 2048, the first one not repeated


def test_monolithic_upload_restarts_session_after_failure(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    data = b"payload" * 10
    desc = Descriptor.of(mt.OCI_LAYER, data)
    fake.add_fault("PUT", "/blobs/uploads/", "status", status=502)
    make_client(fake).upload_blob("foo", desc, [data])
    assert fake.blobs[desc.digest] == data
    assert fake.count("POST", "/blobs/uploads/") == 2


def test_upload_digest_mismatch_stores_nothing(fake: FakeRegistry, make_client: MakeClient) -> None:
    desc = Descriptor.of(mt.OCI_LAYER, b"the real content")
    client = make_client(fake)
    with pytest.raises(IntegrityError):
        client.upload_blob("foo", desc, [b"the fake content"])
    assert desc.digest not in fake.blobs
    # chunked: the session is cancelled, the registry never sees the commit
    with pytest.raises(IntegrityError):
        client.upload_blob("foo", desc, [b"the fake content"], monolithic_max=0)
    assert desc.digest not in fake.blobs
    assert not fake.uploads
    assert fake.count("DELETE", "/blobs/uploads/") == 1


def test_upload_size_mismatch(fake: FakeRegistry, make_client: MakeClient) -> None:
    desc = Descriptor.of(mt.OCI_LAYER, b"12345")
    with pytest.raises(IntegrityError, match="larger"):
        make_client(fake).upload_blob("foo", desc, [b"123456"], monolithic_max=0)
    assert not fake.uploads


# -- mount -------------------------------------------------------------------------------------


def test_mount_success(
    fake: FakeRegistry, make_client: MakeClient, events: list[TransferEvent]
) -> None:
    digest = fake.add_blob("library/src", b"shared layer")
    client = make_client(fake)
    assert client.mount_blob("dst", digest, "library/src") is True
    assert digest in fake.repo_blobs["dst"]
    assert str(events[-1]).startswith("mounted sha256:") and events[-1].detail == "from library/src"


def test_mount_fallback_cancels_session(fake: FakeRegistry, make_client: MakeClient) -> None:
    digest = sha256(b"not there")
    client = make_client(fake)
    assert client.mount_blob("dst", digest, "src") is False
    assert not fake.uploads
    assert fake.count("DELETE", "/blobs/uploads/") == 1


# -- tags ----------------------------------------------------------------------------------------


def test_list_tags_follows_link_pagination(fake: FakeRegistry, make_client: MakeClient) -> None:
    image = sample_image()
    seed_image(fake, "foo", image)
    for i in range(7):
        fake.tags["foo"][f"t{i}"] = image.manifest.digest
    fake.default_page_size = 3
    assert make_client(fake).list_tags("foo") == sorted(["v1", *(f"t{i}" for i in range(7))])
    assert fake.count("GET", "/tags/list") == 3


def test_list_tags_unknown_repo(fake: FakeRegistry, make_client: MakeClient) -> None:
    with pytest.raises(RegistryNotFoundError, match='repository "nope" not found'):
        make_client(fake).list_tags("nope")


# -- referrers -------------------------------------------------------------------------------------


def _artifact(subject: Descriptor, artifact_type: str, payload: bytes) -> Manifest:
    return Manifest.build(
        Descriptor.of(mt.OCI_EMPTY, b"{}"),
        [Descriptor.of("application/vnd.test+json", payload)],
        subject=subject,
        artifact_type=artifact_type,
        annotations={"org.example": payload.decode()},
    )


def _push_artifact(client: RegistryClient, repo: str, art: Manifest, payload: bytes) -> None:
    client.upload_blob(repo, art.config, [b"{}"])
    client.upload_blob(repo, art.layers[0], [payload])
    client.put_manifest(repo, str(art.digest), art.raw, art.media_type)


@pytest.mark.parametrize("api", [True, False])
def test_referrers_api_and_fallback(make_client: MakeClient, api: bool) -> None:
    fake = FakeRegistry(referrers_api=api)
    image = sample_image()
    seed_image(fake, "foo", image)
    client = make_client(fake)
    subject = image.manifest.descriptor
    sbom = _artifact(subject, "application/spdx+json", b"sbom")
    sig = _artifact(subject, "application/vnd.dev.cosign.artifact.sig.v1+json", b"sig")
    _push_artifact(client, "foo", sbom, b"sbom")
    _push_artifact(client, "foo", sig, b"sig")
    _push_artifact(client, "foo", sbom, b"sbom")  # idempotent

    found = client.referrers("foo", str(subject.digest))
    assert {d.digest for d in found} == {sbom.digest, sig.digest}
    by_digest = {d.digest: d for d in found}
    assert by_digest[sbom.digest].artifact_type == "application/spdx+json"
    assert by_digest[sbom.digest].annotations == {"org.example": "sbom"}
    only = client.referrers("foo", str(subject.digest), artifact_type="application/spdx+json")
    assert [d.digest for d in only] == [sbom.digest]

    tag = "sha256-" + subject.digest.hex
    if api:
        assert tag not in fake.tags.get("foo", {})  # OCI-Subject header: nothing to maintain
    else:
        assert tag in fake.tags["foo"]
        index = Index.parse(fake.manifests["foo"][fake.tags["foo"][tag]][0])
        assert len(index.manifests) == 2
        client.remove_referrer("foo", str(subject.digest), str(sig.digest))
        assert [d.digest for d in client.referrers("foo", str(subject.digest))] == [sbom.digest]


def test_referrers_none(fake: FakeRegistry, make_client: MakeClient) -> None:
    fake.referrers_api = False
    seed_image(fake, "foo", sample_image())
    assert make_client(fake).referrers("foo", sha256(b"nothing")) == []


# -- auth ----------------------------------------------------------------------------------------


def test_token_auth_with_scopes_and_caching(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token")
    image = sample_image()
    seed_image(fake, "team/app", image)
    client = make_client(fake, credentials=("alice", "s3cret"))
    client.get_manifest("team/app", "v1")
    client.get_blob_bytes("team/app", image.layer_descs[0])
    client.get_blob_bytes("team/app", image.config_desc)
    pulls = [r for r in fake.token_requests if r["method"] == "GET"]
    assert len(pulls) == 1  # cached per scope set
    assert pulls[0]["scope"] == ["repository:team/app:pull"]
    assert pulls[0]["service"] == "registry.test"
    assert pulls[0]["account"] == "alice" and pulls[0]["authorization"]
    # a push needs a wider token; after that, pulls reuse it (superset)
    client.upload_blob("team/app", Descriptor.of(mt.OCI_LAYER, b"new"), [b"new"])
    assert fake.token_requests[-1]["scope"] == ["repository:team/app:pull,push"]
    n = len(fake.token_requests)
    client.has_blob("team/app", image.config_desc.digest)
    assert len(fake.token_requests) == n


def test_mount_requests_both_scopes_in_one_token(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token")
    digest = fake.add_blob("library/src", b"shared")
    client = make_client(fake, credentials=("alice", "s3cret"))
    assert client.mount_blob("me/dst", digest, "library/src")
    scopes = fake.token_requests[-1]["scope"]
    assert sorted(scopes) == ["repository:library/src:pull", "repository:me/dst:pull,push"]


def test_expired_token_is_refreshed(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token")
    seed_image(fake, "foo", sample_image())
    client = make_client(fake, credentials=("alice", "s3cret"))
    client.get_manifest("foo", "v1")
    fake._tokens.clear()  # the registry forgot/expired every token
    client.get_manifest("foo", "v1")
    assert len(fake.token_requests) == 2


def test_anonymous_token(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token", anonymous_pull=True)
    seed_image(fake, "library/alpine", sample_image())
    client = make_client(fake)
    client.get_manifest("library/alpine", "v1")
    assert fake.token_requests[0]["authorization"] is False
    assert fake.token_requests[0]["account"] is None


def test_anonymous_push_denied_has_login_hint(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token", anonymous_pull=True)
    client = make_client(fake)
    with pytest.raises(AuthError) as info:
        client.upload_blob("foo", Descriptor.of(mt.OCI_LAYER, b"x"), [b"x"])
    assert "run `xarch login registry.test`" in str(info.value)


def test_wrong_password_on_token_endpoint(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token")
    seed_image(fake, "foo", sample_image())
    with pytest.raises(RegistryAuthError) as info:
        make_client(fake, credentials=("alice", "wrong")).get_manifest("foo", "v1")
    assert "invalid username or password" in str(info.value)
    assert "xarch login registry.test" in str(info.value)


def test_identity_token_uses_refresh_grant(make_client: MakeClient, tmp_config) -> None:
    fake = FakeRegistry(auth="token", refresh_tokens={"rt-123": "alice"})
    seed_image(fake, "foo", sample_image())
    tmp_config.parent.mkdir(parents=True)
    tmp_config.write_text(json.dumps({"auths": {"registry.test": {"identitytoken": "rt-123"}}}))
    make_client(fake).get_manifest("foo", "v1")
    req = fake.token_requests[0]
    assert req["method"] == "POST"
    assert req["grant_type"] == ["refresh_token"] and req["refresh_token"] == ["rt-123"]
    assert req["scope"] == ["repository:foo:pull"]


def test_basic_auth(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="basic")
    seed_image(fake, "foo", sample_image())
    make_client(fake, credentials=("alice", "s3cret")).get_manifest("foo", "v1")
    with pytest.raises(RegistryAuthError) as info:
        make_client(fake, credentials=("alice", "bad")).get_manifest("foo", "v1")
    assert info.value.status == 401
    with pytest.raises(RegistryAuthError, match="xarch login"):
        make_client(fake).get_manifest("foo", "v1")


def test_credentials_from_docker_config(make_client: MakeClient, tmp_config) -> None:
    import base64

    fake = FakeRegistry(auth="basic")
    seed_image(fake, "foo", sample_image())
    tmp_config.parent.mkdir(parents=True)
    auth = base64.b64encode(b"alice:s3cret").decode()
    tmp_config.write_text(json.dumps({"auths": {"https://registry.test": {"auth": auth}}}))
    make_client(fake).get_manifest("foo", "v1")


def test_parallel_pulls_share_one_token(make_client: MakeClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake = FakeRegistry(auth="token")
    image = sample_image(layer_sizes=(100, 200, 300, 400, 500, 600))
    seed_image(fake, "foo", image)
    client = make_client(fake, credentials=("alice", "s3cret"))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda d: client.get_blob_bytes("foo", d), image.layer_descs))
    assert results == image.layers
    assert len(fake.token_requests) == 1


# -- redirects and upload-session recovery ---------------------------------------------------------


def test_blob_redirect_does_not_leak_credentials(make_client: MakeClient) -> None:
    fake = FakeRegistry(auth="token")
    data = b"layer bytes on a CDN"
    digest = fake.add_blob("foo", data)
    inner = fake.transport
    cdn_headers: list[httpx.Headers] = []

    def with_cdn(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            cdn_headers.append(request.headers)
            return httpx.Response(200, content=data)
        resp = inner.handle_request(request)
        if request.method == "GET" and "/blobs/" in request.url.path and resp.status_code == 200:
            return httpx.Response(
                307, headers={"Location": f"https://cdn.test/blob?sig=abc&d={digest}"}
            )
        return resp

    client = make_client(
        fake, credentials=("alice", "s3cret"), transport=httpx.MockTransport(with_cdn)
    )
    got = client.get_blob_bytes("foo", Descriptor(mt.OCI_LAYER, Digest(digest), len(data)))
    assert got == data
    assert len(cdn_headers) == 1 and "authorization" not in cdn_headers[0]


def test_chunked_upload_session_lost(fake: FakeRegistry, make_client: MakeClient) -> None:
    data = bytes(range(256)) * 40
    desc = Descriptor.of(mt.OCI_LAYER, data)
    inner = fake.transport

    def forget_session(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and fake.count("PATCH") == 1:
            fake.uploads.clear()  # registry restarted and lost the session
            return httpx.Response(503)
        return inner.handle_request(request)

    client = make_client(fake, chunk_size=4096, transport=httpx.MockTransport(forget_session))
    with pytest.raises(NetworkError, match=r"upload session .* was lost"):
        client.upload_blob("foo", desc, [data], monolithic_max=0)
    assert desc.digest not in fake.blobs


def test_final_put_failure_is_checked_before_retrying(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    data = bytes(range(256)) * 40
    desc = Descriptor.of(mt.OCI_LAYER, data)
    fake.add_fault("PUT", "/blobs/uploads/", "status", status=500)
    client = make_client(fake, chunk_size=4096)
    client.upload_blob("foo", desc, [data], monolithic_max=0)
    assert fake.blobs[desc.digest] == data
    assert fake.count("PUT", "/blobs/uploads/") == 2
    assert fake.count("GET", "/blobs/uploads/") == 1  # asked how much the session holds


def test_patch_protocol_error_is_not_retried(
    fake: FakeRegistry, make_client: MakeClient, sleeps: list[float]
) -> None:
    data = bytes(range(256)) * 40
    desc = Descriptor.of(mt.OCI_LAYER, data)
    fake.add_fault("PATCH", "/blobs/uploads/", "status", status=416)
    with pytest.raises(RegistryError) as info:
        make_client(fake, chunk_size=4096).upload_blob("foo", desc, [data], monolithic_max=0)
    assert info.value.status == 416
    assert sleeps == []
    assert not fake.uploads  # cancelled


def test_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"CA file .* not found"):
        RegistryClient("r.test", RegistryOptions(ca_file=str(tmp_path / "nope.pem")))
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match="cannot load CA certificate"):
        RegistryClient("r.test", RegistryOptions(ca_file=str(bad)))


def test_blob_served_with_content_encoding_is_not_decoded(
    fake: FakeRegistry, make_client: MakeClient
) -> None:
    """A proxy labelling a gzip layer 'Content-Encoding: gzip' must not make us gunzip it."""
    import gzip

    layer = gzip.compress(b"pretend this is a tar" * 50)
    digest = fake.add_blob("foo", layer)
    inner = fake.transport
    accept: list[str] = []

    def mislabel(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if request.method == "GET" and "/blobs/" in request.url.path:
            accept.append(request.headers.get("accept-encoding", ""))
            body = resp.read()
            headers = {**resp.headers, "Content-Encoding": "gzip"}
            return httpx.Response(200, headers=headers, stream=_Once(body))
        return resp

    client = make_client(fake, transport=httpx.MockTransport(mislabel))
    got = client.get_blob_bytes("foo", Descriptor(mt.OCI_LAYER_GZIP, Digest(digest), len(layer)))
    assert got == layer
    assert accept == ["identity"]


class _Once(httpx.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
