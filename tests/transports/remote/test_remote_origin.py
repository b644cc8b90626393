"""Credentials go only to the registry's own origin (and its challenge's token realm).

Redirect targets, upload Locations and Link pages on any other origin (another host, another
port, another scheme) get no Authorization header, their challenges are not answered, and
the registry's own token realm stays the one in use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fakeregistry import EVIL_REALM, FakeRegistry, ForeignKind, origin
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from remote_samples import sample_image, seed_image

from xarch.errors import AuthError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.transports.remote import RegistryClient, RegistryOptions
from xarch.transports.remote.errors import RegistryAuthError

MakeClient = Callable[..., RegistryClient]
Auth = Literal["basic", "token"]
CREDS = ("alice", "s3cret")

# Other origins, relative to https://registry.test (the upgrade case has an http registry).
SHAPES = {
    "other-host": ("https", "https://cdn.test"),
    "other-port": ("https", "https://registry.test:8443"),
    "https-to-http": ("https", "http://registry.test"),
    "http-to-https": ("http", "https://registry.test"),
}


def delegating(auth: Auth, shape: str, kind: ForeignKind = "serve", **kw: Any) -> FakeRegistry:
    scheme, other = SHAPES[shape]
    return FakeRegistry(
        scheme=scheme,  # type: ignore[arg-type]
        auth=auth,
        foreign={other: kind},
        **kw,
    )


def client_for(make_client: MakeClient, fake: FakeRegistry) -> RegistryClient:
    # http registries need --insecure (registry.test is not loopback)
    return make_client(fake, credentials=CREDS, insecure=fake.scheme == "http")


def assert_nothing_left_home(fake: FakeRegistry) -> None:
    leaked = [s for s in fake.foreign_requests() if s.authorization is not None]
    assert leaked == []
    assert not [s for s in fake.seen if s.origin == origin(httpx.URL(EVIL_REALM))]


@pytest.mark.parametrize("auth", ["basic", "token"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("monolithic_max", [64 * 1024 * 1024, 0], ids=["monolithic", "chunked"])
def test_blobs_and_uploads_elsewhere_work_without_credentials(
    make_client: MakeClient, auth: Auth, shape: str, monolithic_max: int
) -> None:
    """A registry whose blob bytes and upload sessions live on another origin (a CDN, S3):
    pulls and pushes work, and that origin never sees an Authorization header."""
    _, other = SHAPES[shape]
    fake = delegating(auth, shape, blob_redirect=other, upload_origin=other)
    image = sample_image()
    seed_image(fake, "foo", image)
    client = client_for(make_client, fake)

    desc = image.layer_descs[0]
    assert client.get_blob_bytes("foo", desc) == image.layers[0]
    assert client.has_blob("foo", desc.digest)
    data = bytes(range(256)) * 20
    new = Descriptor.of(mt.OCI_LAYER, data)
    client.upload_blob("foo", new, [data], monolithic_max=monolithic_max)
    assert fake.blobs[str(new.digest)] == data

    elsewhere = fake.foreign_requests()
    assert {s.method for s in elsewhere} >= {"GET", "HEAD", "PUT"}
    assert all(s.origin == other for s in elsewhere)
    assert_nothing_left_home(fake)


@pytest.mark.parametrize("auth", ["basic", "token"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kind", ["bearer", "basic"])
def test_challenge_from_a_redirect_target_is_not_answered(
    make_client: MakeClient, auth: Auth, shape: str, kind: ForeignKind
) -> None:
    """The CDN a blob is redirected to answers 401 with a realm of its own: no token is
    fetched there, no password sent, the error names that origin, and the registry's own
    realm is still the one used afterwards."""
    _, other = SHAPES[shape]
    fake = delegating(auth, shape, kind, blob_redirect=other)
    image = sample_image()
    seed_image(fake, "foo", image)
    client = client_for(make_client, fake)

    with pytest.raises(RegistryAuthError) as info:
        client.get_blob_bytes("foo", image.layer_descs[0])
    message = str(info.value)
    assert message.startswith(f"registry registry.test: {other} answered HTTP 401")
    assert "credentials go only to" in message
    assert_nothing_left_home(fake)

    # The registry's own challenge still rules: the manifest comes with its own auth.
    fake.blob_redirect = None
    assert client.get_manifest("foo", "v1")[0] == image.manifest.raw
    assert_nothing_left_home(fake)
    if auth == "token":
        assert all(r["service"] == "registry.test" for r in fake.token_requests)


@pytest.mark.parametrize("auth", ["basic", "token"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_upload_location_that_wants_credentials_fails_clearly(
    make_client: MakeClient, auth: Auth, shape: str
) -> None:
    """A misconfigured registry (wrong external URL) points uploads at an origin that asks
    for a password: the push stops with that origin named, the password stays home."""
    _, other = SHAPES[shape]
    fake = delegating(auth, shape, "basic", upload_origin=other)
    data = b"layer" * 100
    desc = Descriptor.of(mt.OCI_LAYER, data)
    client = client_for(make_client, fake)
    with pytest.raises(AuthError) as info:
        client.upload_blob("foo", desc, [data])
    assert f"{other} answered HTTP 401 while uploading blob {desc.digest}" in str(info.value)
    assert "external URL" in str(info.value)
    assert_nothing_left_home(fake)
    assert str(desc.digest) not in fake.blobs


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_tag_pages_on_another_origin_get_no_credentials(
    make_client: MakeClient, auth: Auth
) -> None:
    fake = FakeRegistry(
        auth=auth,
        foreign={"https://pages.test": "serve"},
        link_origin="https://pages.test",
        default_page_size=2,
    )
    image = sample_image()
    seed_image(fake, "foo", image)
    for tag in ("a", "b", "c", "d"):
        fake.tags["foo"][tag] = image.manifest.digest
    tags = client_for(make_client, fake).list_tags("foo")
    assert sorted(tags) == ["a", "b", "c", "d", "v1"]
    assert fake.foreign_requests()
    assert_nothing_left_home(fake)


def test_authorization_set_by_anyone_is_stripped_off_home(
    make_client: MakeClient, fake: FakeRegistry
) -> None:
    """Not only our credentials: no Authorization header at all leaves the origin."""
    fake.auth = "basic"
    fake.foreign = {"https://cdn.test": "serve"}
    data = b"x" * 10
    digest = fake.add_blob("foo", data)
    client = client_for(make_client, fake)
    client.ping()
    resp = client._send(  # the one door every request goes through
        "GET",
        f"https://cdn.test/v2/foo/blobs/{digest}",
        scopes=(),
        headers={"Authorization": "Basic c2VjcmV0"},
    )
    assert resp.status_code == 200 and resp.content == data
    assert_nothing_left_home(fake)


# -- property: whatever the other origin, nothing of ours reaches it ------------------------

_hosts = st.sampled_from(
    ["registry.test", "REGISTRY.test", "cdn.test", "auth.test.evil", "127.0.0.2"]
)
_ports = st.sampled_from([None, 80, 443, 8443, 5000])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_hosts,
    port=_ports,
    auth=st.sampled_from(["basic", "token"]),
    scenario=st.sampled_from(["blob", "challenge", "upload", "pages"]),
)
def test_no_credentials_ever_leave_the_origin(
    tmp_path: Path, scheme: str, host: str, port: int | None, auth: Auth, scenario: str
) -> None:
    raw = f"{scheme}://{host}" + (f":{port}" if port else "")
    other = origin(httpx.URL(raw))
    assume(other != "https://registry.test")  # the registry itself may have them
    kind: ForeignKind = "bearer" if scenario == "challenge" else "serve"
    fake = FakeRegistry(auth=auth, foreign={other: kind})
    if scenario in ("blob", "challenge"):
        fake.blob_redirect = raw
    elif scenario == "upload":
        fake.upload_origin = raw
    else:
        fake.link_origin, fake.default_page_size = raw, 1
    image = sample_image()
    seed_image(fake, "foo", image)
    fake.tags["foo"]["v2"] = image.manifest.digest
    options = RegistryOptions(
        transport=fake.transport,
        sleep=lambda _: None,
        credentials=CREDS,
        auth_config=str(tmp_path / "config.json"),
    )
    with RegistryClient(fake.host, options) as client:
        try:
            if scenario == "upload":
                client.upload_blob("foo", Descriptor.of(mt.OCI_LAYER, b"new"), [b"new"])
            elif scenario == "pages":
                client.list_tags("foo")
            else:
                client.get_blob_bytes("foo", image.layer_descs[0])
        except AuthError:
            assert scenario == "challenge"
    assert fake.foreign_requests(), "the scenario must reach the other origin"
    assert_nothing_left_home(fake)
    if auth == "token":
        assert {r["service"] for r in fake.token_requests} == {"registry.test"}
