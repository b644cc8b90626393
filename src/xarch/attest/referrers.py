"""Attestations as OCI 1.1 referrers: attach, list, copy; and the opt-in buildx layout.

An attached artifact is an OCI image manifest with ``artifactType``, the empty config
(``application/vnd.oci.empty.v1+json``, ``{}``), one layer holding the payload and ``subject`` =
the platform manifest it describes. Nothing is added to the image index, so registries and
runtimes never see ``unknown/unknown`` platforms.

Where referrers are recorded
- Registry (:class:`RegistryTarget`): the artifact manifest is pushed by digest. A registry
  with the referrers API answers with ``OCI-Subject`` and indexes it itself; otherwise
  ``RegistryClient.put_manifest`` maintains the tag-schema fallback (an OCI index tagged
  ``sha256-<hex>`` listing every referrer with its artifactType and annotations; read-modify-
  write, so two concurrent writers can lose an entry — a limitation of the fallback scheme).
  Listing uses the API, else that tag (``RegistryClient.referrers``).
- Local store (:meth:`LocalTarget.for_store`): the artifact is plain content; a manifest's
  ``subject`` field is the record. ``LocalStore.prune`` keeps every manifest whose subject is
  reachable (to a fixpoint, so signatures on SBOMs stay too) and collects those of removed
  images, which is why referrers are deliberately *not* added to ``index.json`` there (an
  index entry would be a GC root and outlive its image). Listing scans manifest-sized JSON
  blobs for a matching ``subject``.
- Plain OCI layout directory (:meth:`LocalTarget.for_layout`, e.g. ``xarch copy … oci:dir``):
  same, and each referrer is also added to ``index.json`` untagged with annotation
  ``io.xarch.referrer.subject`` (layouts have no GC, and tools such as oras discover
  referrers from what ``index.json`` reaches).

Cosign keeps signatures/attestations under tags (``sha256-<hex>.sig``/``.att``/``.sbom``),
not as referrers; :func:`copy_referrers` carries those tags along too.

``--attest-style buildx`` (opt-in, never the default): :func:`attestation_manifests_buildx`
produces BuildKit's layout instead — one attestation manifest per platform inside the index,
platform ``unknown/unknown``, annotations ``vnd.docker.reference.type: attestation-manifest`` and
``vnd.docker.reference.digest: <platform manifest digest>``, layers = in-toto statements.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from xarch.attest.provenance import predicate_type_of
from xarch.content.store import MAX_MANIFEST_SIZE, REF_NAME, ContentStore
from xarch.errors import InputError, IntegrityError, NotFoundError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest, canonical_json, load_json_object, parse_any
from xarch.oci.platform import Platform
from xarch.oci.reference import Reference
from xarch.transports.remote.client import RegistryClient
from xarch.transports.remote.errors import RegistryNotFoundError
from xarch.transports.remote.referrers import artifact_descriptor, referrers_tag
from xarch.transports.store import LocalStore, normalize_name

# Artifact types / payload media types.
IN_TOTO = mt.IN_TOTO  # application/vnd.in-toto+json
SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"

# Annotations.
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_PREDICATE_TYPE = "in-toto.io/predicate-type"
ANNOTATION_SUBJECT = "io.xarch.referrer.subject"  # on index.json entries of plain layouts
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"

EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor.of(mt.OCI_EMPTY, EMPTY_JSON, embed=True)

COSIGN_SUFFIXES = (".sig", ".att", ".sbom")
UNKNOWN_PLATFORM = Platform("unknown", "unknown")


def cosign_tag(digest: Digest | str, suffix: str = ".sig") -> str:
    """cosign's tag for things about ``digest``: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return referrers_tag(str(digest)) + suffix


