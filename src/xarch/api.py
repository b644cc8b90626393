"""The library API the CLI calls: one function per user-facing verb.

Every function takes location strings (``docker://REF``, ``oci:DIR[:TAG]``, ``store:NAME`` …,
see :mod:`xarch.transports.resolve`) and explicit options, does the work with the transports,
and returns a frozen result the caller renders. Nothing here prints; progress goes to the
``on_event`` callback as :class:`ProgressEvent` values (called from worker threads).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xarch.errors import InputError, IntegrityError, NotFoundError, StoreError, UsageError
from xarch.image.select import check_manifest_platform, select
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.transports.base import BlobMounter, ImageSink, ImageSource, RootProbe
from xarch.transports.copy import CopyEvent, copy_image
from xarch.transports.copy import CopyResult as _EngineResult
from xarch.transports.remote import RegistryOptions, TransferEvent
from xarch.transports.resolve import Location, open_sink, open_source, parse_location
from xarch.transports.store import LocalStore

if TYPE_CHECKING:
    from xarch.attest.referrers import CopyReferrersResult

__all__ = [
    "CopyResult",
    "ImageSummary",
    "InspectResult",
    "ManifestCreateResult",
    "ProgressEvent",
    "PruneResult",
    "StoreImage",
    "copy",
    "inspect",
    "list_images",
    "login",
    "logout",
    "manifest_create",
    "normalize_registry",
    "parse_platforms",
    "prune",
    "remove",
    "tag",
    "verify_store",
]

_MAX_CONFIG = 32 << 20
_PROGRESS_STEP = 4 << 20  # a byte-progress event at most every 4 MiB per blob
ANNOTATION_DIGEST = "vnd.docker.reference.digest"


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProgressEvent:
    """One progress fact. ``kind``: ``begin`` (a transfer starts, ``total`` bytes), ``progress``
    (``current`` of ``total``), ``copy``/``skip``/``mount`` (a blob finished), ``manifest``,
    ``retry``, ``info``. ``id`` is usually a digest; ``detail`` free text (media type, repo)."""

    kind: str
    id: str
    total: int = 0
    current: int = 0
    detail: str = ""


EventCallback = Callable[[ProgressEvent], None]


def _emit_none(_e: ProgressEvent) -> None:
    pass


class _CountingSink:
    """Wraps a sink to report byte progress of each uploaded blob; keeps the sink's verbs."""

    def __init__(self, inner: ImageSink, emit: EventCallback) -> None:
        self.inner = inner
        self.name = inner.name
        self.emit = emit
        if getattr(inner, "single_platform", False):
            self.single_platform = True

    def has_blob(self, desc: Descriptor) -> bool:
        return self.inner.has_blob(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self.inner.put_blob(desc, self._count(desc, chunks))

    def _count(self, desc: Descriptor, chunks: Iterable[bytes]) -> Iterator[bytes]:
        self.emit(ProgressEvent("begin", str(desc.digest), desc.size))
        done = 0
        last = 0
        for chunk in chunks:
            done += len(chunk)
            if done - last >= _PROGRESS_STEP:
                last = done
                self.emit(ProgressEvent("progress", str(desc.digest), desc.size, done))
            yield chunk

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        return self.inner.put_manifest(raw, media_type, root=root)

    def has_root(self, root: Descriptor) -> bool:
        # a no-change copy to a registry: one HEAD instead of one per blob and manifest
        return isinstance(self.inner, RootProbe) and self.inner.has_root(root)

    def commit(self) -> None:
        self.inner.commit()

    def close(self) -> None:
        self.inner.close()


class _CountingMountSink(_CountingSink):
    def mount_blob(self, desc: Descriptor, source: ImageSource) -> bool:
        assert isinstance(self.inner, BlobMounter)
        # A merged source (manifest create) mounts from the repository the blob came from.
        return self.inner.mount_blob(desc, _origin(source, desc.digest))


def _wrap_sink(sink: ImageSink, emit: EventCallback) -> ImageSink:
    if isinstance(sink, BlobMounter):
        return _CountingMountSink(sink, emit)
    return _CountingSink(sink, emit)


def _retry_forwarder(emit: EventCallback) -> Callable[[TransferEvent], None]:
    def on_transfer(e: TransferEvent) -> None:
        if e.kind == "retry":
            emit(ProgressEvent("retry", e.digest or "", e.size, 0, e.detail))

    return on_transfer


# -- locations ---------------------------------------------------------------------------------
def _store(store: LocalStore | None) -> LocalStore:
    return store if store is not None else LocalStore.default()


def _location(s: str, options: RegistryOptions | None, store: LocalStore | None) -> Location:
    return parse_location(s, default_store=store, registry_options=options)


def parse_platforms(values: Iterable[str]) -> list[Platform]:
    """``linux/amd64,linux/arm64`` (possibly repeated) → platforms; UsageError on bad input."""
    out: list[Platform] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                p = Platform.parse(part)
            except InputError as e:
                raise UsageError(e.message) from None
            if p not in out:
                out.append(p)
    if not out:
        raise UsageError("--platform needs at least one platform, e.g. linux/amd64")
    return out


# -- copy --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyResult:
    source: str
    destination: str
    root: Descriptor
    manifests: tuple[Descriptor, ...]
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    bytes: int
    seconds: float
    referrers: int = 0  # artifact manifests (SBOMs, provenance, signatures) carried along
    referrer_tags: int = 0  # cosign sha256-<hex>.sig/.att/.sbom tags carried along


def copy(
    src: str,
    dst: str,
    *,
    all_platforms: bool = True,
    platforms: Sequence[Platform | str] | None = None,
    jobs: int = 4,
    on_event: EventCallback | None = None,
    registry_options: RegistryOptions | None = None,
    dest_registry_options: RegistryOptions | None = None,
    store: LocalStore | None = None,
    referrers: bool = True,
) -> CopyResult:
    """Copy the image ``src`` names to ``dst``. Without ``platforms`` every manifest is copied
    byte for byte (digests preserved); ``platforms`` filters an index (one → that manifest).
    With ``referrers`` the artifacts that refer to the copied manifests (SBOMs, provenance,
    signatures: OCI referrers and cosign's tags) follow them, as ``regctl --referrers`` and
    ``cosign copy`` do; destinations that cannot hold referrers (archives) get the image only."""
    if platforms:
        plats: list[Platform] | None = [
            p if isinstance(p, Platform) else parse_platforms([p])[0] for p in platforms
        ]
    elif not all_platforms:
        raise UsageError("nothing to copy: pass --all or --platform")
    else:
        plats = None
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    src_opts = replace(registry_options or RegistryOptions(), parallelism=max(jobs, 1))
    dst_opts = replace(
        dest_registry_options or registry_options or RegistryOptions(), parallelism=max(jobs, 1)
    )
    src_loc = _location(src, src_opts, store)
    dst_loc = _location(dst, dst_opts, store)
    source = open_source(src_loc, on_event=_retry_forwarder(on_event or _emit_none))
    try:
        result = _run_copy(source, dst_loc, plats, jobs, on_event, referrers=referrers)
    finally:
        source.close()
    return replace(result, source=str(src_loc))


# -- inspect -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSummary:
    """One platform's image: its manifest and a digest of its config."""

    digest: Digest
    media_type: str
    size: int
    platform: str | None
    created: str | None = None
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    layers: int = 0
    layers_size: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    attestation_for: str | None = None  # buildx attestation manifests point at their image

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "size": self.size,
            "platform": self.platform,
        }
        if self.attestation_for:
            out["attestationFor"] = self.attestation_for
        out.update(
            created=self.created,
            env=list(self.env),
            entrypoint=list(self.entrypoint) if self.entrypoint is not None else None,
            cmd=list(self.cmd) if self.cmd is not None else None,
            workingDir=self.workdir,
            user=self.user,
            labels=dict(self.labels),
            layers=self.layers,
            layersSize=self.layers_size,
        )
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class InspectResult:
    name: str
    descriptor: Descriptor
    raw: bytes
    images: tuple[ImageSummary, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.descriptor.media_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mediaType": self.descriptor.media_type,
            "digest": str(self.descriptor.digest),
            "size": self.descriptor.size,
            "annotations": dict(self.annotations),
            "manifests": [i.to_json() for i in self.images],
        }


