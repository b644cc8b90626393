"""The local image store: one OCI image layout at ``$XARCH_HOME/store``.

``XARCH_HOME`` defaults to ``$XDG_DATA_HOME/xarch``, else ``~/.local/share/xarch``. Every image
in the store is a top-level descriptor of ``index.json`` annotated with
``org.opencontainers.image.ref.name`` = the *fully normalised* reference (``hello:1`` is stored
as ``docker.io/library/hello:1``, ``localhost/app:dev`` stays as is; a name without tag gets
``:latest``) and ``io.xarch.created`` (RFC 3339 UTC). Because the store is a plain OCI layout,
``skopeo copy oci:$XARCH_HOME/store:docker.io/library/hello:1 …`` works too.

The pull cache lives in the same layout, apart from the names: what a build fetched for its
base images (``FROM registry/name:tag``) is recorded as a top-level descriptor annotated
``io.xarch.pulled`` = the reference it was resolved from (never ``ref.name``, so ``ls`` and
``skopeo`` do not see it as a user's image) and ``io.xarch.resolved`` = when. Only the platforms
a build needed are fetched, so such a root is marked ``io.xarch.partial``: its index lists every
platform the registry has, its children are present only where a build used them. GC keeps
every root, pulled ones included (one rule), and a re-resolved tag replaces its record, which
frees the old base at the next prune. The records also tell a push where a layer came from, so
the registry can mount it instead of receiving it again (``StoreSource.blob_origins``).

Concurrency: blobs are written content-addressed and atomically (see ``xarch.content.store``),
``index.json`` changes under an exclusive flock, and ``prune`` runs only while no writer session
holds the shared GC lock, so concurrent builds/pulls and a prune never lose content.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from xarch.content.store import MAX_MANIFEST_SIZE, PARTIAL, REF_NAME, ContentStore, children
from xarch.errors import InputError, NotFoundError, StoreError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import load_json_object, parse_any
from xarch.oci.reference import Reference
from xarch.transports.layout import LayoutSink, verify_manifest_bytes

CREATED = "io.xarch.created"
PULLED = "io.xarch.pulled"
RESOLVED = "io.xarch.resolved"


def xarch_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("XARCH_HOME"):
        return Path(env["XARCH_HOME"])
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "xarch"
    return Path(env.get("HOME") or Path.home()) / ".local" / "share" / "xarch"


def default_store_root(env: Mapping[str, str] | None = None) -> Path:
    return xarch_home(env) / "store"


def normalize_name(name: str) -> str:
    """The key an image is stored under: full reference, ``:latest`` when no tag/digest."""
    try:
        ref = Reference.parse(name)
    except InputError as e:
        raise UsageError(f"invalid image name {name!r}: {e.message}") from None
    if ref.tag is None and ref.digest is None:
        ref = ref.with_tag("latest")
    return str(ref)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class StoreEntry:
    name: str
    descriptor: Descriptor
    created: datetime | None


@dataclass(frozen=True)
class PullRecord:
    """A base reference as last resolved against its registry (the pull cache)."""

    ref: str  # normalised reference it was resolved from (tag or digest form)
    descriptor: Descriptor  # its root manifest or index
    resolved: datetime | None


@dataclass(frozen=True)
class PruneReport:
    removed_blobs: int
    freed_bytes: int
    removed_digests: tuple[Digest, ...] = ()
    removed_sizes: tuple[int, ...] = ()  # bytes of each removed blob, in the same order


class LocalStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.content = ContentStore(self.root, fsync=fsync)

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> LocalStore:
        return cls(default_store_root(env))

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- names -------------------------------------------------------------------------------
    def list(self) -> list[StoreEntry]:
        out = []
        for e in self.content.read_index():
            name = e.annotations.get(REF_NAME)
            if name is None:
                continue
            out.append(StoreEntry(name, _strip(e), _parse_time(e.annotations.get(CREATED))))
        return sorted(out, key=lambda s: s.name)

    def _find(self, key: str) -> Descriptor | None:
        for e in reversed(self.content.read_index()):
            if e.annotations.get(REF_NAME) == key:
                return e
        return None

    def resolve(self, name: str) -> Descriptor:
        """Descriptor of the image stored under ``name`` (``name@digest`` also finds content)."""
        key = normalize_name(name)
        found = self._find(key)
        if found is not None:
            return _strip(found)
        ref = Reference.parse(key)
        if ref.digest is not None:
            # By digest: any stored manifest with that digest (tags are only labels).
            desc = self._descriptor_for_digest(ref.digest)
            if desc is not None:
                return desc
        raise NotFoundError(
            f"image {key} not found in the local store {self.root}",
            hint="list images with 'xarch images' or pull it first",
        )

    def _descriptor_for_digest(self, digest: Digest) -> Descriptor | None:
        for e in self.content.read_index():
            if e.digest == digest:
                return _strip(e)
        if not self.content.has(digest):
            return None
        size = self.content.size(digest)
        if size > MAX_MANIFEST_SIZE:
            return None
        raw = self.content.read_bytes(digest)
        try:
            doc = parse_any(raw)
        except InputError:
            return None
        return Descriptor(doc.media_type, digest, size)

    def tag(self, src_name: str, dst_name: str) -> Descriptor:
        desc = self.resolve(src_name)
        self.set_name(dst_name, desc)
        return desc

    def set_name(self, name: str, desc: Descriptor) -> None:
        """Point ``name`` at ``desc`` (content must already be in the store)."""
        key = normalize_name(name)
        if not self.content.has(desc):
            raise NotFoundError(f"cannot tag {key}: {desc.digest} is not in the local store")
        entry = desc.replace(annotations={REF_NAME: key, CREATED: _now()})
        self.content.update_index(
            lambda es: [*(e for e in es if e.annotations.get(REF_NAME) != key), entry]
        )

    def find_name(self, name: str) -> Descriptor | None:
        """The image stored under the user's name ``name`` (not by digest, not the pull cache)."""
        found = self._find(normalize_name(name))
        return _strip(found) if found is not None else None

    # -- pull cache ----------------------------------------------------------------------------
    def pulled(self, ref: str) -> PullRecord | None:
        """The last resolution of ``ref`` recorded in the pull cache."""
        key = normalize_name(ref)
        for e in reversed(self.content.read_index()):
            if e.annotations.get(PULLED) == key:
                return PullRecord(key, _strip(e), _parse_time(e.annotations.get(RESOLVED)))
        return None

    def pull_records(self) -> builtins.list[PullRecord]:
        return [
            PullRecord(e.annotations[PULLED], _strip(e), _parse_time(e.annotations.get(RESOLVED)))
            for e in self.content.read_index()
            if PULLED in e.annotations
        ]

    def record_pull(self, ref: str, desc: Descriptor, raw: bytes | None = None) -> None:
        """Record that ``ref`` resolved to ``desc`` (``raw``: its bytes, ingested first)."""
        key = normalize_name(ref)
        if raw is not None and not self.content.has(desc):
            self.content.ingest(desc, [raw])
        if not self.content.has(desc):
            raise NotFoundError(f"cannot record {key}: {desc.digest} is not in the local store")
        entry = Descriptor(desc.media_type, desc.digest, desc.size, annotations={
            PULLED: key, RESOLVED: _now(), PARTIAL: "true",
        })
        self.content.update_index(
            lambda es: [*(e for e in es if e.annotations.get(PULLED) != key), entry]
        )

    def blob_origins(self) -> dict[Digest, builtins.list[str]]:
        """Blob digest -> repositories (``host/path``) it was pulled from, per the pull cache."""
        out: dict[Digest, builtins.list[str]] = {}
        for rec in self.pull_records():
            repo = Reference.parse(rec.ref).context()
            stack = [rec.descriptor]
            seen: builtins.set[Digest] = set()
            while stack:
                d = stack.pop()
                if d.digest in seen or not self.content.has(d.digest):
                    continue
                seen.add(d.digest)
                repos = out.setdefault(d.digest, [])
                if repo not in repos:
                    repos.append(repo)
                if mt.is_index(d.media_type) or mt.is_manifest(d.media_type):
                    try:
                        doc = parse_any(self.content.read_bytes(d.digest), d.media_type)
                    except (InputError, OSError):
                        continue
                    stack.extend(children(doc))
        return out

    def remove(self, name: str) -> Descriptor:
        """Untag; content stays until ``prune``."""
        key = normalize_name(name)
        removed: builtins.list[Descriptor] = []

        def update(es: list[Descriptor]) -> list[Descriptor]:
            keep: builtins.list[Descriptor] = []
            for e in es:
                (removed if e.annotations.get(REF_NAME) == key else keep).append(e)
            return keep

        self.content.update_index(update)
        if not removed:
            raise NotFoundError(f"image {key} not found in the local store {self.root}")
        return _strip(removed[-1])

    # -- GC ----------------------------------------------------------------------------------
    def prune(
        self, *, wait: float | None = None, on_wait: Callable[[], None] | None = None
    ) -> PruneReport:
        """Delete every blob not reachable from a named image (or a referrer of one).

        A build or copy into the store holds the writer lease from its first blob to its last
        name; what it ingested but has not named yet is unreachable, so prune waits until no
        lease is held: up to ``wait`` seconds (None, the default: as long as it takes), then
        StoreError. A prune that fails while builds run only makes the user run it again later;
        waiting does that for them. ``on_wait`` is called once if prune has to wait (to tell
        the user why nothing happens). Temp files of writers that are gone are removed too.
        """
        self.content.init()
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.content.gc_lock(0))
            except StoreError:
                if on_wait is not None:
                    on_wait()
                held.enter_context(self.content.gc_lock(wait))
            held.enter_context(self.content.index_lock())
            roots = self.content.read_index()
            marked: builtins.set[Digest] = set()
            self._mark_all(roots, marked)
            # Referrers (signatures, SBOMs) are kept while their subject is reachable; they may
            # themselves be subjects of further referrers, so iterate to a fixpoint.
            subjects = self._subjects()
            changed = True
            while changed:
                changed = False
                for digest, subject in subjects.items():
                    if digest not in marked and subject in marked:
                        self._mark_all(
                            [self._descriptor_for_digest(digest) or _bare(digest)], marked
                        )
                        changed = True
            removed: builtins.list[Digest] = []
            sizes: builtins.list[int] = []
            for digest, size in list(self.content.walk()):
                if digest in marked:
                    continue
                if self.content.delete(digest):
                    removed.append(digest)
                    sizes.append(size)
            self.content.cleanup_ingest()
        return PruneReport(len(removed), sum(sizes), tuple(removed), tuple(sizes))

    def _mark_all(self, descs: Iterable[Descriptor], marked: builtins.set[Digest]) -> None:
        stack = list(descs)
        while stack:
            d = stack.pop()
            if d.digest in marked:
                continue
            marked.add(d.digest)
            if not (mt.is_index(d.media_type) or mt.is_manifest(d.media_type)):
                continue
            if not self.content.has(d.digest):
                continue
            try:
                doc = parse_any(self.content.read_bytes(d.digest), d.media_type)
            except Exception:
                continue  # verify() reports it; GC keeps what it cannot read through
            stack.extend(children(doc))

    def _subjects(self) -> dict[Digest, Digest]:
        """digest → subject digest for every manifest/index blob carrying a ``subject``."""
        out: dict[Digest, Digest] = {}
        for digest, size in self.content.walk():
            if size > MAX_MANIFEST_SIZE:
                continue
            try:
                with self.content.open(digest) as f:
                    head = f.read(1)
                    if head != b"{":
                        continue
                    raw = head + f.read()
                doc = load_json_object(raw, "manifest")
            except Exception:
                continue
            subject = doc.get("subject")
            if not isinstance(subject, dict) or ("layers" not in doc and "manifests" not in doc):
                continue
            try:
                out[digest] = Digest(subject.get("digest", ""))
            except Exception:
                continue
        return out

    def verify(self) -> builtins.list[str]:
        return self.content.verify_all()

    # -- transports --------------------------------------------------------------------------
    def source(self, name: str) -> StoreSource:
        return StoreSource(self, name)

    def sink(self, name: str) -> StoreSink:
        return StoreSink(self, name)