def _rfc3339(t: datetime | None) -> str:
    t = t or datetime.now(UTC)
    if t.tzinfo is None or t.utcoffset() is None:
        raise UsageError("artifact creation time must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- targets -----------------------------------------------------------------------------------


@runtime_checkable
class ReferrerTarget(Protocol):
    """Where artifacts live: a registry repository or a local OCI layout / the store."""

    name: str

    def session(self) -> contextlib.AbstractContextManager[None]:
        """Held while writing: content written inside is safe from a concurrent prune."""
        ...

    def has_blob(self, desc: Descriptor) -> bool: ...

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Store a blob; implementations verify size and digest before it becomes visible."""
        ...

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]: ...

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        """Manifest bytes, verified against ``desc`` (digest and size)."""
        ...

    def put_manifest(self, raw: bytes, media_type: str, *, tag: str | None = None) -> Descriptor:
        """Store a manifest by digest (and under ``tag``); a manifest with a ``subject`` is
        recorded so that :meth:`referrers` of that subject lists it."""
        ...

    def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """Descriptors (with artifactType and annotations) of manifests whose subject is
        ``subject``."""
        ...

    def resolve_tag(self, tag: str) -> Descriptor | None: ...


def _check_manifest(raw: bytes, desc: Descriptor, where: str) -> bytes:
    if len(raw) != desc.size or not desc.digest.verify(raw):
        raise IntegrityError(f"{where}: manifest {desc.digest} does not match its descriptor")
    return raw


class RegistryTarget:
    """One repository on a registry. The caller owns (and closes) the client."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.name = f"{client.registry}/{repository}"

    def __repr__(self) -> str:
        return f"RegistryTarget({self.name!r})"

    def session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def has_blob(self, desc: Descriptor) -> bool:
        return self.client.has_blob(self.repository, desc.digest)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self.client.upload_blob(self.repository, desc, chunks)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self.client.get_blob(self.repository, desc)

    def mount_blob(self, desc: Descriptor, source: ReferrerTarget) -> bool:
        """Cross-repository mount when ``source`` is another repository of the same registry."""
        if (
            not isinstance(source, RegistryTarget)
            or source.client.registry != self.client.registry
            or source.repository == self.repository
        ):
            return False
        return self.client.mount_blob(self.repository, desc.digest, source.repository)

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        raw, _, _ = self.client.get_manifest(self.repository, str(desc.digest))
        return _check_manifest(raw, desc, self.name)

    def put_manifest(self, raw: bytes, media_type: str, *, tag: str | None = None) -> Descriptor:
        desc = Descriptor.of(media_type, raw)
        has_subject = _subject_digest(raw) is not None
        if tag is None or has_subject:
            # By digest: this PUT is what records a subject (API or fallback tag).
            self.client.put_manifest(self.repository, str(desc.digest), raw, media_type)
        if tag is not None:
            self.client.put_manifest(
                self.repository, tag, raw, media_type, update_referrers=not has_subject
            )
        return desc

    def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        return self.client.referrers(self.repository, str(subject), artifact_type)

    def resolve_tag(self, tag: str) -> Descriptor | None:
        try:
            return self.client.head_manifest(self.repository, tag)
        except RegistryNotFoundError:
            return None


class LocalTarget:
    """An OCI layout directory: the local store (``for_store``) or any layout (``for_layout``).

    Tags live in ``index.json`` as ``org.opencontainers.image.ref.name``: the full image name
    ``<registry>/<repository>:<tag>`` in the store (its naming scheme), the bare tag in a
    plain layout.
    """

    def __init__(
        self,
        content: ContentStore,
        *,
        name: str,
        repository: str | None = None,
        store: LocalStore | None = None,
        record_in_index: bool = False,
    ) -> None:
        self.content = content
        self.name = name
        self.repository = repository
        self.store = store
        self.record_in_index = record_in_index

    @classmethod
    def for_store(cls, store: LocalStore, image: str) -> LocalTarget:
        """The store, scoped to the repository of ``image`` (for cosign tags)."""
        ref = Reference.parse(normalize_name(image))
        return cls(
            store.content, name=f"store:{ref.context()}", repository=ref.context(), store=store
        )

    @classmethod
    def for_layout(cls, root: Path) -> LocalTarget:
        return cls(ContentStore(Path(root)), name=f"oci:{root}", record_in_index=True)

    def __repr__(self) -> str:
        return f"LocalTarget({self.name!r})"

    def session(self) -> contextlib.AbstractContextManager[None]:
        self.content.init()
        return self.content.writer_session()

    def has_blob(self, desc: Descriptor) -> bool:
        return self.content.has(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        if not self.content.has(desc):
            self.content.ingest(desc, chunks)  # verifies size and digest before the rename

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        if not self.content.has(desc):
            raise NotFoundError(f"{self.name}: blob {desc.digest} is missing")
        return self.content.iter_chunks(desc)

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        try:
            raw = self.content.read_bytes(desc.digest, verify=False)
        except NotFoundError:
            raise NotFoundError(f"{self.name}: manifest {desc.digest} is missing") from None
        return _check_manifest(raw, desc, self.name)

    def _key(self, tag: str) -> str:
        return f"{self.repository}:{tag}" if self.repository else tag

    def put_manifest(self, raw: bytes, media_type: str, *, tag: str | None = None) -> Descriptor:
        desc = Descriptor.of(media_type, raw)
        self.put_blob(desc, [raw])
        subject = _subject_digest(raw)
        if self.record_in_index and subject is not None:
            entry = artifact_descriptor(raw, media_type)
            entry = entry.replace(annotations={**entry.annotations, ANNOTATION_SUBJECT: subject})
            self.content.update_index(
                lambda es: [
                    *(
                        e
                        for e in es
                        if not (e.digest == desc.digest and REF_NAME not in e.annotations)
                    ),
                    entry,
                ]
            )
        if tag is not None:
            if self.store is not None:
                self.store.set_name(self._key(tag), desc)
            else:
                key = self._key(tag)
                entry = desc.replace(annotations={REF_NAME: key})
                self.content.update_index(
                    lambda es: [*(e for e in es if e.annotations.get(REF_NAME) != key), entry]
                )
        return desc

    def referrers(self, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        found: dict[Digest, Descriptor] = {}
        for digest, size in self.content.walk():
            if size > MAX_MANIFEST_SIZE or size < 2:
                continue
            try:
                with self.content.open(digest) as f:
                    if f.read(1) != b"{":
                        continue  # compressed layers and other binary blobs
                    raw = b"{" + f.read()
            except (NotFoundError, OSError):
                continue  # deleted under us by a prune
            if b'"subject"' not in raw or not digest.verify(raw):
                continue
            try:
                doc = load_json_object(raw, "manifest")
            except InputError:
                continue
            if ("layers" not in doc and "manifests" not in doc) or _subject_of_doc(doc) != subject:
                continue
            media_type = doc.get("mediaType")
            if not isinstance(media_type, str) or not media_type:
                media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
            desc = artifact_descriptor(raw, media_type)
            if artifact_type is None or desc.artifact_type == artifact_type:
                found[digest] = desc
        return [found[d] for d in sorted(found)]

    def resolve_tag(self, tag: str) -> Descriptor | None:
        key = normalize_name(self._key(tag)) if self.store is not None else self._key(tag)
        for e in reversed(self.content.read_index()):
            if e.annotations.get(REF_NAME) == key:
                return Descriptor(e.media_type, e.digest, e.size)
        return None


def _subject_of_doc(doc: Mapping[str, Any]) -> Digest | None:
    subject = doc.get("subject")
    if not isinstance(subject, dict):
        return None
    try:
        return Digest.parse(str(subject.get("digest", "")))
    except InputError:
        return None


def _subject_digest(raw: bytes) -> Digest | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return _subject_of_doc(doc) if isinstance(doc, dict) else None


def referrer_target(endpoint: object) -> ReferrerTarget | None:
    """The ReferrerTarget behind a copy source/sink, or None when it cannot hold referrers
    (docker-archive, oci-archive)."""
    from xarch.transports.layout import LayoutSink, LayoutSource
    from xarch.transports.remote.source import RemoteSink, RemoteSource
    from xarch.transports.store import StoreSink, StoreSource

    if isinstance(endpoint, RemoteSource | RemoteSink):
        return RegistryTarget(endpoint.client, endpoint.ref.repository)
    if isinstance(endpoint, StoreSource):
        return LocalTarget.for_store(endpoint.store, endpoint.key)
    if isinstance(endpoint, StoreSink):
        return LocalTarget.for_store(endpoint.local_store, endpoint.tag or "")
    if isinstance(endpoint, LayoutSource | LayoutSink):
        return LocalTarget.for_layout(endpoint.root)
    return None


# -- attach / list -----------------------------------------------------------------------------


def artifact_manifest(
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    media_type: str,
    annotations: Mapping[str, str] | None = None,
    *,
    created: datetime | None = None,
) -> tuple[Manifest, Descriptor]:
    """(artifact manifest, payload layer descriptor) for ``payload`` about ``subject``.

    In-toto statements (``media_type`` in-toto) get ``in-toto.io/predicate-type`` on the layer
    and the manifest, read from the statement unless given.
    """
    if not artifact_type or not media_type:
        raise UsageError("an artifact needs an artifact type and a payload media type")
    if not (mt.is_manifest(subject.media_type) or mt.is_index(subject.media_type)):
        raise UsageError(
            f"cannot attach to {subject.digest}: its media type {subject.media_type!r} is not "
            "a manifest or index"
        )
    ann = {ANNOTATION_CREATED: _rfc3339(created), **dict(annotations or {})}
    layer_ann: dict[str, str] = {}
    if mt.base(media_type) == IN_TOTO:
        predicate = ann.get(ANNOTATION_PREDICATE_TYPE) or predicate_type_of(payload)
        if predicate is None:
            raise InputError(
                f"payload declared as {IN_TOTO} is not an in-toto statement with a predicateType"
            )
        ann[ANNOTATION_PREDICATE_TYPE] = predicate
        layer_ann[ANNOTATION_PREDICATE_TYPE] = predicate
    layer = Descriptor.of(media_type, payload, annotations=layer_ann or None)
    # The subject is identity only: platform/annotations of an index entry do not belong in it.
    subj = Descriptor(mt.base(subject.media_type), subject.digest, subject.size)
    manifest = Manifest.build(
        EMPTY_DESCRIPTOR, [layer], subject=subj, artifact_type=artifact_type, annotations=ann
    )
    return manifest, layer


def attach(
    target: ReferrerTarget,
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    media_type: str,
    annotations: Mapping[str, str] | None = None,
    *,
    created: datetime | None = None,
) -> Descriptor:
    """Attach ``payload`` to ``subject`` as an OCI 1.1 referrer; returns the referrer
    descriptor as listings show it (artifactType + annotations)."""
    manifest, layer = artifact_manifest(
        subject, artifact_type, payload, media_type, annotations, created=created
    )
    with target.session():
        if not target.has_blob(EMPTY_DESCRIPTOR):
            target.put_blob(EMPTY_DESCRIPTOR, [EMPTY_JSON])
        if not target.has_blob(layer):
            target.put_blob(layer, [payload])
        target.put_manifest(manifest.raw, manifest.media_type)
    return artifact_descriptor(manifest.raw, manifest.media_type)


def list_referrers(
    target: ReferrerTarget, subject_digest: Digest | str, artifact_type: str | None = None
) -> list[Descriptor]:
    return target.referrers(Digest.parse(str(subject_digest)), artifact_type)


def fetch_payload(target: ReferrerTarget, referrer: Descriptor) -> tuple[Manifest, bytes]:
    """An artifact manifest and its first layer's bytes (verified)."""
    raw = target.fetch_manifest(referrer)
    manifest = Manifest.parse(raw, referrer.media_type)
    if not manifest.layers:
        raise InputError(f"{target.name}: artifact {referrer.digest} has no layers")
    layer = manifest.layers[0]
    if layer.size > 256 << 20:
        raise InputError(f"{target.name}: artifact payload of {layer.size} bytes is too large")
    data = b"".join(target.open_blob(layer))
    if len(data) != layer.size or not layer.digest.verify(data):
        raise IntegrityError(f"{target.name}: payload {layer.digest} does not match its digest")
    return manifest, data


@dataclass(frozen=True)
class Attachments:
    """What is attached to one image of a tag: the root, or one platform of its index."""

    subject: Descriptor  # platform entries keep their platform
    referrers: tuple[Descriptor, ...]  # OCI 1.1 referrers (artifactType + annotations)
    cosign_tags: tuple[tuple[str, Descriptor], ...]  # (sha256-<hex>.sig|.att|.sbom, manifest)
    buildx: tuple[Descriptor, ...] = ()  # buildx attestation manifests in the index, if any


def attachments(target: ReferrerTarget, root: Descriptor) -> list[Attachments]:
    """Everything attached to ``root`` and, for an index, to each platform image (what
    ``xarch attestations IMAGE`` shows). Buildx attestation entries are reported with the
    image they describe, not as images."""
    subjects = [Descriptor(root.media_type, root.digest, root.size)]
    buildx: dict[Digest, list[Descriptor]] = {}
    if mt.is_index(root.media_type):
        index = Index.parse(target.fetch_manifest(root), root.media_type)
        for e in index.manifests:
            ref_digest = e.annotations.get(REFERENCE_DIGEST)
            if e.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST and ref_digest:
                with contextlib.suppress(InputError):
                    buildx.setdefault(Digest.parse(ref_digest), []).append(e)
            else:
                subjects.append(e)
    out: list[Attachments] = []
    for subj in subjects:
        tags: list[tuple[str, Descriptor]] = []
        for suffix in COSIGN_SUFFIXES:
            tag = cosign_tag(subj.digest, suffix)
            found = target.resolve_tag(tag)
            if found is not None:
                tags.append((tag, found))
        out.append(
            Attachments(
                subj,
                tuple(target.referrers(subj.digest)),
                tuple(tags),
                tuple(buildx.get(subj.digest, ())),
            )
        )
    return out


# -- copy --------------------------------------------------------------------------------------


@dataclass
class CopyReferrersResult:
    referrers: list[Descriptor] = field(default_factory=list)  # artifact manifests copied
    tags: list[str] = field(default_factory=list)  # cosign tags copied
    conflicts: list[str] = field(default_factory=list)  # cosign tags differing at dst, kept
    missing: list[Descriptor] = field(default_factory=list)  # listed at src, but gone there


def _copy_blob(src: ReferrerTarget, dst: ReferrerTarget, desc: Descriptor) -> None:
    if dst.has_blob(desc):
        return
    mount = getattr(dst, "mount_blob", None)
    if mount is not None and mount(desc, src):
        return
    dst.put_blob(desc, src.open_blob(desc))


def _copy_tree(
    src: ReferrerTarget,
    dst: ReferrerTarget,
    desc: Descriptor,
    *,
    tag: str | None = None,
    raw: bytes | None = None,
) -> None:
    """Copy a manifest/index with everything it owns (children first), then put it."""
    if raw is None:
        raw = src.fetch_manifest(desc)
    doc = parse_any(raw, desc.media_type)
    if isinstance(doc, Index):
        for child in doc.manifests:
            if mt.is_manifest(child.media_type) or mt.is_index(child.media_type):
                _copy_tree(src, dst, child)
            else:
                _copy_blob(src, dst, child)
    else:
        for blob in (doc.config, *doc.layers):
            if blob.urls and mt.is_nondistributable(blob.media_type):
                continue
            _copy_blob(src, dst, blob)
    dst.put_manifest(raw, doc.media_type, tag=tag)


def copy_referrers(
    src: ReferrerTarget,
    dst: ReferrerTarget,
    digests: Iterable[Digest | str],
    *,
    cosign: bool = True,
    force: bool = False,
    on_copy: Callable[[Descriptor], None] | None = None,
) -> CopyReferrersResult:
    """Copy every referrer of ``digests`` (recursively: referrers of referrers, e.g. a
    signature on an SBOM) and, with ``cosign``, the ``sha256-<hex>.sig/.att/.sbom`` tags of
    each of those digests. Call after the image itself was copied.

    A cosign tag already at ``dst`` with other content is kept and reported in
    ``conflicts`` unless ``force`` (then replaced by the source's).
    """
    result = CopyReferrersResult()
    queue = [Digest.parse(str(d)) for d in digests]
    visited: set[Digest] = set()
    copied: set[Digest] = set()
    with dst.session():
        while queue:
            digest = queue.pop(0)
            if digest in visited:
                continue
            visited.add(digest)
            listed = src.referrers(digest)
            # Only ask the destination when there is something to copy: one request saved per
            # manifest of a plain image.
            at_dst = {d.digest for d in dst.referrers(digest)} if listed else set()
            for ref in listed:
                if ref.digest in copied:
                    continue
                copied.add(ref.digest)
                if ref.digest not in at_dst:
                    try:
                        raw = src.fetch_manifest(ref)
                    except NotFoundError:
                        # A stale fallback entry (artifact deleted, index not updated): the
                        # scheme allows it; skip rather than fail the whole copy.
                        result.missing.append(ref)
                        continue
                    _copy_tree(src, dst, ref, raw=raw)
                    result.referrers.append(ref)
                    if on_copy is not None:
                        on_copy(ref)
                queue.append(ref.digest)
            if not cosign:
                continue
            for suffix in COSIGN_SUFFIXES:
                tag = cosign_tag(digest, suffix)
                have = src.resolve_tag(tag)
                if have is None:
                    continue
                there = dst.resolve_tag(tag)
                if there is not None and there.digest == have.digest:
                    continue
                if there is not None and not force:
                    result.conflicts.append(tag)
                    continue
                _copy_tree(src, dst, have, tag=tag)
                result.tags.append(tag)
                if on_copy is not None:
                    on_copy(have)
    return result


# -- buildx layout (opt-in) --------------------------------------------------------------------


@dataclass(frozen=True)
class BuildxAttestations:
    """The index with attestation manifests added, plus what to write before it."""

    index: Index
    manifests: tuple[Manifest, ...]  # attestation manifests (write before the index)
    blobs: Mapping[Digest, bytes]  # their configs and statements


def attestation_manifests_buildx(
    index: Index, statements: Mapping[Digest, Sequence[bytes]] | Mapping[str, Sequence[bytes]]
) -> BuildxAttestations:
    """BuildKit's attestation layout, for ``--attest-style buildx`` only (opt-in: it adds
    ``unknown/unknown`` entries that break some registry UIs and runtimes).

    ``statements`` maps a platform manifest digest of ``index`` to in-toto statements about
    it; each statement's subject must name that digest. Existing attestation manifests for the
    same digests are replaced; entry order is images first, attestations after, as BuildKit.
    """
    if index.media_type != mt.OCI_INDEX:
        raise UsageError(
            "buildx-style attestations need an OCI index (Docker manifest lists cannot carry "
            "them); build with OCI media types"
        )
    wanted = {Digest.parse(str(d)): list(s) for d, s in statements.items()}
    present = {e.digest for e in index.manifests if e.annotations.get(REFERENCE_TYPE) is None}
    for d in wanted:
        if d not in present:
            raise UsageError(f"cannot attach buildx attestations: {d} is not an image of the index")
    kept = [
        e
        for e in index.manifests
        if not (
            e.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST
            and e.annotations.get(REFERENCE_DIGEST) in wanted
        )
    ]
    images = [e for e in kept if e.annotations.get(REFERENCE_TYPE) is None]
    others = [e for e in kept if e.annotations.get(REFERENCE_TYPE) is not None]
    blobs: dict[Digest, bytes] = {}
    manifests: list[Manifest] = []
    entries: list[Descriptor] = []
    for image in images:
        stmts = wanted.get(image.digest)
        if not stmts:
            continue
        layers = []
        for i, stmt in enumerate(stmts):
            predicate = predicate_type_of(stmt)
            if predicate is None:
                raise InputError(f"attestation {i} for {image.digest} is not an in-toto statement")
            if image.digest not in _statement_subjects(stmt):
                raise InputError(
                    f"attestation {i} ({predicate}) is about another subject, not {image.digest}"
                )
            layer = Descriptor.of(IN_TOTO, stmt, annotations={ANNOTATION_PREDICATE_TYPE: predicate})
            blobs[layer.digest] = stmt
            layers.append(layer)
        config_raw = canonical_json(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [str(x.digest) for x in layers]},
            }
        )
        config = Descriptor.of(mt.OCI_CONFIG, config_raw)
        blobs[config.digest] = config_raw
        manifest = Manifest.build(config, layers)
        manifests.append(manifest)
        entries.append(
            Descriptor(
                manifest.media_type,
                manifest.digest,
                len(manifest.raw),
                annotations={
                    REFERENCE_DIGEST: str(image.digest),
                    REFERENCE_TYPE: ATTESTATION_MANIFEST,
                },
                platform=UNKNOWN_PLATFORM,
            )
        )
    new_index = Index.build(
        [*images, *others, *entries],
        media_type=index.media_type,
        annotations=index.annotations or None,
        subject=index.subject,
        artifact_type=index.artifact_type,
    )
    return BuildxAttestations(new_index, tuple(manifests), blobs)


def _statement_subjects(stmt: bytes) -> set[Digest]:
    try:
        doc = json.loads(stmt)
    except (ValueError, UnicodeDecodeError):
        return set()
    out: set[Digest] = set()
    for s in doc.get("subject") or [] if isinstance(doc, dict) else []:
        if not isinstance(s, dict) or not isinstance(s.get("digest"), dict):
            continue
        for alg, hexv in s["digest"].items():
            with contextlib.suppress(InputError, TypeError):
                out.add(Digest.parse(f"{alg}:{hexv}"))
    return out


__all__ = [
    "ANNOTATION_CREATED",
    "ANNOTATION_PREDICATE_TYPE",
    "ANNOTATION_SUBJECT",
    "ATTESTATION_MANIFEST",
    "COSIGN_SUFFIXES",
    "CYCLONEDX_JSON",
    "EMPTY_DESCRIPTOR",
    "IN_TOTO",
    "REFERENCE_DIGEST",
    "REFERENCE_TYPE",
    "SPDX_JSON",
    "Attachments",
    "BuildxAttestations",
    "CopyReferrersResult",
    "LocalTarget",
    "ReferrerTarget",
    "RegistryTarget",
    "artifact_manifest",
    "attach",
    "attachments",
    "attestation_manifests_buildx",
    "copy_referrers",
    "cosign_tag",
    "fetch_payload",
    "list_referrers",
    "referrer_target",
]
