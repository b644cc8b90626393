"""Walk an image's layers as tar streams and compute the visible filesystem, without unpacking.

Each layer is read exactly once, as a stream (gzip/zstd/plain detected by magic); several are
read concurrently, and the results applied strictly bottom-up. Per layer the entries are
collected first and whiteouts applied to the lower layers afterwards,
because a whiteout only ever hides *lower* content, wherever it sits in the tar (``.wh.name``
deletes ``name`` and everything below it, ``.wh..wh..opq`` hides a directory's lower children).
A non-directory over a directory replaces the whole subtree, as overlayfs does.

Only the metadata of every entry is kept (one small node per path). File *contents* are kept
only for paths a cataloger asked for by pattern (bounded: files over ``MAX_CAPTURE`` are
skipped with a note), and executables may be handed to streaming scanners (Go build info) that
keep only what they extract. Each visible path remembers the layer it came from.

Every layer blob is verified against its descriptor digest and size while it is read; a
mismatch fails the walk (nothing from an unverified layer is reported).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from xarch.archive.compress import decompress_stream
from xarch.archive.safepath import UnsafePathError, clean_name
from xarch.archive.whiteout import classify
from xarch.attest.sbom._tar import DIR, LNK, REG, SYM, Member, TarFormatError, TarReader
from xarch.attest.sbom.model import LayerRef
from xarch.errors import IntegrityError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest, Digester

MAX_CAPTURE = 64 << 20  # largest file whose whole content is kept in memory
MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS
_TAR_BUFSIZE = 1 << 20

__all__ = [
    "MAX_CAPTURE",
    "ExecutableScanner",
    "FileRecord",
    "FileRequest",
    "FileSystemView",
    "ImageReader",
    "ScanRecord",
    "glob_to_regex",
    "walk_layers",
]


class ImageReader(Protocol):
    """What the walker needs from an image: its layers in order and a way to read each blob."""

    def layers(self) -> list[tuple[Descriptor, Digest]]:
        """(layer descriptor, diffID) from the bottom layer to the top."""
        ...

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """The raw (possibly compressed) bytes of a layer blob; the caller closes it."""
        ...


class ExecutableScanner(Protocol):
    """Streams through executables during the walk and keeps a small extract (or nothing)."""

    name: str

    def scan(self, stream: BinaryIO, size: int) -> bytes | None: ...


@dataclass(frozen=True)
class FileRequest:
    """Paths (globs relative to ``/``: ``*`` within a component, ``**/`` any depth) whose
    content a cataloger needs. ``history`` also keeps the earlier versions of the file from
    lower layers (used to tell which layer introduced a package into a package database)."""

    patterns: tuple[str, ...]
    history: bool = False


@dataclass(frozen=True)
class FileRecord:
    path: str  # absolute, e.g. "/var/lib/dpkg/status"
    layer: LayerRef
    data: bytes
    # Earlier versions from lower layers, oldest first (only for history requests); the
    # chain restarts at a whiteout.
    history: tuple[tuple[LayerRef, bytes], ...] = ()


@dataclass(frozen=True)
class ScanRecord:
    path: str
    layer: LayerRef
    scanner: str
    result: bytes


def glob_to_regex(pattern: str) -> str:
    """Translate a path glob to a regex (no anchors). ``**/`` matches zero or more dirs."""
    out: list[str] = []
    i = 0
    p = pattern.lstrip("/")
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(p[i]))
            i += 1
    return "".join(out)


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    pats = sorted(set(patterns))
    if not pats:
        return None
    return re.compile("|".join(f"(?:{glob_to_regex(p)})" for p in pats), re.DOTALL)


# -- node tree ------------------------------------------------------------------------------

_DIR, _FILE, _SYMLINK, _OTHER = 0, 1, 2, 3


class _Node:
    __slots__ = ("children", "data", "history", "kind", "layer", "linkname", "path", "scans")

    def __init__(self, path: str, kind: int, layer: int, linkname: str = "") -> None:
        self.path = path
        self.kind = kind
        self.layer = layer
        self.linkname = linkname
        self.children: dict[str, _Node] | None = {} if kind == _DIR else None
        self.data: bytes | None = None
        self.history: list[tuple[int, bytes]] | None = None
        self.scans: dict[str, bytes] | None = None


class _Tree:
    def __init__(self) -> None:
        self.root = _Node("", _DIR, -1)
        # The last parent_dir answer: tar entries come grouped by directory, so most lookups
        # repeat it. Dropped when paths are deleted (whiteouts, opaque dirs). Replacing an
        # entry needs nothing: its own parent_dir call just cached its parent, which stays.
        self._last: tuple[str, _Node] | None = None

    def forget(self) -> None:
        self._last = None

    def resolve(self, path: str, *, follow_last: bool = True) -> _Node | None:
        """Look a path up the way the kernel would inside the image root: symlinks in any
        component are followed (absolute targets restart at the root, ``..`` stops there)."""
        parts: deque[str] = deque(path.split("/"))
        stack: list[_Node] = [self.root]
        hops = 0
        while parts:
            comp = parts.popleft()
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            children = stack[-1].children
            if children is None:
                return None
            child = children.get(comp)
            if child is None:
                return None
            if child.kind == _SYMLINK and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                if child.linkname.startswith("/"):
                    stack = [self.root]
                parts.extendleft(reversed(child.linkname.split("/")))
                continue
            stack.append(child)
        return stack[-1]

    def parent_dir(self, path: str, layer: int) -> _Node:
        """The directory node ``path`` (root-relative, clean) lives in, created if missing.
        Symlinked parent directories are followed (as containerd's apply does)."""
        parent = path.rpartition("/")[0]
        last = self._last
        if last is not None and last[0] == parent:
            return last[1]
        node = self.root
        walked: list[str] = []
        for comp in parent.split("/") if parent else ():
            walked.append(comp)
            assert node.children is not None
            child = node.children.get(comp)
            if child is not None and child.kind == _SYMLINK:
                target = self.resolve("/".join(walked))
                if target is not None and target.kind == _DIR:
                    node = target
                    continue
            if child is None or child.kind != _DIR:
                child = _Node(f"{node.path}/{comp}" if node.path else comp, _DIR, layer)
                node.children[comp] = child  # type: ignore[index]
            node = child
        self._last = (parent, node)
        return node

    def delete(self, path: str) -> None:
        self._last = None
        parent, _, name = path.rpartition("/")
        p = self.resolve(parent, follow_last=True) if parent else self.root
        if p is not None and p.children is not None:
            p.children.pop(name, None)

    def iter_nodes(self) -> Iterator[_Node]:
        stack = [self.root]
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            if n is not self.root:
                yield n


class FileSystemView:
    """The final visible filesystem: requested file contents and scanner results."""

    def __init__(self, tree: _Tree, layers: Sequence[LayerRef]) -> None:
        self._tree = tree
        self.layers = tuple(layers)
        files: dict[str, FileRecord] = {}
        scans: list[ScanRecord] = []
        for n in tree.iter_nodes():
            if n.data is not None:
                hist = tuple((self.layers[i], d) for i, d in n.history or ())
                files["/" + n.path] = FileRecord("/" + n.path, self.layers[n.layer], n.data, hist)
            if n.scans:
                for name, res in n.scans.items():
                    scans.append(ScanRecord("/" + n.path, self.layers[n.layer], name, res))
        self.files = dict(sorted(files.items()))
        self.scans = tuple(sorted(scans, key=lambda s: (s.path, s.scanner)))

    def get(self, path: str) -> FileRecord | None:
        """The captured file at ``path``, following symlinks (None if absent or not captured)."""
        rec = self.files.get(path)
        if rec is not None:
            return rec
        n = self._tree.resolve(path)
        if n is None or n.data is None:
            return None
        return self.files.get("/" + n.path)

    def exists(self, path: str) -> bool:
        return self._tree.resolve(path) is not None

    def is_symlink(self, path: str) -> bool:
        n = self._tree.resolve(path, follow_last=False)
        return n is not None and n.kind == _SYMLINK

    def glob(self, pattern: str) -> list[FileRecord]:
        rx = re.compile(glob_to_regex(pattern), re.DOTALL)
        return [r for p, r in self.files.items() if rx.fullmatch(p[1:])]


# -- blob reading ---------------------------------------------------------------------------


class _VerifyingReader(io.RawIOBase):
    """Pass-through reader that hashes and counts; ``finish`` drains and checks the digest."""

    def __init__(self, raw: BinaryIO, desc: Descriptor) -> None:
        self._raw = raw
        self._desc = desc
        self._dg = Digester(desc.digest.algorithm)
        self._readinto: Callable[[bytearray | memoryview], int | None] | None = getattr(
            raw, "readinto", None
        )

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._readinto is not None:  # straight into the caller's buffer: no copy
            n = self._readinto(b) or 0
            if not n:
                return 0
            self._dg.update(memoryview(b)[:n])
        else:
            data = self._raw.read(len(b))
            if not data:
                return 0
            n = len(data)
            b[:n] = data
            self._dg.update(data)
        if self._dg.size > self._desc.size:
            raise IntegrityError(
                f"layer {self._desc.digest}: more data than the {self._desc.size} bytes "
                "its descriptor declares"
            )
        return n

    def finish(self) -> None:
        while self.read(_TAR_BUFSIZE):
            pass  # the tar end marker may be followed by padding: hash it all
        if self._dg.size != self._desc.size:
            raise IntegrityError(
                f"layer {self._desc.digest}: size mismatch (descriptor {self._desc.size}, "
                f"read {self._dg.size}; truncated blob?)"
            )
        got = self._dg.digest()
        if got != self._desc.digest:
            raise IntegrityError(
                f"layer {self._desc.digest}: digest mismatch (content hashes to {got})",
                hint="the blob is corrupt or was tampered with; re-pull the image",
            )


class ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what ImageSource.open_blob gives)."""

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None] | None = None) -> None:
        self._it = chunks
        self._buf = b""
        self._close = close

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._it, None)
            if nxt is None:
                return 0
            self._buf = bytes(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            closer = getattr(self._it, "close", None)
            if callable(closer):
                closer()
            if self._close is not None:
                self._close()
        super().close()


# -- the walk -------------------------------------------------------------------------------


def walk_layers(
    reader: ImageReader,
    requests: Sequence[FileRequest],
    scanners: Sequence[ExecutableScanner] = (),
    *,
    notes: list[str] | None = None,
    max_capture: int = MAX_CAPTURE,
    workers: int | None = None,
) -> FileSystemView:
    """Read every layer once and return the visible filesystem with the requested contents.

    Layers are read concurrently (``workers`` threads; decompression and hashing release the
    GIL) and applied strictly in order, bottom to top.
    """
    notes = notes if notes is not None else []
    wanted = _compile(p for r in requests for p in r.patterns)
    with_history = _compile(p for r in requests if r.history for p in r.patterns)
    layers_in = reader.layers()
    layer_refs = [LayerRef(i, d.digest, diff) for i, (d, diff) in enumerate(layers_in)]
    tree = _Tree()
    n = workers if workers is not None else min(4, os.cpu_count() or 1)

    def read(i: int) -> _LayerScan:
        return _read_layer(reader, layers_in[i][0], i, wanted, scanners, max_capture)

    if n <= 1 or len(layers_in) <= 1:
        for i in range(len(layers_in)):
            _apply(tree, read(i), with_history, notes)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sbom-layer") as pool:
            futures = [pool.submit(read, i) for i in range(len(layers_in))]
            try:
                for fut in futures:
                    _apply(tree, fut.result(), with_history, notes)
            finally:
                for fut in futures:
                    fut.cancel()
    return FileSystemView(tree, layer_refs)


@dataclass
class _LayerScan:
    """One layer's entries and deletions, read but not yet applied."""

    index: int
    entries: list[tuple[str, _Node]]
    opaque: list[str]
    whiteouts: list[str]
    hardlinks: list[tuple[_Node, str]]  # links whose target is in a lower layer
    notes: list[str]


