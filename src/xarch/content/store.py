"""Local content-addressed blob store laid out as an OCI image layout.

``<root>/blobs/<alg>/<hex>`` holds blobs, ``<root>/index.json`` the named roots and
``<root>/oci-layout`` the layout version, so the directory is readable by skopeo/umoci as is.

Writes never expose partial or unverified content: ``ingest`` streams into a unique temp file
under ``<root>/ingest/`` (same filesystem, outside ``blobs/`` so layout readers never see it),
counts and hashes while writing, fsyncs, checks size and digest, then ``os.replace``s it into
place and fsyncs the directory. Two processes ingesting the same blob both write their own temp
file and the second rename simply replaces identical bytes. ``index.json`` is only changed by
read-modify-write under an exclusive ``flock`` on ``<root>/.lock``.

A writer holds an exclusive ``flock`` on its own temp file from creation until the rename, and
the kernel drops it when the writer dies: a temp file that is old *and* unlocked was left by a
crashed or killed writer, and :meth:`ContentStore.cleanup_ingest` (run by every ingest and by
prune) removes it; a locked one is a live download, however slow, and is never touched.

Garbage collection must not delete blobs a concurrent writer has ingested but not yet
referenced; writers therefore hold a *shared* flock on ``<root>/.gc.lock`` for their whole
session and ``prune`` takes it exclusively (see :meth:`ContentStore.writer_session`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from xarch.errors import IntegrityError, NotFoundError, StoreError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import SUPPORTED_ALGORITHMS, Digest, Digester
from xarch.oci.manifest import Index, Manifest, canonical_json, parse_any

CHUNK = 1 << 20
# Manifests and indexes are small; anything bigger is never parsed as one (bounds memory when
# scanning for referrers during GC).
MAX_MANIFEST_SIZE = 4 << 20
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
# A root whose children are present only in part (the pull cache fetches only the platforms a
# build needs): verify reports what is corrupt below it, not what was never fetched.
PARTIAL = "io.xarch.partial"
# Temp files older than this whose writer is gone (no flock on them) are removed.
STALE_INGEST_SECONDS = 3600


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _file_mode() -> int:
    """0o666 minus the process umask: what a plain open() would give (mkstemp gives 0o600)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


FILE_MODE = _file_mode()


def _as_digest(d: Descriptor | Digest | str) -> Digest:
    if isinstance(d, Descriptor):
        return d.digest
    return Digest(d)


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename (+ directory fsync)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)


