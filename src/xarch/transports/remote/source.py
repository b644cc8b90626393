"""Registry as an ImageSource / ImageSink (+ BlobMounter) for the copy engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from xarch.errors import IntegrityError, XarchError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.reference import Reference
from xarch.transports.base import BlobOrigins, ImageSource
from xarch.transports.remote.client import RegistryClient, api_host
from xarch.transports.remote.errors import RegistryAuthError, RegistryNotFoundError
from xarch.transports.remote.options import EventCallback, RegistryOptions

_DEFAULT_TAG = "latest"


class RemoteSource:
    """Reads the image a reference names from its registry."""

    def __init__(
        self,
        ref: Reference,
        options: RegistryOptions | None = None,
        *,
        client: RegistryClient | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.ref = ref
        self.name = str(ref)
        self._owns_client = client is None
        self.client = client or RegistryClient(ref.registry, options, on_event=on_event)

    @property
    def repository(self) -> str:
        return self.ref.repository

    def resolve(self) -> Descriptor:
        desc = self.client.head_manifest(self.ref.repository, self.ref.identifier)
        if desc is None:
            # GET gives the registry's own error (MANIFEST_UNKNOWN…) as a NotFoundError.
            raw, media_type, digest = self.client.get_manifest(
                self.ref.repository, self.ref.identifier
            )
            desc = Descriptor(media_type, digest, len(raw))
        return desc

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        raw, _, _ = self.client.get_manifest(self.ref.repository, str(desc.digest))
        if len(raw) != desc.size:
            raise IntegrityError(
                f"manifest {desc.digest} from {self.name} has {len(raw)} bytes, descriptor says {desc.size}"
            )
        return raw

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self.client.get_blob(self.ref.repository, desc)

    def open_blob_for_sink(self, desc: Descriptor) -> Iterator[bytes]:
        """The blob for an ImageSink, which hashes it before storing: not hashed here too."""
        return self.client.get_blob(self.ref.repository, desc, verify=False)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class RemoteSink:
    """Writes an image to a registry. Children go up by digest as they come; the root is
    only PUT under the tag in ``commit`` so nothing partial is visible under the name."""

    def __init__(
        self,
        ref: Reference,
        options: RegistryOptions | None = None,
        *,
        client: RegistryClient | None = None,
        on_event: EventCallback | None = None,
        monolithic_max: int = 64 * 1024 * 1024,
    ) -> None:
        self.ref = ref
        self.name = str(ref)
        self._owns_client = client is None
        self.client = client or RegistryClient(ref.registry, options, on_event=on_event)
        self._monolithic_max = monolithic_max
        self._root: tuple[bytes, str, Digest] | None = None
        # (digest, whether the target name held it) as has_root last saw it
        self._probed: tuple[Digest, bool] | None = None
        self.pushed: Digest | None = None  # digest of the committed root

    def has_blob(self, desc: Descriptor) -> bool:
        return self.client.has_blob(self.ref.repository, desc.digest)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self.client.upload_blob(
            self.ref.repository, desc, chunks, monolithic_max=self._monolithic_max
        )

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        digest = Digest.from_bytes(raw)
        if root:
            self._root = (raw, media_type, digest)
            return digest
        if self._present(str(digest), digest):
            return digest  # a rebuild that changed nothing uploads nothing
        return self.client.put_manifest(self.ref.repository, str(digest), raw, media_type)

    def _present(self, identifier: str, digest: Digest) -> bool:
        try:
            have = self.client.head_manifest(self.ref.repository, identifier)
        except RegistryNotFoundError:
            return False
        return have is not None and have.digest == digest

    def _target(self) -> str:
        if self.ref.tag is not None:
            return self.ref.tag
        if self.ref.digest is not None:
            return str(self.ref.digest)
        return _DEFAULT_TAG

    def has_root(self, root: Descriptor) -> bool:
        """True when the target name already resolves to ``root``: the registry accepted it,
        so it holds everything ``root`` references (see ``RootProbe``)."""
        if self.ref.digest is not None and self.ref.digest != root.digest:
            return False  # commit reports the mismatch
        present = self._present(self._target(), root.digest)
        self._probed = (root.digest, present)
        return present

    def commit(self) -> None:
        if self._root is None:
            raise XarchError(f"nothing to commit to {self.name}: no root manifest was written")
        raw, media_type, digest = self._root
        if self.ref.digest is not None and self.ref.digest != digest:
            raise IntegrityError(
                f"{self.name}: the image to push has digest {digest}, the reference pins {self.ref.digest}"
            )
        target = self._target()
        # has_root already asked the registry about this digest: no second HEAD for the same
        # answer (a PUT is idempotent should the name have changed since)
        if self._probed is not None and self._probed[0] == digest:
            present = self._probed[1]
        else:
            present = self._present(target, digest)
        if not present:
            self.client.put_manifest(self.ref.repository, target, raw, media_type)
        self.pushed = digest

    def mount_blob(self, desc: Descriptor, source: ImageSource) -> bool:
        """Cross-repository mount when ``source`` is a repository on the same registry, or
        knows (``BlobOrigins``) of repositories on this registry that hold the blob."""
        if isinstance(source, RemoteSource):
            origins = [source.ref]
        elif isinstance(source, BlobOrigins):
            origins = []
            for o in source.blob_origins(desc):
                try:
                    origins.append(Reference.parse(o))
                except XarchError:
                    continue
        else:
            return False
        for origin in origins:
            if api_host(origin.registry) != api_host(self.ref.registry):
                continue
            if origin.repository == self.ref.repository:
                continue  # has_blob already said no: the record is stale
            try:
                if self.client.mount_blob(self.ref.repository, desc.digest, origin.repository):
                    return True
            except (RegistryAuthError, RegistryNotFoundError):
                continue  # no pull access to that repository, or it vanished: try the next
        return False

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