def _read_layer(
    reader: ImageReader,
    desc: Descriptor,
    idx: int,
    wanted: re.Pattern[str] | None,
    scanners: Sequence[ExecutableScanner],
    max_capture: int,
) -> _LayerScan:
    scan = _LayerScan(idx, [], [], [], [], [])
    by_path: dict[str, _Node] = {}
    raw = reader.open_blob(desc)
    try:
        verifier = _VerifyingReader(raw, desc)
        stream = decompress_stream(io.BufferedReader(verifier, _TAR_BUFSIZE), desc.media_type)
        tar = TarReader(stream)
        try:
            for m in tar:
                _entry(m, tar, desc, scan, by_path, wanted, scanners, max_capture)
        except (EOFError, OSError, ValueError) as e:
            if isinstance(e, IntegrityError):
                raise
            raise IntegrityError(
                f"layer {desc.digest} is not a readable tar stream: {e}",
                hint="the layer blob is corrupt or not a layer",
            ) from None
        except IntegrityError as e:
            if isinstance(e, TarFormatError):
                # a digest mismatch explains a broken tar better than the tar error does
                with contextlib.suppress(IntegrityError, OSError, ValueError, EOFError):
                    verifier.finish()
                raise IntegrityError(f"layer {desc.digest}: {e.message}") from None
            raise
        verifier.finish()
    finally:
        raw.close()
    return scan


