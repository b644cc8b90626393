"""Referrers against a real registry: Debian's docker-registry (distribution 2.8) has no
referrers API, so attach, list and copy all go through the ``sha256-<hex>`` tag fallback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.images import make_index, write_image
from helpers.registry import RunningRegistry, registry_available, start_registry
from xarch.attest.provenance import SLSA_PROVENANCE_V1, provenance_statement
from xarch.attest.referrers import (
    ANNOTATION_PREDICATE_TYPE,
    IN_TOTO,
    SPDX_JSON,
    CopyReferrersResult,
    LocalTarget,
    RegistryTarget,
    attach,
    copy_referrers,
    fetch_payload,
    list_referrers,
    referrer_target,
)
from xarch.oci import mediatype as mt
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index
from xarch.transports.copy import CopyResult, copy_image
from xarch.transports.remote import RegistryClient, RegistryOptions
from xarch.transports.remote.referrers import referrers_tag
from xarch.transports.resolve import open_sink, open_source, parse_location
from xarch.transports.store import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRegistry]:
    if not registry_available():
        pytest.skip("/usr/bin/docker-registry is not installed")
    monkeypatch.setenv("DOCKER_CONFIG", os.fspath(tmp_path / "docker-env"))
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        reg.stop()


def _sbom(platform: str) -> bytes:
    return json.dumps({"spdxVersion": "SPDX-2.3", "name": f"app {platform}"}).encode()


def _provenance(digest: Digest, platform: str) -> bytes:
    from datetime import UTC, datetime

    from xarch.oci.platform import Platform

    t = datetime(2026, 1, 1, tzinfo=UTC)
    return provenance_statement(
        subject_name="app",
        subject_digest=digest,
        platform=Platform.parse(platform),
        dockerfile_digest=Digest.from_bytes(b"FROM scratch\n"),
        dockerfile_path="Dockerfile",
        base_images=[],
        build_args={"API_TOKEN": "nope"},
        started=t,
        finished=t,
        xarch_version="0.1.0",
        invocation_id="it",
    )


def test_attach_list_copy_via_fallback(tmp_path: Path, registry: RunningRegistry) -> None:
    platforms = ["linux/amd64", "linux/arm64"]
    img = make_index(platforms)
    store = LocalStore(tmp_path / "store", fsync=False)

    def copy(src: str, dst: str) -> tuple[CopyResult, CopyReferrersResult]:
        s = open_source(parse_location(src, default_store=store))
        d = open_sink(parse_location(dst, default_store=store))
        try:
            result = copy_image(s, d)
            st, dt = referrer_target(s), referrer_target(d)
            assert st is not None and dt is not None
            refs = copy_referrers(
                st, dt, [result.root.digest, *(m.digest for m in result.manifests)]
            )
            return result, refs
        finally:
            s.close()
            d.close()

    from xarch.transports.layout import LayoutSink

    write_image(LayoutSink(tmp_path / "lay", "v1"), img)
    copy(f"oci:{tmp_path}/lay:v1", f"{registry.url}/team/app:1")

    client = RegistryClient(registry.url, RegistryOptions(insecure=True))
    try:
        src = RegistryTarget(client, "team/app")
        entries = Index.parse(img.root_raw).manifests
        attached = {}
        for entry, plat in zip(entries, platforms, strict=True):
            sbom = attach(src, entry, SPDX_JSON, _sbom(plat), SPDX_JSON)
            prov = attach(src, entry, IN_TOTO, _provenance(entry.digest, plat), IN_TOTO)
            attached[entry.digest] = {sbom.digest, prov.digest}

        # no referrers API on distribution 2.8: the fallback tag index holds them
        assert client.referrers("team/app", str(entries[0].digest)) != []
        for entry in entries:
            raw, media_type, _ = client.get_manifest("team/app", referrers_tag(entry.digest))
            assert media_type == mt.OCI_INDEX
            assert {m["digest"] for m in json.loads(raw)["manifests"]} == attached[entry.digest]
            listed = list_referrers(src, entry.digest)
            assert {d.digest for d in listed} == attached[entry.digest]
            provs = list_referrers(src, entry.digest, IN_TOTO)
            assert len(provs) == 1
            assert provs[0].annotations[ANNOTATION_PREDICATE_TYPE] == SLSA_PROVENANCE_V1
            _m, payload = fetch_payload(src, provs[0])
            assert b"nope" not in payload
        # the image index was not changed
        raw, _, digest = client.get_manifest("team/app", "1")
        assert digest == img.root.digest

        # registry → another repository, with referrers
        result, refs = copy(f"{registry.url}/team/app:1", f"{registry.url}/other/app:2")
        assert result.root.digest == img.root.digest
        assert len(refs.referrers) == 4
        dst = RegistryTarget(client, "other/app")
        for entry in entries:
            assert {d.digest for d in list_referrers(dst, entry.digest)} == attached[entry.digest]
            sboms = list_referrers(dst, entry.digest, SPDX_JSON)
            assert fetch_payload(dst, sboms[0])[1].startswith(b'{"spdxVersion"')

        # registry → local store → referrers survive prune
        copy(f"{registry.url}/other/app:2", "app:1")
        local = LocalTarget.for_store(store, "app:1")
        store.prune(wait=10)
        for entry in entries:
            assert {d.digest for d in list_referrers(local, entry.digest)} == attached[entry.digest]
    finally:
        client.close()
