"""The mirrored source/sink verbs every transport implements.

Registry, OCI layout, OCI archive, docker archive and the local store are all sources and
sinks with the same verbs, so ``copy`` is one algorithm over any pair. Sources hand out raw
bytes and chunk streams; sinks never make a blob visible until its size and digest matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, runtime_checkable

from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest


@runtime_checkable
class ImageSource(Protocol):
    """Read side. ``name`` is a human label for progress and errors (e.g. ``oci:/tmp/x:v1``)."""

    name: str

    def resolve(self) -> Descriptor:
        """Descriptor (media type, digest, size) of the root manifest or index this source names.

        Raises NotFoundError when the tag/name does not exist.
        """
        ...

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        """Exact raw bytes of a manifest or index; verified against ``desc.digest`` and size."""
        ...

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        """Chunks of a blob. The consumer (a sink) verifies size and digest before committing."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ImageSink(Protocol):
    """Write side. ``put_*`` are idempotent; ``commit`` makes the named reference visible."""

    name: str

    def has_blob(self, desc: Descriptor) -> bool: ...

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Store a blob. Raises IntegrityError (and stores nothing) if size or digest differ."""
        ...

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        """Store a manifest/index by digest. ``root=True`` marks the one the reference names
        (it gets the tag on commit). Children are always put before their parents."""
        ...

    def commit(self) -> None:
        """Tag the root / finalise the archive. Nothing is visible under the final name before."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SinkFeeder(Protocol):
    """Optional source capability: the chunks of a blob for an ImageSink, left unverified
    because ``put_blob`` verifies size and digest itself (a remote source then hashes each
    byte once, not twice). Anyone else must use ``open_blob``."""

    def open_blob_for_sink(self, desc: Descriptor) -> Iterator[bytes]: ...


@runtime_checkable
class BlobFileOpener(Protocol):
    """Optional source capability: a blob as an open, unbuffered binary file (sources backed by
    a directory). Lets a streaming reader such as the SBOM walker read straight into its own
    buffers instead of through chunk iterators. Unverified, like ``open_blob``; the caller
    closes it."""

    def open_blob_file(self, desc: Descriptor) -> BinaryIO: ...


@runtime_checkable
class RootProbe(Protocol):
    """Optional sink capability: whether the reference the sink writes already names exactly
    ``root``. A registry takes a manifest or index only once everything it references is there
    (an index's manifests, a manifest's blobs), so then nothing below the root is checked or
    sent again: ``copy_image`` puts just the root and commits, which writes nothing."""

    def has_root(self, root: Descriptor) -> bool: ...


@runtime_checkable
class BlobMounter(Protocol):
    """Optional sink capability: make a blob appear without transferring it (registry
    cross-repository mount). Returns True when mounted, False when the sink must upload."""

    def mount_blob(self, desc: Descriptor, source: ImageSource) -> bool: ...


@runtime_checkable
class BlobOrigins(Protocol):
    """Optional source capability: the repositories (``host/path``) a blob is known to live in,
    e.g. where the store pulled a base layer from. A registry sink on the same host mounts the
    blob from one of them instead of uploading it."""

    def blob_origins(self, desc: Descriptor) -> list[str]: ...
