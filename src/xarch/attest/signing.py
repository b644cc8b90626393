"""Sign and verify whole images (index + every platform manifest) where they live.

cosign's storage model: signatures of ``repo@sha256:X`` live in the same repository under
the tag ``sha256-X.sig``. ``RegistrySignatureStore`` maps that onto a registry repository;
``LocalSignatureStore`` onto the local store (the tag becomes the store name
``<repo>:sha256-X.sig``), so images can be signed before they are pushed and the signature
travels with them on ``xarch copy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xarch.attest.cosign import PrivateKey, PublicKey, VerifiedSignature, sign_image, verify_image
from xarch.attest.payload import docker_reference
from xarch.errors import NotFoundError, UsageError, VerificationError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, parse_any
from xarch.oci.reference import Reference
from xarch.transports.remote.client import RegistryClient
from xarch.transports.remote.options import RegistryOptions
from xarch.transports.store import LocalStore, normalize_name


class RegistrySignatureStore:
    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repo = repository

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None:
        try:
            raw, media_type, _ = self.client.get_manifest(self.repo, tag)
        except NotFoundError:
            return None
        return raw, media_type

    def get_blob(self, desc: Descriptor) -> bytes:
        return self.client.get_blob_bytes(self.repo, desc)

    def put_blob(self, desc: Descriptor, data: bytes) -> None:
        self.client.upload_blob(self.repo, desc, [data])

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> None:
        self.client.put_manifest(self.repo, tag, raw, media_type)


class LocalSignatureStore:
    def __init__(self, store: LocalStore, repository: str) -> None:
        self.store = store
        self.repo = repository  # "docker.io/library/app": names become repo:<tag>

    def _name(self, tag: str) -> str:
        return f"{self.repo}:{tag}"

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None:
        try:
            desc = self.store.resolve(self._name(tag))
        except NotFoundError:
            return None
        return self.store.content.read_bytes(desc.digest), desc.media_type

    def get_blob(self, desc: Descriptor) -> bytes:
        return self.store.content.read_bytes(desc.digest, verify=False)  # caller verifies

    def put_blob(self, desc: Descriptor, data: bytes) -> None:
        self.store.content.ingest_bytes(data, desc)

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> None:
        d = Digest.from_bytes(raw)
        self.store.content.ingest_bytes(raw, d)
        self.store.set_name(self._name(tag), Descriptor(media_type, d, len(raw)))


@dataclass(frozen=True)
class Target:
    """An image to sign or verify: its signature store, root descriptor and identity."""

    store: Any  # SignatureStore
    root: Descriptor
    reference: str  # cosign docker-reference (registry/repository)
    fetch: Any  # Callable[[Descriptor], bytes]: manifest bytes
    close: Any


def open_target(image: str, *, local: LocalStore | None = None,
                registry_options: RegistryOptions | None = None) -> Target:
    """``image`` is a registry reference (``docker://`` optional) or a local store name."""
    from xarch.transports.resolve import looks_like_registry

    text = image.removeprefix("docker://")
    is_remote = image.startswith("docker://") or looks_like_registry(text)
    if not is_remote:
        store = local or LocalStore.default()
        name = normalize_name(text.removeprefix("store:"))
        root = store.resolve(name)
        ref = Reference.parse(name)
        return Target(LocalSignatureStore(store, f"{ref.registry}/{ref.repository}"), root,
                      docker_reference(ref), lambda d: store.content.read_bytes(d.digest), lambda: None)
    ref = Reference.parse(text)
    client = RegistryClient(ref.registry, registry_options)
    try:
        if ref.digest is not None:
            raw, media_type, digest = client.get_manifest(ref.repository, str(ref.digest))
        else:
            raw, media_type, digest = client.get_manifest(ref.repository, ref.identifier)
    except BaseException:
        client.close()
        raise
    root = Descriptor(media_type, digest, len(raw))
    return Target(RegistrySignatureStore(client, ref.repository), root, docker_reference(ref),
                  lambda d: client.get_manifest(ref.repository, str(d.digest))[0], client.close)


def _subjects(t: Target, recursive: bool) -> list[Descriptor]:
    out = [t.root]
    if recursive:
        doc = parse_any(t.fetch(t.root), t.root.media_type)
        if isinstance(doc, Index):
            out += [m for m in doc.manifests if m.platform is None or m.platform.os != "unknown"]
    return out


def sign(t: Target, key: PrivateKey, *, recursive: bool = True,
         annotations: Mapping[str, Any] | None = None) -> list[tuple[Descriptor, Descriptor]]:
    """Sign the root and (recursively) every platform manifest. Returns (subject, signature)."""
    return [(s, sign_image(t.store, s.digest, t.reference, key, annotations)) for s in _subjects(t, recursive)]


def verify(t: Target, key: PublicKey, *, recursive: bool = True,
           annotations: Mapping[str, Any] | None = None,
           check_identity: bool = False) -> list[tuple[Descriptor, list[VerifiedSignature]]]:
    """Verify the root and every platform manifest; fails closed on the first that does not.

    As cosign, a signature holds for its digest wherever the image was copied; with
    ``check_identity`` the payload's claimed repository must also be the one verified."""
    out = []
    ident = t.reference if check_identity else None
    for s in _subjects(t, recursive):
        what = f"{s.digest}" + (f" ({s.platform})" if s.platform else "")
        try:
            out.append((s, verify_image(t.store, s.digest, key, docker_reference=ident,
                                        required_annotations=annotations)))
        except VerificationError as e:
            raise VerificationError(f"verification failed for {what}: {e.message}", hint=e.hint) from None
    return out


def parse_annotations(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise UsageError(f"invalid annotation {v!r}", hint="use KEY=VALUE")
        out[k] = val
    return out
