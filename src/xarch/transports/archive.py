"""Tarball transports: ``oci-archive:FILE[:TAG]`` and ``docker-archive:FILE[:REF]``.

Reading never extracts: the tar is indexed once (member name → data offset) and blobs are
served by seeking into it, so a hostile entry name can never write anywhere. Compressed
tarballs (``docker save | gzip``) are first decompressed into a private temp file. Paths taken
from inside the archive (manifest.json, symlinks) are normalised and must stay inside it.

Writing builds the content in a temp directory beside the target, then writes a deterministic
tar (sorted names, mtime 0, uid/gid 0, fixed modes) to a temp file and renames it over the
target, so a reader never sees a half-written archive.

docker-archive follows what ``docker save`` / ``skopeo copy … docker-archive:`` write and
``docker load`` reads: ``manifest.json`` ``[{"Config","RepoTags","Layers"}]``, the config as
``<hex>.json`` and each layer as an *uncompressed* ``<diffID hex>.tar`` (moby's loader
decompresses layers itself, but old daemons and other readers expect plain tars, and
decompressing lets us check every layer against the config's diffIDs). No ``repositories``
file is written: ``docker load`` only reads it for pre-1.10 archives without manifest.json.
A docker archive holds one platform's image, so writing an index into it is a UsageError.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from isal import igzip

from xarch.content.store import CHUNK, ContentStore
from xarch.errors import InputError, IntegrityError, NotFoundError, StoreError, UsageError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest, Digester
from xarch.oci.manifest import Index, Manifest, canonical_json
from xarch.oci.reference import Reference
from xarch.transports.layout import LayoutSink, select_entry, verify_manifest_bytes

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_LINK_HOPS = 16
_MAX_JSON = 64 << 20
_HEX64 = re.compile(r"(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?")


def compression_of(head: bytes) -> str:
    """'gzip', 'zstd' or 'none' from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def safe_member_path(name: str) -> str | None:
    """Normalised archive path, or None if it is absolute or escapes the archive root."""
    if not name or "\x00" in name:
        return None
    if name.startswith("/"):
        return None
    norm = posixpath.normpath(name)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        return None
    return norm