def _strip(e: Descriptor) -> Descriptor:
    return Descriptor(e.media_type, e.digest, e.size, platform=e.platform)


def _bare(d: Digest) -> Descriptor:
    return Descriptor("application/octet-stream", d, 0)


class StoreSource:
    def __init__(self, store: LocalStore, name: str) -> None:
        self.store = store
        self.key = normalize_name(name)
        self.name = f"store:{self.key}"
        self._origins: dict[Digest, builtins.list[str]] | None = None

    def blob_origins(self, desc: Descriptor) -> builtins.list[str]:
        """Repositories this blob was pulled from (a registry sink can mount it from there)."""
        if self._origins is None:
            self._origins = self.store.blob_origins()
        return list(self._origins.get(desc.digest, ()))

    def resolve(self) -> Descriptor:
        return self.store.resolve(self.key)

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        try:
            raw = self.store.content.read_bytes(desc.digest, verify=False)
        except NotFoundError:
            raise NotFoundError(
                f"{self.name}: manifest {desc.digest} is missing from the store"
            ) from None
        return verify_manifest_bytes(raw, desc, self.name)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        if not self.store.content.path(desc).is_file():
            raise NotFoundError(f"{self.name}: blob {desc.digest} is missing from the store")
        return self.store.content.iter_chunks(desc)

    def open_blob_file(self, desc: Descriptor) -> BinaryIO:
        try:
            return cast(BinaryIO, self.store.content.open(desc, buffered=False))
        except NotFoundError:
            raise NotFoundError(
                f"{self.name}: blob {desc.digest} is missing from the store"
            ) from None

    def close(self) -> None:
        pass


