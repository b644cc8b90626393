"""Attestations for a build: SBOM and SLSA provenance per platform, cosign signatures.

By default they are OCI 1.1 referrers of each platform manifest (nothing is added to the
index); ``attest_style="buildx"`` instead adds BuildKit's ``unknown/unknown`` attestation
manifests to the index, for consumers that need them. Attestations are first attached in
the local store, then copied next to the image wherever it is pushed (referrers API, or the
``sha256-<hex>`` fallback tag). Signatures are made where the image ends up, so the
signed ``docker-reference`` names the repository consumers pull from.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xarch import __version__
from xarch.content.store import ContentStore
from xarch.errors import UsageError
from xarch.exporter.image import ExportResult
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index
from xarch.transports.store import LocalStore, StoreSource

SPDX_PREDICATE = "https://spdx.dev/Document"


@dataclass(frozen=True)
class AttestOptions:
    sbom: bool = False
    provenance: str | None = None  # "min" | "max"
    style: str = "referrers"  # "referrers" | "buildx"
    sign_key: Any = None  # a private key (xarch.attest.keys) or None


@dataclass(frozen=True)
class BuildFacts:
    """What provenance says about a build."""

    dockerfile_digest: Digest
    dockerfile_path: str
    base_images: Sequence[tuple[str, Digest]]
    build_args: Mapping[str, str]
    started: datetime
    finished: datetime
    target: str | None
    steps: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def attest_in_store(
    store: LocalStore,
    exported: ExportResult,
    opts: AttestOptions,
    facts: BuildFacts,
    *,
    name: str,
    info: Callable[[str], None],
) -> ExportResult:
    """Generate and attach the attestations in the store; returns the (possibly new) result."""
    if not (opts.sbom or opts.provenance):
        return exported
    if opts.style not in ("referrers", "buildx"):
        raise UsageError(f"unknown --attest-style {opts.style!r}", hint="referrers or buildx")
    # attest and provenance are imported when an attestation is made: every build imports
    # this module, few attest
    from xarch.attest import referrers as refs
    from xarch.attest.provenance import provenance_statement

    sboms: dict[str, bytes] = {}
    if opts.sbom:
        from xarch.attest.sbom.api import generate_sboms

        src = StoreSource(store, f"xarch-build/result@{exported.root.digest}")
        by_platform = generate_sboms(src, fmt="spdx-json", name=name)
        for m in exported.manifests:
            doc = by_platform.get(m.platform) if m.platform is not None else None
            if doc is None and len(by_platform) == 1:
                doc = next(iter(by_platform.values()))
            if doc is None:
                raise UsageError(f"no SBOM was produced for {m.platform}")
            sboms[str(m.digest)] = doc
    provs: dict[str, bytes] = {}
    if opts.provenance:
        invocation = str(uuid.uuid4())
        for m in exported.manifests:
            assert m.platform is not None
            provs[str(m.digest)] = provenance_statement(
                subject_name=name, subject_digest=m.digest, platform=m.platform,
                dockerfile_digest=facts.dockerfile_digest, dockerfile_path=facts.dockerfile_path,
                base_images=facts.base_images, build_args=facts.build_args,
                started=facts.started, finished=facts.finished, xarch_version=__version__,
                mode="max" if opts.provenance == "max" else "min",
                steps=list(facts.steps) if opts.provenance == "max" else None,
                invocation_id=invocation, target=facts.target,
            )
    if opts.style == "buildx":
        return _buildx(store, exported, sboms, provs, name, info)
    target = refs.LocalTarget.for_store(store, name)
    for m in exported.manifests:
        subject = Descriptor(m.media_type, m.digest, m.size)
        if str(m.digest) in sboms:
            refs.attach(target, subject, refs.SPDX_JSON, sboms[str(m.digest)], refs.SPDX_JSON)
            info(f"attached SBOM (SPDX) to {m.digest} ({m.platform})")
        if str(m.digest) in provs:
            refs.attach(target, subject, refs.IN_TOTO, provs[str(m.digest)], refs.IN_TOTO)
            info(f"attached provenance to {m.digest} ({m.platform})")
    return exported


def _buildx(store: LocalStore, exported: ExportResult, sboms: Mapping[str, bytes],
            provs: Mapping[str, bytes], name: str, info: Callable[[str], None]) -> ExportResult:
    content: ContentStore = store.content
    if exported.root.media_type != mt.OCI_INDEX:
        raise UsageError("--attest-style buildx needs an OCI index",
                         hint="build with OCI media types (the default); single-platform builds get an index too")
    from xarch.attest import referrers as refs
    from xarch.attest.provenance import statement

    index = Index.parse(content.read_bytes(exported.root.digest))
    statements: dict[str, list[bytes]] = {}
    for m in exported.manifests:
        lst = statements.setdefault(str(m.digest), [])
        if str(m.digest) in sboms:
            lst.append(statement(name, m.digest, SPDX_PREDICATE, json.loads(sboms[str(m.digest)])))
        if str(m.digest) in provs:
            lst.append(provs[str(m.digest)])
    res = refs.attestation_manifests_buildx(index, statements)
    for digest, blob in res.blobs.items():
        content.ingest_bytes(blob, digest)
    for man in res.manifests:
        content.ingest_bytes(man.raw, man.digest)
    content.ingest_bytes(res.index.raw, res.index.digest)
    info(f"added {len(res.manifests)} buildx attestation manifest(s) to the index")
    return ExportResult(root=res.index.descriptor, manifests=exported.manifests, configs=exported.configs)


def publish_referrers(store: LocalStore, name: str, exported: ExportResult, registry_ref: str,
                      registry_options: Any, info: Callable[[str], None]) -> None:
    """Copy the store's referrers (and cosign tags) of the build to a pushed repository."""
    from xarch.attest import referrers as refs
    from xarch.oci.reference import Reference
    from xarch.transports.remote.client import RegistryClient

    ref = Reference.parse(registry_ref.removeprefix("docker://"))
    client = RegistryClient(ref.registry, registry_options)
    try:
        src = refs.LocalTarget.for_store(store, name)
        dst = refs.RegistryTarget(client, ref.repository)
        digests = [exported.root.digest, *(m.digest for m in exported.manifests)]
        res = refs.copy_referrers(src, dst, digests)
        if res.referrers:
            info(f"pushed {len(res.referrers)} attestation(s) to {ref.context()}")
    finally:
        client.close()


def sign_published(location: str, key: Any, *, store: LocalStore, registry_options: Any,
                   info: Callable[[str], None]) -> None:
    from xarch.attest.signing import open_target, sign

    t = open_target(location, local=store, registry_options=registry_options)
    try:
        for subject, sig in sign(t, key):
            what = f" ({subject.platform})" if subject.platform else ""
            info(f"signed {subject.digest}{what} -> {sig.digest}")
    finally:
        t.close()