def decompressed_chunks(chunks: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """Decompress a gzip/zstd chunk stream (multi-member/multi-frame safe)."""
    if compression == "none":
        yield from chunks
        return
    it = iter(chunks)

    class _Iter(io.RawIOBase):
        buf = b""

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            while not self.buf:
                try:
                    self.buf = next(it)
                except StopIteration:
                    return 0
            n = min(len(b), len(self.buf))
            b[:n] = self.buf[:n]
            self.buf = self.buf[n:]
            return n

    raw = io.BufferedReader(_Iter(), CHUNK)
    reader: Any
    if compression == "gzip":
        # isal's igzip is a drop-in GzipFile, several times faster on big layers
        reader = igzip.IGzipFile(fileobj=raw, mode="rb")
    else:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    try:
        while True:
            b = reader.read(CHUNK)
            if not b:
                return
            yield b
    except (OSError, EOFError, zstandard.ZstdError) as e:
        raise IntegrityError(f"corrupt {compression} layer data: {e}") from None


# ------------------------------------------------------------------------------------------
# Reading tarballs without extracting them


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int


class TarIndex:
    """Random access to the regular files of a tar by normalised path (links resolved)."""

    def __init__(self, path: Path, what: str) -> None:
        self.source = Path(path)
        self.what = what
        self._tmp: Path | None = None
        try:
            with open(self.source, "rb") as f:
                comp = compression_of(f.read(4))
        except FileNotFoundError:
            raise NotFoundError(f"{what}: file {self.source} does not exist") from None
        except OSError as e:
            raise InputError(f"{what}: cannot read {self.source}: {e.strerror}") from None
        self.tar_path = self.source
        if comp != "none":
            self.tar_path = self._decompress_to_temp(comp)
        self._files: dict[str, _Member] = {}
        self._links: dict[str, tuple[str, bool]] = {}  # path -> (target, is_symlink)
        try:
            with tarfile.open(self.tar_path, "r:") as tf:
                for m in tf:
                    name = safe_member_path(m.name)
                    if name is None:
                        continue  # never addressable, so never a risk
                    if m.isreg():
                        self._files[name] = _Member(m.offset_data, m.size)
                        self._links.pop(name, None)
                    elif m.issym() or m.islnk():
                        self._links[name] = (m.linkname, m.issym())
                        self._files.pop(name, None)
        except tarfile.TarError as e:
            self.close()
            raise InputError(f"{what}: {self.source} is not a valid tar archive ({e})") from None

    def _decompress_to_temp(self, comp: str) -> Path:
        fd, tmp = tempfile.mkstemp(prefix="xarch-archive-", suffix=".tar")
        self._tmp = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out, open(self.source, "rb") as f:

                def chunks() -> Iterator[bytes]:
                    while b := f.read(CHUNK):
                        yield b

                for b in decompressed_chunks(chunks(), comp):
                    out.write(b)
        except BaseException:
            self.close()
            raise
        return self._tmp

    def _resolve(self, name: str) -> _Member:
        path = safe_member_path(name)
        if path is None:
            raise InputError(f"{self.what}: unsafe path {name!r} inside the archive")
        for _ in range(_MAX_LINK_HOPS):
            if path in self._files:
                return self._files[path]
            link = self._links.get(path)
            if link is None:
                raise NotFoundError(f"{self.what}: {name} is missing from the archive")
            target, is_sym = link
            if is_sym:
                if target.startswith("/"):
                    raise InputError(f"{self.what}: {name} is an absolute symlink")
                joined = posixpath.join(posixpath.dirname(path), target)
            else:
                joined = target
            nxt = safe_member_path(joined)
            if nxt is None:
                raise InputError(f"{self.what}: link {name} points outside the archive")
            path = nxt
        raise InputError(f"{self.what}: too many levels of links at {name}")

    def exists(self, name: str) -> bool:
        try:
            self._resolve(name)
            return True
        except (NotFoundError, InputError):
            return False

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def chunks(self, name: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        m = self._resolve(name)
        return self._chunks(m, chunk_size)

    def _chunks(self, m: _Member, chunk_size: int) -> Iterator[bytes]:
        with open(self.tar_path, "rb") as f:
            f.seek(m.offset)
            left = m.size
            while left > 0:
                b = f.read(min(chunk_size, left))
                if not b:
                    raise InputError(f"{self.what}: archive {self.source} is truncated")
                left -= len(b)
                yield b

    def head(self, name: str, n: int = 8) -> bytes:
        m = self._resolve(name)
        with open(self.tar_path, "rb") as f:
            f.seek(m.offset)
            return f.read(min(n, m.size))

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        m = self._resolve(name)
        if m.size > limit:
            raise InputError(f"{self.what}: {name} is too large ({m.size} bytes)")
        return b"".join(self._chunks(m, CHUNK))

    def close(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None


def _blob_path(d: Digest) -> str:
    return f"blobs/{d.algorithm}/{d.hex}"


# ------------------------------------------------------------------------------------------
# oci-archive


class OciArchiveSource:
    """An image from a tar of an OCI layout (what ``skopeo copy … oci-archive:`` writes)."""

    def __init__(self, path: Path, tag: str | None = None, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.tag = tag
        self.name = name or (
            f"oci-archive:{self.path}:{tag}" if tag else f"oci-archive:{self.path}"
        )
        self.tar = TarIndex(self.path, self.name)
        if not self.tar.exists("index.json"):
            self.tar.close()
            raise InputError(f"{self.name}: not an OCI archive (no index.json inside)")

    def resolve(self) -> Descriptor:
        try:
            entries = list(Index.parse(self.tar.read("index.json")).manifests)
        except InputError as e:
            raise InputError(f"{self.name}: bad index.json: {e.message}") from None
        return select_entry(entries, self.tag, self.name)

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        raw = self.tar.read(_blob_path(desc.digest), limit=max(desc.size, 0) + 1)
        return verify_manifest_bytes(raw, desc, self.name)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self.tar.chunks(_blob_path(desc.digest))

    def close(self) -> None:
        self.tar.close()


def _tarinfo(name: str, size: int = 0, *, is_dir: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if is_dir:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
    else:
        ti.size = size
        ti.mode = 0o644
    return ti


class _AtomicTar:
    """A tar written to a temp file next to ``target`` and renamed over it on ``finish``."""

    def __init__(self, target: Path) -> None:
        self.target = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise StoreError(f"cannot create {target}: {e.strerror}") from None
        self.tmp = Path(tmp)
        self.f = os.fdopen(fd, "wb")
        self.tf = tarfile.TarFile(fileobj=self.f, mode="w", format=tarfile.PAX_FORMAT)

    def add_dir(self, name: str) -> None:
        self.tf.addfile(_tarinfo(name, is_dir=True))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tf.addfile(_tarinfo(name, len(data)), io.BytesIO(data))

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as f:
            self.tf.addfile(_tarinfo(name, os.fstat(f.fileno()).st_size), f)

    def finish(self) -> None:
        self.tf.close()
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.tf.close()
        with contextlib.suppress(Exception):
            self.f.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def _scratch_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".d", dir=target.parent))


class OciArchiveSink:
    """Write an image as a tar of an OCI layout; the file appears atomically on ``commit``."""

    def __init__(self, path: Path, tag: str | None = None, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.tag = tag
        self.name = name or (
            f"oci-archive:{self.path}:{tag}" if tag else f"oci-archive:{self.path}"
        )
        try:
            self._dir = _scratch_dir(self.path)
        except OSError as e:
            raise StoreError(
                f"{self.name}: cannot create a scratch directory: {e.strerror}"
            ) from None
        self._layout = LayoutSink(self._dir, tag, name=self.name)

    def has_blob(self, desc: Descriptor) -> bool:
        return self._layout.has_blob(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self._layout.put_blob(desc, chunks)

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        return self._layout.put_manifest(raw, media_type, root=root)

    def commit(self) -> None:
        self._layout.commit()
        out = _AtomicTar(self.path)
        try:
            out.add_bytes("oci-layout", (self._dir / "oci-layout").read_bytes())
            out.add_bytes("index.json", (self._dir / "index.json").read_bytes())
            out.add_dir("blobs")
            for alg_dir in sorted(p for p in (self._dir / "blobs").iterdir() if p.is_dir()):
                out.add_dir(f"blobs/{alg_dir.name}")
                for blob in sorted(alg_dir.iterdir()):
                    out.add_file(f"blobs/{alg_dir.name}/{blob.name}", blob)
            out.finish()
        except BaseException:
            out.abort()
            raise
        self.close()  # the scratch layout is no longer needed

    def close(self) -> None:
        self._layout.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# docker-archive


def _familiar_tag(ref: Reference) -> str:
    return ref.without_tag().familiar + f":{ref.tag}" if ref.tag else ref.familiar


def _parse_ref(s: str, where: str) -> Reference:
    try:
        ref = Reference.parse(s)
    except InputError as e:
        raise UsageError(f"{where}: {e.message}") from None
    return ref


class DockerArchiveSource:
    """One image of a ``docker save`` / ``skopeo`` docker-archive, presented as a Docker
    schema2 manifest built from ``manifest.json`` (layer media types follow each layer's real
    compression; digests are computed from the bytes in the archive).

    ``ref`` picks the image by one of its RepoTags, or ``@N`` by position; without it the
    archive must hold exactly one image.
    """

    def __init__(self, path: Path, ref: str | None = None, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.ref = ref
        self.name = name or (
            f"docker-archive:{self.path}:{ref}" if ref else f"docker-archive:{self.path}"
        )
        self.tar = TarIndex(self.path, self.name)
        self._blobs: dict[Digest, str] = {}
        self._manifest: Manifest | None = None

    def _entry(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.tar.read("manifest.json"))
        except NotFoundError:
            raise InputError(
                f"{self.name}: no manifest.json in the archive (pre-1.10 docker save format is not supported)"
            ) from None
        except ValueError as e:
            raise InputError(f"{self.name}: manifest.json is not valid JSON ({e})") from None
        if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
            raise InputError(f"{self.name}: manifest.json must be a JSON array of objects")
        if not doc:
            raise NotFoundError(f"{self.name}: the archive holds no images")
        if self.ref is None:
            if len(doc) != 1:
                raise UsageError(
                    f"{self.name}: the archive holds {len(doc)} images; pick one with :REF or :@N"
                )
            return doc[0]
        if self.ref.startswith("@") and self.ref[1:].isdigit():
            i = int(self.ref[1:])
            if i >= len(doc):
                raise NotFoundError(
                    f"{self.name}: image index {i} out of range ({len(doc)} images)"
                )
            return doc[i]
        want = str(_parse_ref(self.ref, self.name))
        for item in doc:
            for t in item.get("RepoTags") or []:
                with contextlib.suppress(InputError):
                    if isinstance(t, str) and str(Reference.parse(t)) == want:
                        return item
        raise NotFoundError(f"{self.name}: no image tagged {self.ref} in the archive")

    def _build(self) -> Manifest:
        if self._manifest is not None:
            return self._manifest
        entry = self._entry()
        cfg_name = entry.get("Config")
        layers = entry.get("Layers")
        if not isinstance(cfg_name, str) or not isinstance(layers, list):
            raise InputError(f"{self.name}: manifest.json entry lacks 'Config' or 'Layers'")
        cfg_raw = self.tar.read(cfg_name)
        cfg_digest = Digest.from_bytes(cfg_raw)
        m = _HEX64.fullmatch(posixpath.normpath(cfg_name))
        if m and m.group(1) != cfg_digest.hex:
            raise IntegrityError(f"{self.name}: config {cfg_name} does not match its name")
        try:
            diff_ids = ImageConfig.parse(cfg_raw).diff_ids
        except InputError as e:
            raise InputError(f"{self.name}: bad image config: {e.message}") from None
        if len(diff_ids) != len(layers):
            raise InputError(
                f"{self.name}: config lists {len(diff_ids)} layers, manifest.json {len(layers)}"
            )
        self._blobs[cfg_digest] = cfg_name
        descs: list[Descriptor] = []
        for layer_name, diff_id in zip(layers, diff_ids):
            if not isinstance(layer_name, str):
                raise InputError(f"{self.name}: manifest.json 'Layers' must be strings")
            descs.append(self._layer(layer_name, diff_id))
        manifest = Manifest.build(
            Descriptor(mt.DOCKER_CONFIG, cfg_digest, len(cfg_raw)),
            descs,
            media_type=mt.DOCKER_MANIFEST,
        )
        self._manifest = manifest
        return manifest

    def _layer(self, layer_name: str, diff_id: Digest) -> Descriptor:
        comp = compression_of(self.tar.head(layer_name, 4))
        outer = Digester()
        inner = Digester(diff_id.algorithm)

        def raw_chunks() -> Iterator[bytes]:
            for b in self.tar.chunks(layer_name):
                outer.update(b)
                yield b

        for b in decompressed_chunks(raw_chunks(), comp):
            inner.update(b)
        if inner.digest() != diff_id:
            raise IntegrityError(
                f"{self.name}: layer {layer_name} does not match diffID {diff_id} from the config"
            )
        media = {
            "gzip": mt.DOCKER_LAYER_GZIP,
            "zstd": mt.DOCKER_LAYER_ZSTD,
            "none": mt.DOCKER_LAYER,
        }[comp]
        self._blobs[outer.digest()] = layer_name
        return Descriptor(media, outer.digest(), outer.size)

    def resolve(self) -> Descriptor:
        return self._build().descriptor

    def fetch_manifest(self, desc: Descriptor) -> bytes:
        m = self._build()
        if desc.digest != m.digest:
            raise NotFoundError(f"{self.name}: no manifest {desc.digest} in the archive")
        return m.raw

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        self._build()
        name = self._blobs.get(desc.digest)
        if name is None:
            raise NotFoundError(f"{self.name}: no blob {desc.digest} in the archive")
        return self.tar.chunks(name)

    def close(self) -> None:
        self.tar.close()


class DockerArchiveSink:
    """Write one platform's image as a ``docker load``-able tarball."""

    single_platform = True

    def __init__(self, path: Path, ref: str | None = None, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or (
            f"docker-archive:{self.path}:{ref}" if ref else f"docker-archive:{self.path}"
        )
        self.ref: Reference | None = None
        if ref:
            r = _parse_ref(ref, self.name)
            if r.digest is not None:
                raise UsageError(
                    f"{self.name}: docker archives name images by tag, not digest",
                    hint="use NAME:TAG",
                )
            self.ref = r if r.tag is not None else r.with_tag("latest")
        try:
            self._dir = _scratch_dir(self.path)
        except OSError as e:
            raise StoreError(
                f"{self.name}: cannot create a scratch directory: {e.strerror}"
            ) from None
        self._store = ContentStore(self._dir, fsync=False)
        self._root: Descriptor | None = None

    def has_blob(self, desc: Descriptor) -> bool:
        return self._store.has(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        if not self._store.has(desc):
            self._store.ingest(desc, chunks)

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        if mt.is_index(media_type):
            raise UsageError(
                f"{self.name}: docker-archive holds a single platform; pass --platform",
            )
        desc = Descriptor.of(media_type, raw)
        self._store.ingest(desc, [raw])
        if root:
            self._root = desc
        return desc.digest

    def commit(self) -> None:
        if self._root is None:
            raise UsageError(f"{self.name}: nothing to commit (no image manifest was written)")
        manifest = Manifest.parse(self._store.read_bytes(self._root), self._root.media_type)
        cfg_raw = self._store.read_bytes(manifest.config)
        diff_ids = ImageConfig.parse(cfg_raw).diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InputError(
                f"{self.name}: config lists {len(diff_ids)} diffIDs but the manifest has "
                f"{len(manifest.layers)} layers"
            )
        out = _AtomicTar(self.path)
        try:
            cfg_name = f"{manifest.config.digest.hex}.json"
            out.add_bytes(cfg_name, cfg_raw)
            names: list[str] = []
            written: set[str] = set()
            for layer, diff_id in zip(manifest.layers, diff_ids):
                lname = f"{diff_id.hex}.tar"
                names.append(lname)
                if lname in written:
                    continue
                tmp = self._decompress_layer(layer, diff_id)
                try:
                    out.add_file(lname, tmp)
                finally:
                    tmp.unlink()
                written.add(lname)
            entry = {
                "Config": cfg_name,
                "RepoTags": [_familiar_tag(self.ref)] if self.ref else [],
                "Layers": names,
            }
            out.add_bytes("manifest.json", canonical_json([entry]))
            out.finish()
        except BaseException:
            out.abort()
            raise
        self.close()

    def _decompress_layer(self, layer: Descriptor, diff_id: Digest) -> Path:
        if not mt.is_layer(layer.media_type):
            raise InputError(f"{self.name}: {layer.media_type} is not a layer media type")
        comp = compression_of(_head(self._store, layer))
        d = Digester(diff_id.algorithm)
        tmp = self._dir / f"layer-{diff_id.hex}.tar"
        with open(tmp, "wb") as f:
            for b in decompressed_chunks(self._store.iter_chunks(layer), comp):
                d.update(b)
                f.write(b)
        if d.digest() != diff_id:
            tmp.unlink()
            raise IntegrityError(
                f"{self.name}: layer {layer.digest} uncompresses to {d.digest()}, "
                f"but the config says {diff_id}"
            )
        return tmp

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _head(store: ContentStore, desc: Descriptor, n: int = 4) -> bytes:
    with store.open(desc) as f:
        return f.read(n)


__all__ = [
    "DockerArchiveSink",
    "DockerArchiveSource",
    "OciArchiveSink",
    "OciArchiveSource",
    "TarIndex",
    "compression_of",
    "decompressed_chunks",
    "safe_member_path",
]
