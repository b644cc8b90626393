"""Copy an image (manifest or index, with everything it references) between any two transports.

The walk fetches and verifies every manifest first, then transfers the blobs they reference
with bounded parallelism (skipping those the sink already has, mounting where the sink can),
then puts manifests children-first and finally ``commit``s, so nothing appears under the
destination name unless all of it arrived. Any failure propagates before ``commit``.

Platform filtering (``platforms`` not None) applies to the root index:
- without a filter every manifest is copied byte for byte (digests preserved);
- exactly one selected image → that manifest becomes the root (like ``docker pull
  --platform`` / ``crane copy --platform``), which is also the only way into a single-platform
  sink such as docker-archive;
- several selected → a new index holding only those entries (its digest differs from the
  source's, as with buildx imagetools / skopeo), or the original index byte for byte when
  that is every entry. In such an index, attestation manifests attached to a selected
  entry (``vnd.docker.reference.digest``) are kept with it.
A requested platform that the image does not provide is a NotFoundError naming what exists.
Referrers (signatures, SBOMs) are not copied here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal

from xarch.errors import IntegrityError, UsageError
from xarch.image.select import REFERENCE_DIGEST, check_manifest_platform, select
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest, parse_any
from xarch.oci.platform import Platform
from xarch.transports.base import BlobMounter, ImageSink, ImageSource, RootProbe, SinkFeeder

EventKind = Literal["skip", "mount", "copy", "manifest"]
_MAX_CONFIG = 32 << 20  # read into memory only to check the platform


@dataclass(frozen=True)
class CopyEvent:
    kind: EventKind
    digest: Digest
    size: int
    detail: str = ""


@dataclass(frozen=True)
class CopyResult:
    root: Descriptor
    manifests: list[Descriptor]
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    bytes: int


@dataclass
class _Plan:
    manifests: list[tuple[Descriptor, bytes]]  # children before parents, root last
    blobs: dict[Digest, Descriptor]


def _verify(raw: bytes, desc: Descriptor, where: str) -> bytes:
    if len(raw) != desc.size or not desc.digest.verify(raw):
        raise IntegrityError(f"{where}: manifest {desc.digest} does not match its descriptor")
    return raw


def _is_foreign(d: Descriptor) -> bool:
    # Non-distributable layers (Windows base layers) live at their urls; registries refuse them.
    return bool(d.urls) and mt.is_nondistributable(d.media_type)


def _select(index: Index, platforms: Sequence[Platform], where: str) -> list[Descriptor]:
    selected: list[Descriptor] = []
    for want in platforms:
        match = select(index, want, where)
        if match not in selected:
            selected.append(match)
    chosen = {d.digest for d in selected}
    # Keep buildx attestation manifests of what we keep.
    attached = [
        d
        for d in index.manifests
        if d.annotations.get(REFERENCE_DIGEST) in chosen and d not in selected
    ]
    # Preserve the source order.
    keep = {id(d) for d in (*selected, *attached)}
    return [d for d in index.manifests if id(d) in keep]


def _plan(
    src: ImageSource,
    platforms: Sequence[Platform] | None,
    single_platform: bool,
) -> tuple[Descriptor, bytes, _Plan]:
    root = src.resolve()
    raw = _verify(src.fetch_manifest(root), root, src.name)
    plan = _Plan([], {})
    seen: set[Digest] = set()

    def manifest_children(desc: Descriptor, data: bytes) -> Iterator[Descriptor]:
        """The child manifests still to walk, one at a time (``seen`` is checked as each is
        reached); blobs go straight into the plan."""
        doc = parse_any(data, desc.media_type)
        if isinstance(doc, Index):
            for child in doc.manifests:
                if child.digest in seen:
                    continue
                if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                    yield child
                else:
                    plan.blobs.setdefault(child.digest, child)  # index of arbitrary artifacts
        else:
            for blob in (doc.config, *doc.layers):
                if _is_foreign(blob):
                    continue
                plan.blobs.setdefault(blob.digest, blob)

    def walk(desc: Descriptor, data: bytes) -> None:
        # Depth first on an explicit stack: a source may serve an index of an index of ...
        # (image-spec sets no depth limit, opencontainers/image-spec#780), and Python's
        # recursion limit must not decide how deep is too deep. Children before parents.
        stack = [(desc, data, manifest_children(desc, data))]
        while stack:
            d, raw, children = stack[-1]
            child = next(children, None)
            if child is not None:
                child_raw = _verify(src.fetch_manifest(child), child, src.name)
                stack.append((child, child_raw, manifest_children(child, child_raw)))
                continue
            stack.pop()
            if d.digest not in seen:
                seen.add(d.digest)
                plan.manifests.append((d, raw))

    doc = parse_any(raw, root.media_type)
    root = Descriptor(doc.media_type, root.digest, root.size)
    if isinstance(doc, Index):
        entries = list(doc.manifests)
        if platforms is not None:
            entries = _select(doc, platforms, src.name)
            images = [e for e in entries if REFERENCE_DIGEST not in e.annotations]
            if len(images) == 1:
                only = images[0]
                child = _verify(src.fetch_manifest(only), only, src.name)
                root = Descriptor(only.media_type, only.digest, only.size)
                walk(root, child)
                return root, child, plan
            if len(entries) != len(doc.manifests):
                doc = Index.build(
                    entries,
                    media_type=doc.media_type,
                    annotations=doc.annotations or None,
                    subject=doc.subject,
                    artifact_type=doc.artifact_type,
                )
                raw = doc.raw
                root = doc.descriptor
        if single_platform:
            n = len([e for e in entries if REFERENCE_DIGEST not in e.annotations])
            raise UsageError(
                f"{src.name} is a multi-platform image ({n} platforms); "
                "docker-archive holds a single platform; pass --platform",
            )
        walk(root, raw)
        return root, raw, plan
    if platforms is not None:
        assert isinstance(doc, Manifest)
        if doc.config.size > _MAX_CONFIG:
            raise IntegrityError(
                f"{src.name}: config of {doc.config.size} bytes is implausibly large"
            )
        cfg = b"".join(src.open_blob(doc.config))
        if len(cfg) != doc.config.size or not doc.config.digest.verify(cfg):
            raise IntegrityError(
                f"{src.name}: config {doc.config.digest} does not match its digest"
            )
        try:
            have = ImageConfig.parse(cfg).platform
        except Exception:
            have = None
        if have is not None and not any(p.matches(have) for p in platforms):
            check_manifest_platform(have, platforms[0], src.name)
    walk(root, raw)
    return root, raw, plan


def copy_image(
    src: ImageSource,
    dst: ImageSink,
    *,
    platforms: Sequence[Platform] | None = None,
    jobs: int = 4,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> CopyResult:
    """Copy what ``src`` names into ``dst`` and commit. The caller closes both.

    ``on_event`` receives a CopyEvent per blob (skip/mount/copy, from worker threads) and per
    manifest put (from the calling thread); it must be thread-safe and must not raise.
    """
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {jobs}")
    single = bool(getattr(dst, "single_platform", False))
    root, root_raw, plan = _plan(src, platforms, single)
    emit = on_event or (lambda _e: None)
    if isinstance(dst, RootProbe) and dst.has_root(root):
        # A no-change push: one request instead of a HEAD per blob and per manifest.
        for b in plan.blobs.values():
            emit(CopyEvent("skip", b.digest, b.size, b.media_type))
        dst.put_manifest(root_raw, root.media_type, root=True)
        for desc, _data in plan.manifests:  # the same events as a push that found them there
            emit(CopyEvent("manifest", desc.digest, desc.size, desc.media_type))
        dst.commit()
        return CopyResult(root=root, manifests=[d for d, _ in plan.manifests],
                          blobs_copied=0, blobs_skipped=len(plan.blobs), blobs_mounted=0, bytes=0)
    lock = threading.Lock()
    counts = {"copy": 0, "skip": 0, "mount": 0, "bytes": 0}

    def transfer(desc: Descriptor) -> None:
        if dst.has_blob(desc):
            kind: EventKind = "skip"
        elif isinstance(dst, BlobMounter) and dst.mount_blob(desc, src):
            kind = "mount"
        else:
            feed = src.open_blob_for_sink if isinstance(src, SinkFeeder) else src.open_blob
            dst.put_blob(desc, feed(desc))
            kind = "copy"
        with lock:
            counts[kind] += 1
            if kind == "copy":
                counts["bytes"] += desc.size
        emit(CopyEvent(kind, desc.digest, desc.size, desc.media_type))

    blobs = list(plan.blobs.values())
    if jobs == 1 or len(blobs) <= 1:
        for b in blobs:
            transfer(b)
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="xarch-copy") as pool:
            futures = [pool.submit(transfer, b) for b in blobs]
            _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
    put: list[Descriptor] = []
    for desc, data in plan.manifests:
        is_root = desc.digest == root.digest
        dst.put_manifest(data, desc.media_type, root=is_root)
        put.append(desc)
        emit(CopyEvent("manifest", desc.digest, desc.size, desc.media_type))
    dst.commit()
    return CopyResult(
        root=root,
        manifests=put,
        blobs_copied=counts["copy"],
        blobs_skipped=counts["skip"],
        blobs_mounted=counts["mount"],
        bytes=counts["bytes"],
    )