class ContentSource:
    """The store's content as an ImageSource rooted at a digest, with no name: the pull
    cache's way out (``label`` names it in errors)."""

    def __init__(self, store: LocalStore, label: str, root: Descriptor) -> None:
        self._src = StoreSource(store, "xarch/content:latest")
        self._src.name = label
        self.name = label
        self._root = root

    def resolve(self) -> Descriptor:
        return self._root

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        return self._src.fetch_manifest(desc)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self._src.open_blob(desc)

    def open_blob_file(self, desc: Descriptor) -> BinaryIO:
        return self._src.open_blob_file(desc)

    def close(self) -> None:
        pass


class ContentSink(LayoutSink):
    """Writes blobs and manifests into the store's content, naming nothing: the pull cache's
    way in (``LocalStore.record_pull`` records the root afterwards)."""

    def __init__(self, store: LocalStore, label: str) -> None:
        super().__init__(store.root, None, name=f"store:{label}")

    def commit(self) -> None:
        self._committed = True
        self._end()


class StoreSink(LayoutSink):
    """Writes into the store; ``commit`` tags the root with the normalised name + timestamp."""

    def __init__(self, store: LocalStore, name: str) -> None:
        key = normalize_name(name)
        if Reference.parse(key).tag is None:
            raise UsageError(f"cannot store under {key}: a tag is needed to name it (NAME:TAG)")
        super().__init__(store.root, key, name=f"store:{key}")
        self.store = store.content
        self.local_store = store

    def root_annotations(self) -> dict[str, str]:
        ann = super().root_annotations()
        ann[CREATED] = _now()
        return ann