def _strings(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, list):
        return tuple(str(x) for x in v)
    return (str(v),)


def _summarize(
    source: ImageSource, desc: Descriptor, raw: bytes, attestation_for: str | None = None
) -> ImageSummary:
    doc = parse_any(raw, desc.media_type)
    assert isinstance(doc, Manifest)
    platform = str(desc.platform) if desc.platform is not None else None
    base = ImageSummary(
        digest=desc.digest,
        media_type=doc.media_type,
        size=len(raw),
        platform=platform,
        layers=len(doc.layers),
        layers_size=sum(layer.size for layer in doc.layers),
        annotations=dict(doc.annotations),
        attestation_for=attestation_for,
    )
    if not mt.is_config(doc.config.media_type) or doc.config.size > _MAX_CONFIG:
        return base  # an artifact (attestation, signature): no image config to read
    cfg_raw = b"".join(source.open_blob(doc.config))
    if len(cfg_raw) != doc.config.size or not doc.config.digest.verify(cfg_raw):
        raise IntegrityError(f"{source.name}: config {doc.config.digest} does not match its digest")
    try:
        cfg = ImageConfig.parse(cfg_raw)
    except InputError:
        return base
    c = cfg.config
    labels = c.get("Labels") or {}
    plat: str | None
    try:
        plat = str(cfg.platform)
    except (KeyError, TypeError):
        plat = platform
    return replace(
        base,
        platform=platform or plat,
        created=cfg.data.get("created"),
        env=_strings(c.get("Env")) or (),
        entrypoint=_strings(c.get("Entrypoint")),
        cmd=_strings(c.get("Cmd")),
        workdir=c.get("WorkingDir") or None,
        user=c.get("User") or None,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def inspect(
    ref: str,
    *,
    platform: Platform | str | None = None,
    summarize: bool = True,
    registry_options: RegistryOptions | None = None,
    store: LocalStore | None = None,
) -> InspectResult:
    """Read the manifest/index ``ref`` names (any location). With ``platform`` and an index,
    the matching image's manifest becomes the result (like ``crane manifest --platform``)."""
    want = parse_platforms([platform])[0] if isinstance(platform, str) else platform
    loc = _location(ref, registry_options, store)
    source = open_source(loc)
    try:
        desc = source.resolve()
        raw = source.fetch_manifest(desc)
        if len(raw) != desc.size or not desc.digest.verify(raw):
            raise IntegrityError(f"{source.name}: manifest {desc.digest} does not match its digest")
        doc = parse_any(raw, desc.media_type)
        desc = Descriptor(doc.media_type, desc.digest, desc.size)
        if isinstance(doc, Index) and want is not None:
            match = select(doc, want, source.name)
            raw = source.fetch_manifest(match)
            desc = match
            doc = parse_any(raw, match.media_type)
        images: list[ImageSummary] = []
        if summarize:
            if isinstance(doc, Index):
                for child in doc.manifests:
                    if not mt.is_manifest(child.media_type):
                        images.append(
                            ImageSummary(child.digest, child.media_type, child.size, None)
                        )
                        continue
                    child_raw = source.fetch_manifest(child)
                    images.append(
                        _summarize(
                            source, child, child_raw, child.annotations.get(ANNOTATION_DIGEST)
                        )
                    )
            else:
                s = _summarize(source, desc, raw)
                if want is not None and s.platform is not None:
                    check_manifest_platform(Platform.parse(s.platform), want, source.name)
                images.append(s)
        return InspectResult(
            name=source.name,
            descriptor=Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform),
            raw=raw,
            images=tuple(images),
            annotations=dict(doc.annotations),
        )
    finally:
        source.close()