def _apply(
    tree: _Tree, scan: _LayerScan, with_history: re.Pattern[str] | None, notes: list[str]
) -> None:
    idx = scan.index
    notes.extend(scan.notes)
    # Deletions hide lower layers only, so they are applied before this layer's entries.
    tree.forget()
    for d in scan.opaque:
        n = tree.resolve(d) if d else tree.root
        if n is not None and n.children is not None:
            n.children.clear()
    for w in scan.whiteouts:
        tree.delete(w)
    for node, target in scan.hardlinks:
        src = tree.resolve(target, follow_last=False)
        if src is not None:
            node.data = src.data if node.data is _WANTED else None
            node.scans = src.scans
        elif node.data is _WANTED:
            node.data = None
    for path, node in scan.entries:
        if node.data is _WANTED:
            node.data = None  # a hardlink to something that is not there
        parent = tree.parent_dir(path, idx)
        assert parent.children is not None
        name = path.rpartition("/")[2]
        node.path = f"{parent.path}/{name}" if parent.path else name  # physical location
        existing = parent.children.get(name)
        if node.kind == _DIR and existing is not None and existing.kind == _DIR:
            existing.layer = idx if existing.layer < 0 else existing.layer
            continue  # directories merge; their children stay visible
        if (
            with_history is not None
            and existing is not None
            and existing.data is not None
            and node.data is not None
            and with_history.fullmatch(path)
        ):
            node.history = [*(existing.history or ()), (existing.layer, existing.data)]
        parent.children[name] = node


