"""OCI image layout directories (``oci:DIR[:TAG]``) as image sources and sinks.

The layout is what skopeo, umoci and crane read and write: an ``oci-layout`` marker file,
``index.json`` (an OCI image index) and ``blobs/<alg>/<hex>``. A tag is the
``org.opencontainers.image.ref.name`` annotation on a top-level descriptor of ``index.json``;
for ``oci:DIR:TAG`` that annotation is exactly ``TAG``. Writing replaces any entry carrying the
same tag, so a layout can hold many tagged images side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, cast

from xarch.content.store import REF_NAME, ContentStore
from xarch.errors import IntegrityError, NotFoundError, UsageError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest


def verify_manifest_bytes(raw: bytes, desc: Descriptor, where: str) -> bytes:
    """Never trust manifest bytes whose size or digest differ from the descriptor."""
    if len(raw) != desc.size or not desc.digest.verify(raw):
        raise IntegrityError(
            f"{where}: manifest {desc.digest} does not match its descriptor "
            f"(got {len(raw)} bytes, expected {desc.size})"
        )
    return raw


def select_entry(entries: list[Descriptor], tag: str | None, where: str) -> Descriptor:
    """The index.json entry a tag (or, with no tag, the single entry) names."""
    if tag is None:
        if len(entries) == 1:
            return entries[0]
        if not entries:
            raise NotFoundError(f"{where}: the layout holds no images")
        names = sorted({e.annotations.get(REF_NAME, str(e.digest)) for e in entries})
        raise UsageError(
            f"{where}: the layout holds {len(entries)} images; name one with :TAG",
            hint="available: " + ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""),
        )
    if tag.startswith("@"):
        # oci:DIR@sha256:... — address an entry by digest (skopeo's "@digest" form)
        digest = Digest.parse(tag[1:])
        for e in entries:
            if e.digest == digest:
                return e
        raise NotFoundError(f"{where}: no entry with digest {digest}")
    matches = [e for e in entries if e.annotations.get(REF_NAME) == tag]
    if not matches:
        raise NotFoundError(
            f"{where}: tag {tag!r} not found",
            hint="available tags: "
            + (
                ", ".join(
                    sorted({e.annotations[REF_NAME] for e in entries if REF_NAME in e.annotations})
                )
                or "none"
            ),
        )
    # Duplicate tags are invalid but happen (hand-edited layouts); the last one written wins.
    return matches[-1]


class LayoutSource:
    """Read one image (manifest or index) from an OCI layout directory."""

    def __init__(self, root: Path, tag: str | None = None, *, name: str | None = None) -> None:
        self.root = Path(root)
        self.tag = tag
        self.name = name or (f"oci:{self.root}:{tag}" if tag else f"oci:{self.root}")
        self.store = ContentStore(self.root)
        if not self.store.is_layout():
            raise NotFoundError(
                f"{self.name}: {self.root} is not an OCI image layout (no oci-layout file)"
            )

    def resolve(self) -> Descriptor:
        return select_entry(self.store.read_index(), self.tag, self.name)

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        try:
            raw = self.store.read_bytes(desc.digest, verify=False)
        except NotFoundError:
            raise NotFoundError(
                f"{self.name}: manifest {desc.digest} is missing from the layout"
            ) from None
        return verify_manifest_bytes(raw, desc, self.name)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        if not self.store.path(desc).is_file():
            raise NotFoundError(f"{self.name}: blob {desc.digest} is missing from the layout")
        return self.store.iter_chunks(desc)

    def open_blob_file(self, desc: Descriptor) -> BinaryIO:
        try:
            return cast(BinaryIO, self.store.open(desc, buffered=False))
        except NotFoundError:
            raise NotFoundError(
                f"{self.name}: blob {desc.digest} is missing from the layout"
            ) from None

    def close(self) -> None:
        pass


class LayoutSink:
    """Write one image into an OCI layout directory (created if missing).

    Blobs and manifests land in ``blobs/`` as they arrive (verified); ``index.json`` changes only
    on ``commit``, so the tag never points at incomplete content.
    """

    def __init__(
        self,
        root: Path,
        tag: str | None = None,
        *,
        name: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.tag = tag
        self.name = name or (f"oci:{self.root}:{tag}" if tag else f"oci:{self.root}")
        self.extra_annotations = dict(annotations or {})
        self.store = ContentStore(self.root)
        self._root_desc: Descriptor | None = None
        self._session = self.store.writer_session()
        self._in_session = False
        self._committed = False
        self._lock = threading.Lock()

    def _begin(self) -> None:
        with self._lock:
            if not self._in_session:
                self.store.init()
                self._session.__enter__()
                self._in_session = True

    def has_blob(self, desc: Descriptor) -> bool:
        return self.store.has(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self._begin()
        if self.store.has(desc):
            return  # already present under its verified name
        self.store.ingest(desc, chunks)

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        self._begin()
        desc = Descriptor.of(media_type, raw)
        if not self.store.has(desc):
            self.store.ingest(desc, [raw])
        if root:
            self._root_desc = desc
        return desc.digest

    def root_annotations(self) -> dict[str, str]:
        ann = dict(self.extra_annotations)
        if self.tag is not None:
            ann[REF_NAME] = self.tag
        return ann

    def commit(self) -> None:
        if self._root_desc is None:
            raise UsageError(f"{self.name}: nothing to commit (no root manifest was written)")
        entry = self._root_desc.replace(annotations=self.root_annotations())
        tag = self.tag

        def update(entries: list[Descriptor]) -> list[Descriptor]:
            if tag is not None:
                kept = [e for e in entries if e.annotations.get(REF_NAME) != tag]
            else:
                # untagged: don't duplicate an identical untagged entry
                kept = [
                    e
                    for e in entries
                    if not (REF_NAME not in e.annotations and e.digest == entry.digest)
                ]
            return [*kept, entry]

        self.store.update_index(update)
        self._committed = True
        self._end()

    @property
    def root_descriptor(self) -> Descriptor | None:
        return self._root_desc

    def _end(self) -> None:
        with self._lock:
            self._end_locked()

    def _end_locked(self) -> None:
        if self._in_session:
            self._in_session = False
            self._session.__exit__(None, None, None)
            self._session = self.store.writer_session()
        self.store.remove_empty_ingest_dir()

    def close(self) -> None:
        # Uncommitted blobs stay as unreferenced content; prune reclaims them.
        self._end()