# -- manifest create ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestCreateResult:
    target: str
    descriptor: Descriptor
    raw: bytes
    entries: tuple[Descriptor, ...]


class _MergedSource:
    """The new index as root; every child manifest and blob served by the source it came from."""

    def __init__(self, root: Descriptor, raw: bytes, owners: dict[Digest, ImageSource]) -> None:
        self.name = "manifest create"
        self._root = root
        self._raw = raw
        self._owners = owners

    def owner(self, digest: Digest) -> ImageSource | None:
        return self._owners.get(digest)

    def _owner(self, digest: Digest) -> ImageSource:
        try:
            return self._owners[digest]
        except KeyError:
            raise NotFoundError(f"manifest create: no source holds {digest}") from None

    def resolve(self) -> Descriptor:
        return self._root

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        if desc.digest == self._root.digest:
            return self._raw
        return self._owner(desc.digest).fetch_manifest(desc)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self._owner(desc.digest).open_blob(desc)

    def close(self) -> None:
        pass


def _parse_annotations(items: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``k=v`` / ``index:k=v`` → index annotations; ``manifest-descriptor:k=v`` → per entry
    (buildx imagetools create's spelling)."""
    index: dict[str, str] = {}
    entry: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid annotation {item!r}: expected KEY=VALUE")
        target = index
        kind, colon, rest = key.partition(":")
        if colon and kind in ("index", "manifest-descriptor"):
            key = rest
            target = index if kind == "index" else entry
        elif colon and kind in ("manifest", "index-descriptor"):
            raise UsageError(f"annotation {item!r}: {kind!r} annotations are not supported here")
        if not key:
            raise UsageError(f"invalid annotation {item!r}: empty key")
        target[key] = value
    return index, entry


def _map_owners(
    source: ImageSource, desc: Descriptor, raw: bytes, owners: dict[Digest, ImageSource]
) -> None:
    owners.setdefault(desc.digest, source)
    doc = parse_any(raw, desc.media_type)
    if isinstance(doc, Index):
        for child in doc.manifests:
            if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                _map_owners(source, child, source.fetch_manifest(child), owners)
            else:
                owners.setdefault(child.digest, source)
    else:
        for blob in (doc.config, *doc.layers):
            owners.setdefault(blob.digest, source)


def _config_platform(source: ImageSource, doc: Manifest, where: str) -> Platform | None:
    if not mt.is_config(doc.config.media_type) or doc.config.size > _MAX_CONFIG:
        return None
    cfg_raw = b"".join(source.open_blob(doc.config))
    if len(cfg_raw) != doc.config.size or not doc.config.digest.verify(cfg_raw):
        raise IntegrityError(f"{where}: config {doc.config.digest} does not match its digest")
    try:
        return ImageConfig.parse(cfg_raw).platform
    except (InputError, KeyError):
        return None


def _origin(source: ImageSource, digest: Digest) -> ImageSource:
    if isinstance(source, _MergedSource):
        return source.owner(digest) or source
    return source


def manifest_create(
    target: str,
    sources: Sequence[str],
    *,
    annotations: Sequence[str] = (),
    jobs: int = 4,
    on_event: EventCallback | None = None,
    registry_options: RegistryOptions | None = None,
    store: LocalStore | None = None,
    dry_run: bool = False,
) -> ManifestCreateResult:
    """Merge images (typically ``repo@sha256:…`` pushed per architecture) into one index and
    write it, with everything it references, to ``target``.

    Index sources are flattened into their entries. An entry's platform is taken from its
    source index or else from the image config. Like ``docker buildx imagetools create``, the
    result is a Docker manifest list when every entry is Docker-typed and no index annotation
    is asked for, an OCI index otherwise; a single index source without annotations is written
    byte for byte. ``dry_run`` builds the index and writes nothing.
    """
    if not sources:
        raise UsageError("manifest create needs at least one source image")
    index_ann, entry_ann = _parse_annotations(annotations)
    opts = replace(registry_options or RegistryOptions(), parallelism=max(jobs, 1))
    opened: list[ImageSource] = []
    owners: dict[Digest, ImageSource] = {}
    entries: list[Descriptor] = []
    single_raw: tuple[Descriptor, bytes] | None = None
    try:
        for s in sources:
            src = open_source(_location(s, opts, store))
            opened.append(src)
            desc = src.resolve()
            raw = src.fetch_manifest(desc)
            if len(raw) != desc.size or not desc.digest.verify(raw):
                raise IntegrityError(f"{src.name}: manifest {desc.digest} does not match")
            doc = parse_any(raw, desc.media_type)
            desc = Descriptor(doc.media_type, desc.digest, desc.size)
            _map_owners(src, desc, raw, owners)
            if isinstance(doc, Index):
                if len(sources) == 1:
                    single_raw = (desc, raw)
                for child in doc.manifests:
                    plat = child.platform
                    if plat is None and mt.is_manifest(child.media_type):
                        cdoc = parse_any(src.fetch_manifest(child), child.media_type)
                        if isinstance(cdoc, Manifest):
                            plat = _config_platform(src, cdoc, src.name)
                    entries.append(child.replace(platform=plat))
            else:
                assert isinstance(doc, Manifest)
                plat = _config_platform(src, doc, src.name)
                if plat is None:
                    raise InputError(
                        f"{src.name}: cannot tell the platform of {desc.digest} "
                        "(its config has no os/architecture)"
                    )
                entries.append(Descriptor(doc.media_type, desc.digest, desc.size, platform=plat))
        # Same manifest named twice (e.g. an index and one of its children): keep the first.
        unique: list[Descriptor] = []
        seen: set[Digest] = set()
        for e in entries:
            if e.digest not in seen:
                seen.add(e.digest)
                if entry_ann:
                    e = e.replace(annotations={**dict(e.annotations), **entry_ann})
                unique.append(e)
        images = [e for e in unique if ANNOTATION_DIGEST not in e.annotations]
        plats = [str(e.platform) for e in images if e.platform is not None]
        dupes = sorted({p for p in plats if plats.count(p) > 1})
        if dupes:
            raise InputError(
                f"manifest create: more than one image for platform {', '.join(dupes)}",
                hint="pass one image per platform",
            )
        if single_raw is not None and not index_ann and not entry_ann:
            root, root_raw = single_raw
        else:
            oci = bool(index_ann) or any(
                not e.media_type.startswith("application/vnd.docker.") for e in unique
            )
            index = Index.build(
                unique,
                media_type=mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST,
                annotations=index_ann or None,
            )
            root, root_raw = index.descriptor, index.raw
        target_loc = _location(target, opts, store)
        if dry_run:
            return ManifestCreateResult(str(target_loc), root, root_raw, tuple(unique))
        merged = _MergedSource(root, root_raw, owners)
        result = _run_copy(merged, target_loc, None, jobs, on_event)
        return ManifestCreateResult(
            target=result.destination, descriptor=root, raw=root_raw, entries=tuple(unique)
        )
    finally:
        for src in opened:
            src.close()


def _run_copy(
    source: ImageSource,
    loc: Location,
    platforms: list[Platform] | None,
    jobs: int,
    on_event: EventCallback | None,
    *,
    referrers: bool = False,
) -> CopyResult:
    emit = on_event or _emit_none

    def on_copy(e: CopyEvent) -> None:
        detail = e.detail
        if e.kind == "mount":
            from_repo = getattr(_origin(source, e.digest), "repository", "")
            detail = f"from {from_repo}" if from_repo else ""
        emit(ProgressEvent(e.kind, str(e.digest), e.size, e.size, detail))

    started = time.monotonic()
    sink = open_sink(loc, on_event=_retry_forwarder(emit))
    try:
        r: _EngineResult = copy_image(
            source, _wrap_sink(sink, emit), platforms=platforms, jobs=jobs, on_event=on_copy
        )
        carried = _copy_referrers(source, sink, r, emit) if referrers else None
    finally:
        sink.close()
    return CopyResult(
        source=source.name,
        destination=str(loc),
        root=r.root,
        manifests=tuple(r.manifests),
        blobs_copied=r.blobs_copied,
        blobs_skipped=r.blobs_skipped,
        blobs_mounted=r.blobs_mounted,
        bytes=r.bytes,
        seconds=time.monotonic() - started,
        referrers=len(carried.referrers) if carried else 0,
        referrer_tags=len(carried.tags) if carried else 0,
    )


def _copy_referrers(
    source: ImageSource, sink: ImageSink, r: _EngineResult, emit: EventCallback
) -> CopyReferrersResult | None:
    """Carry the referrers of every copied manifest from ``source`` to the committed ``sink``."""
    from xarch.attest import referrers as refs

    src_t = refs.referrer_target(source)
    dst_t = refs.referrer_target(sink)
    if src_t is None or dst_t is None:
        return None

    def on_ref(d: Descriptor) -> None:
        emit(ProgressEvent("referrer", str(d.digest), d.size, d.size, d.artifact_type or ""))

    res = refs.copy_referrers(
        src_t, dst_t, [r.root.digest, *(m.digest for m in r.manifests)], on_copy=on_ref
    )
    for tag_name in res.conflicts:
        emit(ProgressEvent("info", "", detail=f"kept {tag_name} at the destination: it differs "
                           "from the source's (sign or copy it again to replace it)"))
    return res


# -- tag / store -------------------------------------------------------------------------------
def tag(
    src: str,
    dst: str,
    *,
    registry_options: RegistryOptions | None = None,
    store: LocalStore | None = None,
) -> Descriptor:
    """Give the image ``src`` names the name ``dst``. Two store names: a new store entry, no
    copying. Otherwise the manifest bytes are copied unchanged (between two repositories of
    one registry the blobs are mounted), so the digest is the same under both names."""
    s = _location(src, registry_options, store)
    d = _location(dst, registry_options, store)
    if s.transport == "store" and d.transport == "store":
        assert s.tag is not None and d.tag is not None
        return _store(store).tag(s.tag, d.tag)
    return copy(src, dst, registry_options=registry_options, store=store).root


@dataclass(frozen=True)
class StoreImage:
    name: str
    digest: Digest
    media_type: str
    size: int  # bytes of everything the image references (manifests, configs, layers)
    platforms: tuple[str, ...]
    created: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "size": self.size,
            "platforms": list(self.platforms),
            "created": self.created.isoformat().replace("+00:00", "Z") if self.created else None,
        }


def _tree(store: LocalStore, desc: Descriptor) -> tuple[int, list[str]]:
    """Total size of what ``desc`` references and the platforms of its images."""
    total = 0
    plats: list[str] = []
    seen: set[Digest] = set()
    stack = [desc]
    while stack:
        d = stack.pop()
        if d.digest in seen:
            continue
        seen.add(d.digest)
        total += d.size
        if not (mt.is_index(d.media_type) or mt.is_manifest(d.media_type)):
            continue
        try:
            doc = parse_any(store.content.read_bytes(d.digest, verify=False), d.media_type)
        except (NotFoundError, InputError, OSError):
            continue
        if isinstance(doc, Index):
            for child in doc.manifests:
                if (
                    child.platform is not None
                    and ANNOTATION_DIGEST not in child.annotations
                    and str(child.platform) not in plats
                ):
                    plats.append(str(child.platform))
            stack.extend(reversed(doc.manifests))
        else:
            stack.extend([doc.config, *doc.layers])
    return total, plats


def list_images(store: LocalStore | None = None) -> list[StoreImage]:
    st = _store(store)
    out = []
    for e in st.list():
        size, plats = _tree(st, e.descriptor)
        out.append(
            StoreImage(
                e.name, e.descriptor.digest, e.descriptor.media_type, size, tuple(plats), e.created
            )
        )
    return out


def remove(names: Sequence[str], store: LocalStore | None = None) -> list[tuple[str, Digest]]:
    """Untag store images (content stays until ``prune``). All names are checked first, so a
    typo removes nothing."""
    st = _store(store)
    from xarch.transports.store import normalize_name

    keys = [normalize_name(n) for n in names]
    known = {e.name for e in st.list()}
    missing = [k for k in keys if k not in known]
    if missing:
        raise NotFoundError(
            f"image {missing[0]} not found in the local store {st.root}",
            hint="list images with 'xarch ls'",
        )
    return [(k, st.remove(k).digest) for k in keys]


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[tuple[Digest, int], ...]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.removed)


