"""The registry client against a real distribution 2.8 registry (Debian docker-registry)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from remote_samples import SampleImage, sample_image

from helpers.registry import RunningRegistry
from xarch.errors import AuthError, IntegrityError, NetworkError, NotFoundError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Index, Manifest
from xarch.oci.reference import Reference
from xarch.transports.remote import (
    RegistryClient,
    RegistryOptions,
    RemoteSink,
    RemoteSource,
    TransferEvent,
    login,
    logout,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def push(client: RegistryClient, repo: str, image: SampleImage, tag: str = "v1") -> None:
    for desc, data in image.blobs():
        client.upload_blob(repo, desc, [data])
    client.put_manifest(repo, tag, image.manifest.raw, image.manifest.media_type)


@pytest.fixture
def options(tmp_path: Path) -> RegistryOptions:
    return RegistryOptions(
        auth_config=str(tmp_path / "cfg" / "config.json"), retries=2, backoff_base=0.05
    )


def test_push_pull_roundtrip(registry: RunningRegistry, options: RegistryOptions) -> None:
    image = sample_image("rt", layer_sizes=(10, 300_000))
    with RegistryClient(registry.url, options) as client:
        client.ping()
        assert client.base_url() == f"http://{registry.url}"  # loopback: https tried, http used
        push(client, "team/app", image)
        raw, media_type, digest = client.get_manifest("team/app", "v1")
        assert (raw, media_type, digest) == (
            image.manifest.raw,
            mt.OCI_MANIFEST,
            image.manifest.digest,
        )
        assert client.head_manifest("team/app", "v1") == image.manifest.descriptor
        for desc, data in image.blobs():
            assert client.get_blob_bytes("team/app", desc) == data


def test_chunked_upload(registry: RunningRegistry, options: RegistryOptions) -> None:
    data = bytes(range(256)) * 1000  # 256000 bytes
    desc = Descriptor.of(mt.OCI_LAYER, data)
    from dataclasses import replace

    with RegistryClient(registry.url, replace(options, chunk_size=64 * 1024)) as client:
        client.upload_blob(
            "chunky",
            desc,
            [data[i : i + 10_000] for i in range(0, len(data), 10_000)],
            monolithic_max=0,
        )
        assert client.has_blob("chunky", desc.digest)
        assert client.get_blob_bytes("chunky", desc) == data


def test_monolithic_upload_of_a_multi_slice_blob(
    registry: RunningRegistry, options: RegistryOptions
) -> None:
    """A monolithic PUT larger than one send slice, from uneven chunks: sized, intact."""
    data = random.Random(7).randbytes(3 * 1024 * 1024 + 12345)
    desc = Descriptor.of(mt.OCI_LAYER, data)
    with RegistryClient(registry.url, options) as client:
        client.upload_blob("mono", desc, [data[:5], data[5:2_500_000], data[2_500_000:]])
        assert client.get_blob_bytes("mono", desc) == data


def test_bad_upload_is_refused(registry: RunningRegistry, options: RegistryOptions) -> None:
    desc = Descriptor.of(mt.OCI_LAYER, b"real")
    with RegistryClient(registry.url, options) as client:
        with pytest.raises(IntegrityError):
            client.upload_blob("x", desc, [b"fake"], monolithic_max=0)
        assert not client.has_blob("x", desc.digest)


def test_not_found_message(registry: RunningRegistry, options: RegistryOptions) -> None:
    with RegistryClient(registry.url, options) as client:
        push(client, "foo", sample_image())
        with pytest.raises(NotFoundError) as info:
            client.get_manifest("foo", "nope")
    assert str(info.value) == (
        f'registry {registry.url}: manifest unknown: tag "nope" not found in repository "foo" (MANIFEST_UNKNOWN)'
    )


def test_mount_tags_delete(registry: RunningRegistry, options: RegistryOptions) -> None:
    image = sample_image("m")
    events: list[TransferEvent] = []
    with RegistryClient(registry.url, options, on_event=events.append) as client:
        push(client, "library/base", image)
        layer = image.layer_descs[0]
        assert client.mount_blob("me/derived", layer.digest, "library/base") is True
        assert client.has_blob("me/derived", layer.digest)
        assert (
            client.mount_blob(
                "me/derived", Descriptor.of(mt.OCI_LAYER, b"nope").digest, "library/base"
            )
            is False
        )
        assert any(str(e) == f"mounted {str(layer.digest)[:19]}… from library/base" for e in events)

        for tag in ("a", "b", "c", "d", "e"):
            client.put_manifest("library/base", tag, image.manifest.raw, image.manifest.media_type)
        tags = client.list_tags("library/base", page_size=2)
        assert sorted(tags) == ["a", "b", "c", "d", "e", "v1"] and len(tags) == 6
        # (distribution 2.8 ignores ?n= and answers in one page; Link pagination is covered
        # against the fake registry)

        client.delete_manifest("library/base", str(image.manifest.digest))
        assert client.head_manifest("library/base", "v1") is None
        with pytest.raises(NotFoundError):
            client.get_manifest("library/base", str(image.manifest.digest))


def test_referrers_fallback(registry: RunningRegistry, options: RegistryOptions) -> None:
    image = sample_image("s")
    with RegistryClient(registry.url, options) as client:
        push(client, "app", image)
        payload = b'{"spdxVersion":"SPDX-2.3"}'
        artifact = Manifest.build(
            Descriptor.of(mt.OCI_EMPTY, b"{}"),
            [Descriptor.of("application/spdx+json", payload)],
            subject=image.manifest.descriptor,
            artifact_type="application/spdx+json",
        )
        client.upload_blob("app", artifact.config, [b"{}"])
        client.upload_blob("app", artifact.layers[0], [payload])
        client.put_manifest("app", str(artifact.digest), artifact.raw, artifact.media_type)
        found = client.referrers("app", str(image.manifest.digest))
        assert [(d.digest, d.artifact_type) for d in found] == [
            (artifact.digest, "application/spdx+json")
        ]
        assert client.referrers("app", str(image.manifest.digest), artifact_type="other/type") == []
        tag = "sha256-" + image.manifest.digest.hex
        assert tag in client.list_tags("app")
        raw, media_type, _ = client.get_manifest("app", tag)
        assert media_type == mt.OCI_INDEX and len(Index.parse(raw).manifests) == 1


def test_source_sink_copy_with_mount(registry: RunningRegistry, options: RegistryOptions) -> None:
    amd, arm = sample_image("amd"), sample_image("arm", layer_sizes=(70_000,))
    with RegistryClient(registry.url, options) as client:
        for im in (amd, arm):
            for desc, data in im.blobs():
                client.upload_blob("src", desc, [data])
            client.put_manifest(
                "src", str(im.manifest.digest), im.manifest.raw, im.manifest.media_type
            )
        index = Index.build([amd.manifest.descriptor, arm.manifest.descriptor])
        client.put_manifest("src", "multi", index.raw, index.media_type)

    events: list[TransferEvent] = []
    src = RemoteSource(Reference.parse(f"{registry.url}/src:multi"), options)
    dst = RemoteSink(Reference.parse(f"{registry.url}/dst:copied"), options, on_event=events.append)
    root = src.resolve()
    assert root.digest == index.digest
    for child in Index.parse(src.fetch_manifest(root)).manifests:
        manifest = Manifest.parse(src.fetch_manifest(child))
        for blob in (manifest.config, *manifest.layers):
            if not dst.mount_blob(blob, src):
                dst.put_blob(blob, src.open_blob(blob))
        dst.put_manifest(manifest.raw, manifest.media_type)
    dst.put_manifest(src.fetch_manifest(root), root.media_type, root=True)
    dst.commit()
    assert {e.kind for e in events} == {"mount"}
    with RegistryClient(registry.url, options) as client:
        assert client.get_manifest("dst", "copied")[2] == index.digest
    src.close()
    dst.close()


def test_unreachable(tmp_path: Path, options: RegistryOptions) -> None:
    from helpers.registry import free_port

    addr = f"127.0.0.1:{free_port()}"
    with RegistryClient(addr, options) as client, pytest.raises(NetworkError) as info:
        client.ping()
    assert (
        str(info.value)
        == f"cannot reach registry {addr}: connection refused (is it running? use --insecure for plain HTTP)"
    )


def test_plain_http_loopback_never_loads_the_trust_store(
    registry: RunningRegistry, options: RegistryOptions
) -> None:
    """https is still tried first, by a TLS probe that verifies nothing; the default trust
    store (~25 ms) loads only for a registry that does speak TLS (test_tls_and_basic_auth:
    the probe's success there is not trusted)."""
    with RegistryClient(registry.url, options) as client:
        client.ping()
        assert client.base_url() == f"http://{registry.url}"
        assert client._lazy_trust is not None and set(client._lazy_trust._clients) == {False}


def test_tls_and_basic_auth(
    secure_registry: RunningRegistry, options: RegistryOptions, tmp_path: Path
) -> None:
    from dataclasses import replace

    url = secure_registry.url
    # Unknown CA: a clear TLS error (loopback falls back to http, which the TLS server refuses).
    with RegistryClient(url, options) as client, pytest.raises(NetworkError) as info:
        client.ping()
    assert f"TLS handshake with registry {url} failed" in str(info.value)
    assert "--ca-file" in str(info.value)
    trusted = replace(options, ca_file=secure_registry.ca_file)
    with RegistryClient(url, trusted) as client:
        client.ping()
        assert client.base_url() == f"https://{url}"
        with pytest.raises(AuthError, match=f"xarch login {url}"):
            client.get_manifest("foo", "v1")
    with pytest.raises(AuthError):
        login(url, "xarch", "wrong", trusted)
    assert not Path(options.auth_config or "").exists()
    login(url, "xarch", "hunter2", trusted)
    config = json.loads(Path(options.auth_config or "").read_text())
    assert url in config["auths"]

    image = sample_image("tls")
    with RegistryClient(url, trusted) as client:  # credentials come from config.json now
        push(client, "secure/app", image)
        assert client.get_manifest("secure/app", "v1")[2] == image.manifest.digest
    # --insecure skips verification entirely
    with RegistryClient(url, replace(options, insecure=True)) as client:
        assert client.get_blob_bytes("secure/app", image.layer_descs[0]) == image.layers[0]
    assert logout(url, trusted) is True
    with RegistryClient(url, trusted) as client, pytest.raises(AuthError):
        client.get_manifest("secure/app", "v1")


def test_docker_certs_d(
    secure_registry: RunningRegistry, options: RegistryOptions, tmp_path: Path
) -> None:
    import shutil
    from dataclasses import replace

    certs = tmp_path / "certs.d"
    (certs / secure_registry.url).mkdir(parents=True)
    shutil.copy(secure_registry.ca_file or "", certs / secure_registry.url / "ca.crt")
    with RegistryClient(secure_registry.url, replace(options, certs_dir=str(certs))) as client:
        client.ping()
        assert client.base_url() == f"https://{secure_registry.url}"


def test_htpasswd_registry_with_blobs_and_uploads_elsewhere(tmp_path: Path) -> None:
    """A real htpasswd registry behind a front (the origin the client logs in to) that
    sends blob reads and upload sessions to another port, as a CDN or storage backend
    would. Login and pulls work end to end, blobs come from the other port without our
    credentials, and the upload there fails clearly instead of handing it the password."""
    import base64

    from forwarder import Forwarder

    from helpers.registry import start_registry

    reg = start_registry(tmp_path, htpasswd=("xarch", "hunter2"))
    cdn_access = "Basic " + base64.b64encode(b"xarch:hunter2").decode()
    storage = Forwarder(
        reg.url,
        # the CDN reaches the registry with its own access, for reads only
        own_auth=lambda method, path: cdn_access if method in ("GET", "HEAD") else None,
    ).start()
    front = Forwarder(reg.url)
    front.redirect = lambda method, path: (
        f"http://{storage.address}{path}"
        if method in ("GET", "HEAD") and "/blobs/sha256:" in path
        else None
    )
    front.rewrite_location = lambda loc: loc.replace(front.address, storage.address)
    front.start()
    options = RegistryOptions(auth_config=str(tmp_path / "cfg" / "config.json"), retries=1)
    image = sample_image("elsewhere")
    try:
        with RegistryClient(reg.url, RegistryOptions(credentials=("xarch", "hunter2"))) as direct:
            push(direct, "team/app", image)
        login(front.address, "xarch", "hunter2", options)
        with RegistryClient(front.address, options) as client:
            assert client.get_manifest("team/app", "v1")[2] == image.manifest.digest
            for desc, data in image.blobs():
                assert client.has_blob("team/app", desc.digest)
                assert client.get_blob_bytes("team/app", desc) == data
            new = Descriptor.of(mt.OCI_LAYER, b"a layer to push")
            for monolithic_max in (64 * 1024 * 1024, 0):
                with pytest.raises(AuthError) as info:
                    client.upload_blob(
                        "team/app", new, [b"a layer to push"], monolithic_max=monolithic_max
                    )
                assert f"http://{storage.address} answered HTTP 401" in str(info.value)
        with RegistryClient(reg.url, RegistryOptions(credentials=("xarch", "hunter2"))) as direct:
            assert not direct.has_blob("team/app", new.digest)
    finally:
        front.stop()
        storage.stop()
        reg.stop()
    assert any(r.authorization for r in front.received)  # the front is the registry: it gets them
    assert {r.method for r in storage.received} >= {"GET", "HEAD", "PUT", "PATCH"}
    assert [r for r in storage.received if r.authorization] == []