class ContentStore:
    """Blobs + ``index.json`` of one OCI layout directory. Safe across threads and processes."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    # -- layout ------------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def ingest_dir(self) -> Path:
        return self.root / "ingest"

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def is_layout(self) -> bool:
        return (self.root / "oci-layout").is_file()

    def init(self) -> None:
        """Create the layout skeleton if missing (idempotent, safe to race)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.blobs_dir / "sha256").mkdir(parents=True, exist_ok=True)
            marker = self.root / "oci-layout"
            if not marker.exists():
                atomic_write(marker, OCI_LAYOUT_CONTENT, fsync=self.fsync)
            if not self.index_path.exists():
                with self.index_lock():
                    if not self.index_path.exists():
                        atomic_write(self.index_path, _index_bytes([]), fsync=self.fsync)
        except OSError as e:
            raise StoreError(
                f"cannot initialise OCI layout at {self.root}: {e.strerror}",
                hint="check the path and its permissions",
            ) from None

    # -- blobs -------------------------------------------------------------------------------
    def path(self, digest: Descriptor | Digest | str) -> Path:
        d = _as_digest(digest)
        return self.blobs_dir / d.algorithm / d.hex

    def has(self, digest: Descriptor | Digest | str) -> bool:
        p = self.path(digest)
        if isinstance(digest, Descriptor):
            try:
                return p.stat().st_size == digest.size
            except OSError:
                return False
        return p.is_file()

    def size(self, digest: Descriptor | Digest | str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {_as_digest(digest)} not found in {self.root}") from None

    def open(self, digest: Descriptor | Digest | str, *, buffered: bool = True) -> IO[bytes]:
        """The blob's file for reading (unverified). ``buffered=False`` gives the raw file, for
        readers that bring their own buffer."""
        try:
            return self.path(digest).open("rb", buffering=-1 if buffered else 0)
        except FileNotFoundError:
            raise NotFoundError(f"blob {_as_digest(digest)} not found in {self.root}") from None

    def iter_chunks(
        self, digest: Descriptor | Digest | str, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        with self.open(digest) as f:
            while True:
                b = f.read(chunk_size)
                if not b:
                    return
                yield b

    def read_bytes(self, digest: Descriptor | Digest | str, *, verify: bool = True) -> bytes:
        """Whole blob in memory; verified against its name (and descriptor size) by default."""
        d = _as_digest(digest)
        with self.open(d) as f:
            data = f.read()
        if verify:
            if isinstance(digest, Descriptor) and len(data) != digest.size:
                raise IntegrityError(
                    f"blob {d} in {self.root} has size {len(data)}, descriptor says {digest.size}"
                )
            if not d.verify(data):
                raise IntegrityError(
                    f"blob {d} in {self.root} is corrupt (content does not match its digest)",
                    hint="run the store verify command and re-pull the image",
                )
        return data

    def ingest(
        self,
        expected: Descriptor | Digest | str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
    ) -> Path:
        """Store a blob from ``chunks`` if (and only if) its digest, and size when known, match.

        ``size`` defaults to the descriptor's size when a Descriptor is given. On mismatch the
        temp file is removed, the store is unchanged, and IntegrityError is raised.
        """
        digest = _as_digest(expected)
        if size is None and isinstance(expected, Descriptor):
            size = expected.size
        final = self.path(digest)
        self.cleanup_ingest()
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = self._mkstemp(digest)
        except OSError as e:
            raise StoreError(f"cannot write blob into {self.root}: {e.strerror}") from None
        dg = Digester(digest.algorithm)
        reading = False  # errors raised by the chunk source pass through unchanged
        try:
            with os.fdopen(fd, "wb") as f:
                # Held until the file is closed, i.e. after the rename below: while it is, no
                # cleanup takes this file for a crashed writer's leftover.
                with contextlib.suppress(OSError):
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.fchmod(f.fileno(), FILE_MODE)
                it = iter(chunks)
                while True:
                    reading = True
                    chunk = next(it, None)
                    reading = False
                    if chunk is None:
                        break
                    dg.update(chunk)
                    if size is not None and dg.size > size:
                        raise IntegrityError(
                            f"blob {digest}: received more than the expected {size} bytes"
                        )
                    f.write(chunk)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
                if size is not None and dg.size != size:
                    raise IntegrityError(
                        f"blob {digest}: size mismatch (expected {size} bytes, got {dg.size}; "
                        "truncated download?)"
                    )
                got = dg.digest()
                if got != digest:
                    raise IntegrityError(
                        f"blob {digest}: digest mismatch (content hashes to {got})"
                    )
                f.flush()
                os.replace(tmp, final)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError) and not reading:
                raise StoreError(
                    f"cannot write blob {digest} into {self.root}: {e.strerror}"
                ) from None
            raise
        if self.fsync:
            _fsync_dir(final.parent)
        return final

    def ingest_bytes(self, data: bytes, expected: Descriptor | Digest | str | None = None) -> Path:
        """Store in-memory bytes; when ``expected`` is None the digest is computed (sha256)."""
        if expected is None:
            expected = Digest.from_bytes(data)
        if self.has(expected) and not isinstance(expected, Descriptor):
            return self.path(expected)
        return self.ingest(expected, [data])

    def _mkstemp(self, digest: Digest) -> tuple[int, str]:
        # Retry once: a concurrent cleanup may remove the empty ingest dir between mkdir and mkstemp.
        for attempt in range(3):
            self.ingest_dir.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(
                    prefix=f"{digest.hex[:16]}-", suffix=".part", dir=self.ingest_dir
                )
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def delete(self, digest: Descriptor | Digest | str) -> bool:
        try:
            self.path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def walk(self) -> Iterator[tuple[Digest, int]]:
        """Every well-named blob as (digest, size); stray files are ignored."""
        if not self.blobs_dir.is_dir():
            return
        for alg_dir in sorted(self.blobs_dir.iterdir()):
            if alg_dir.name not in SUPPORTED_ALGORITHMS or not alg_dir.is_dir():
                continue
            for p in sorted(alg_dir.iterdir()):
                try:
                    d = Digest(f"{alg_dir.name}:{p.name}")
                except Exception:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    yield d, p.stat().st_size

    def cleanup_ingest(self, older_than: float = STALE_INGEST_SECONDS) -> int:
        """Remove temp files left by writers that are gone: older than ``older_than`` seconds
        (last written to) and not locked by a live writer. Returns how many were removed."""
        try:
            entries = list(os.scandir(self.ingest_dir))
        except OSError:
            return 0  # no ingest dir (nothing in flight) or unreadable: nothing to clean
        now = time.time()
        n = 0
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than:
                n += self._remove_abandoned(Path(e.path))
        return n

    @staticmethod
    def _remove_abandoned(path: Path) -> int:
        """1 if ``path`` had no writer (we got its lock) and was removed, else 0."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return 0  # gone meanwhile (renamed into blobs/ or cleaned by another process)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # a live writer holds it (or the filesystem cannot tell: keep it)
            # the name must still be the file we locked: a writer that finished renamed its
            # temp file away, and what is at the name now (if anything) is not ours to judge
            mine, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
            if (mine.st_dev, mine.st_ino) != (now.st_dev, now.st_ino):
                return 0
            os.unlink(path)
            return 1
        except OSError:
            return 0
        finally:
            os.close(fd)

    def remove_empty_ingest_dir(self) -> None:
        with contextlib.suppress(OSError):
            self.ingest_dir.rmdir()

    # -- locking -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, name: str, mode: int, timeout: float | None = None) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if timeout is None:
                fcntl.flock(fd, mode)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise StoreError(
                                f"{self.root} is in use by another xarch process",
                                hint="wait for running builds/pulls to finish and retry",
                            ) from None
                        time.sleep(0.05)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def index_lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock serialising ``index.json`` read-modify-write across processes."""
        return self._flock(".lock", fcntl.LOCK_EX)

    def writer_session(self) -> contextlib.AbstractContextManager[None]:
        """Shared lock held while a writer ingests blobs it will reference later (blocks GC)."""
        return self._flock(".gc.lock", fcntl.LOCK_SH)

    def gc_lock(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Exclusive GC lock: no writer session is in progress while held. With ``timeout``,
        StoreError if writers are still active after that many seconds."""
        return self._flock(".gc.lock", fcntl.LOCK_EX, timeout)

    # -- index.json --------------------------------------------------------------------------
    def read_index(self) -> list[Descriptor]:
        """Top-level descriptors of ``index.json`` (empty if the file does not exist)."""
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreError(f"cannot read {self.index_path}: {e.strerror}") from None
        try:
            return list(Index.parse(raw).manifests)
        except Exception as e:
            raise StoreError(
                f"corrupt {self.index_path}: {e}", hint="restore it or remove the layout"
            ) from None

    def update_index(self, fn: Callable[[list[Descriptor]], list[Descriptor]]) -> list[Descriptor]:
        """Atomically replace the index entries with ``fn(current)`` under the index lock."""
        self.init()
        with self.index_lock():
            new = fn(self.read_index())
            atomic_write(self.index_path, _index_bytes(new), fsync=self.fsync)
            return new

    # -- integrity ---------------------------------------------------------------------------
    def verify_all(self) -> list[str]:
        """Every problem found: corrupt blobs, missing referenced content, bad index entries."""
        problems: list[str] = []
        present: dict[Digest, int] = {}
        for d, size in self.walk():
            present[d] = size
            h = Digester(d.algorithm)
            try:
                for chunk in self.iter_chunks(d):
                    h.update(chunk)
            except (OSError, NotFoundError) as e:
                problems.append(f"blob {d}: unreadable ({e})")
                continue
            if h.digest() != d:
                problems.append(f"blob {d}: content hashes to {h.digest()}")
        try:
            roots = self.read_index()
        except StoreError as e:
            return [*problems, str(e)]
        seen: set[Digest] = set()
        for root in roots:
            label = root.annotations.get(REF_NAME, str(root.digest))
            partial = root.annotations.get(PARTIAL) == "true"
            self._verify_tree(root, label, present, seen, problems, partial=partial)
        return problems

    def _verify_tree(
        self,
        desc: Descriptor,
        label: str,
        present: dict[Digest, int],
        seen: set[Digest],
        problems: list[str],
        *,
        partial: bool = False,
        depth: int = 0,
    ) -> None:
        # Depth first, in order, on an explicit stack: stored content can nest indexes deeper
        # than Python's recursion limit (image-spec sets no limit).
        stack = [(desc, depth)]
        while stack:
            desc, depth = stack.pop()
            if desc.digest not in present:
                # below a partial root, a manifest never fetched is fine; a missing blob of a
                # manifest that is present is not
                if not (partial and depth == 1):
                    problems.append(f"{label}: {desc.media_type} {desc.digest} is missing")
                continue
            if present[desc.digest] != desc.size:
                problems.append(
                    f"{label}: {desc.digest} has size {present[desc.digest]}, descriptor says {desc.size}"
                )
                continue
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if not (mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)):
                continue
            try:
                doc = parse_any(self.read_bytes(desc.digest, verify=False), desc.media_type)
            except Exception as e:
                problems.append(f"{label}: cannot parse {desc.media_type} {desc.digest}: {e}")
                continue
            stack.extend((child, depth + 1) for child in reversed(children(doc)))


def children(doc: Manifest | Index) -> list[Descriptor]:
    """Descriptors a manifest/index references and owns (not its ``subject``)."""
    if isinstance(doc, Index):
        return list(doc.manifests)
    return [doc.config, *doc.layers]


def _index_bytes(entries: list[Descriptor]) -> bytes:
    return Index.build(entries).raw


__all__ = [
    "CHUNK",
    "MAX_MANIFEST_SIZE",
    "OCI_LAYOUT_CONTENT",
    "REF_NAME",
    "ContentStore",
    "atomic_write",
    "canonical_json",
    "children",
]