def _reachable(st: LocalStore) -> set[Digest]:
    """Digests reachable from named images, plus referrers (``subject``) of reachable content —
    the same rule ``LocalStore.prune`` applies, for the dry run."""
    marked: set[Digest] = set()

    def mark(stack: list[Descriptor]) -> None:
        while stack:
            d = stack.pop()
            if d.digest in marked:
                continue
            marked.add(d.digest)
            if not (mt.is_index(d.media_type) or mt.is_manifest(d.media_type)):
                continue
            try:
                doc = parse_any(st.content.read_bytes(d.digest, verify=False), d.media_type)
            except (NotFoundError, InputError, OSError):
                continue
            stack.extend(doc.manifests if isinstance(doc, Index) else [doc.config, *doc.layers])

    mark(list(st.content.read_index()))
    subjects: dict[Digest, tuple[str, Digest]] = {}
    for digest, size in st.content.walk():
        if size > 4 << 20:
            continue
        try:
            raw = st.content.read_bytes(digest, verify=False)
            if not raw.startswith(b"{"):
                continue
            doc = json.loads(raw)
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if isinstance(subject, dict) and ("layers" in doc or "manifests" in doc):
                media = doc.get("mediaType") or (
                    mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
                )
                subjects[digest] = (str(media), Digest(subject.get("digest", "")))
        except Exception:
            continue
    changed = True
    while changed:
        changed = False
        for digest, (media, subject) in subjects.items():
            if digest not in marked and subject in marked:
                mark([Descriptor(media, digest, st.content.size(digest))])
                changed = True
    return marked