# Marker: a hardlink whose content is wanted, resolved when the layer is applied.
_WANTED = b"\x00<wanted>"


def _entry(
    m: Member,
    tar: TarReader,
    desc: Descriptor,
    scan: _LayerScan,
    by_path: dict[str, _Node],
    wanted: re.Pattern[str] | None,
    scanners: Sequence[ExecutableScanner],
    max_capture: int,
) -> None:
    idx = scan.index
    try:
        path = clean_name(m.name)
    except UnsafePathError as e:
        raise IntegrityError(f"layer {desc.digest}: {e.message}") from None
    if not path:
        return
    parent, _, base = path.rpartition("/")
    kind, rest = classify(base)
    if kind == "opaque":
        scan.opaque.append(parent)
        return
    if kind == "whiteout":
        scan.whiteouts.append(f"{parent}/{rest}" if parent else rest)
        return
    if kind == "meta" or "/.wh..wh." in "/" + parent:
        return  # AUFS bookkeeping (hardlink dirs), never image content
    if m.type == DIR:
        node = _Node(path, _DIR, idx)
    elif m.type == SYM:
        node = _Node(path, _SYMLINK, idx, m.linkname)
    elif m.type == LNK:
        node = _Node(path, _FILE, idx)
        try:
            target = clean_name(m.linkname, what="hardlink target")
        except UnsafePathError as e:
            raise IntegrityError(f"layer {desc.digest}: {e.message}") from None
        want = wanted is not None and wanted.fullmatch(path) is not None
        src = by_path.get(target)
        if src is not None:
            node.data = src.data if want else None
            node.scans = src.scans
        else:  # target in a lower layer: resolved when this layer is applied
            node.data = _WANTED if want else None
            scan.hardlinks.append((node, target))
    elif m.type == REG:
        node = _Node(path, _FILE, idx)
        if wanted is not None and wanted.fullmatch(path):
            if m.size > max_capture:
                scan.notes.append(
                    f"/{path} ({m.size} bytes) in layer {desc.digest} is larger than "
                    f"{max_capture} bytes; not read"
                )
            else:
                node.data = tar.read_content()
        elif scanners and m.mode & 0o111 and m.size >= 64:
            # The stream can be read only once, so only the first scanner sees executables.
            sc = scanners[0]
            res = sc.scan(cast(BinaryIO, tar), m.size)
            if res is not None:
                node.scans = {sc.name: res}
    else:
        node = _Node(path, _OTHER, idx)
    scan.entries.append((path, node))
    by_path[path] = node