def prune(
    *,
    dry_run: bool = False,
    store: LocalStore | None = None,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> PruneResult:
    """Delete unreachable blobs. Running builds and copies into the store are waited for (up
    to ``wait`` seconds, None: as long as they run; ``on_wait`` is called once if prune has to
    wait): what they have written but not named yet is theirs, not garbage."""
    st = _store(store)
    if not st.content.is_layout():
        return PruneResult((), dry_run)
    if dry_run:
        keep = _reachable(st)
        return PruneResult(tuple((d, size) for d, size in st.content.walk() if d not in keep), True)
    report = st.prune(wait=wait, on_wait=on_wait)
    # what killed builds left (running containers, mounted snapshots) goes too, as their
    # next start would do; the state lives beside the store
    from xarch.builder.worker import recover_home

    recover_home(st.root.parent / "builder")
    return PruneResult(tuple(zip(report.removed_digests, report.removed_sizes)), False)


def verify_store(store: LocalStore | None = None) -> list[str]:
    """Every integrity problem of the local store ([] when consistent)."""
    st = _store(store)
    if not st.root.exists():
        return []
    if not st.content.is_layout():
        return [f"{st.root} is not an OCI image layout (no oci-layout file)"]
    try:
        return st.verify()
    except StoreError as e:
        return [str(e)]


# -- login / logout ----------------------------------------------------------------------------
def normalize_registry(registry: str) -> str:
    """``https://ghcr.io/`` → ``ghcr.io``; Docker Hub's spellings → ``docker.io``."""
    r = registry.strip()
    for prefix in ("https://", "http://"):
        if r.startswith(prefix):
            r = r[len(prefix) :]
    r = r.split("/", 1)[0]
    if r in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    if not r or any(c.isspace() for c in r):
        raise UsageError(
            f"invalid registry {registry!r}: expected a host like ghcr.io or localhost:5000"
        )
    return r


def login(
    registry: str,
    username: str,
    password: str,
    *,
    registry_options: RegistryOptions | None = None,
) -> str:
    """Verify the credentials against ``registry`` and store them; returns where."""
    from xarch.transports.remote import login as _login

    if not username:
        raise UsageError("login needs a username (-u USER)")
    if not password:
        raise UsageError("login needs a password (--password-stdin or the prompt)")
    return _login(normalize_registry(registry), username, password, registry_options)


def logout(registry: str, *, registry_options: RegistryOptions | None = None) -> bool:
    from xarch.transports.remote import logout as _logout

    return _logout(normalize_registry(registry), registry_options)
