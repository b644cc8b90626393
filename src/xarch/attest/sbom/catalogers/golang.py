"""Go modules compiled into executables, from the build info the Go linker embeds.

The linker writes a ``.go.buildinfo`` blob, 16-byte aligned, starting with the 14-byte magic
``\\xff Go buildinf:``, then the pointer size and a flags byte. Since Go 1.18 (flag bit 2,
"pointer-free") the 32-byte header is followed by two varint-length-prefixed strings: the Go
version and the module info. The module info (between 16-byte sentinels) is text:
``path``/``mod``/``dep``/``=>`` (replacement)/``build`` lines with tab-separated fields.
Older binaries store pointers into the data segment instead; they are reported, not decoded.

Executables are scanned as a stream while the layer is read (no size limit), so even large
static binaries cost one pass. Only the build info itself is kept (header and its two strings,
at most ``KEEP`` bytes), and one walk keeps at most ``MAX_KEPT`` bytes of it in all: an image
of thousands of crafted "binaries" cannot fill memory with build info.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import BinaryIO

from xarch.attest.sbom.catalogers import Context, purl
from xarch.attest.sbom.model import GOLANG, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRequest, FileSystemView

MAGIC = b"\xff Go buildinf:"
HEADER = 32
FLAG_POINTER_FREE = 0x2
KEEP = 1 << 20  # most bytes kept after the magic: header + version + module info
MAX_KEPT = 64 << 20  # most build info kept over all executables of one walk
_CHUNK = 1 << 20
ELF_MAGIC = b"\x7fELF"


class BuildInfoError(ValueError):
    pass


def _uvarint(b: bytes, pos: int) -> tuple[int, int]:
    x = shift = 0
    for i in range(pos, min(len(b), pos + 10)):
        c = b[i]
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, i + 1
        shift += 7
    raise BuildInfoError("bad varint")


def _vstring(b: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _uvarint(b, pos)
    if n > len(b) - pos:
        raise BuildInfoError("string runs past the build info")
    return b[pos : pos + n], pos + n


def _looks_valid(blob: bytes) -> bool:
    """A real build info header (not a stray copy of the magic string in rodata)."""
    if len(blob) < HEADER or not blob.startswith(MAGIC):
        return False
    if blob[14] not in (4, 8):
        return False
    if not blob[15] & FLAG_POINTER_FREE:
        return True  # old format: cannot validate further; the cataloger notes it
    try:
        vers, _ = _vstring(blob, HEADER)
    except BuildInfoError:
        return False
    return vers.startswith(b"go") or vers.startswith(b"devel")


def _extent(blob: bytes) -> int:
    """How many bytes of ``blob`` (a valid build info prefix) are the build info itself."""
    if not blob[15] & FLAG_POINTER_FREE:
        return HEADER  # old format: only the header is ever looked at
    try:
        _, pos = _vstring(blob, HEADER)
        _, pos = _vstring(blob, pos)
    except BuildInfoError:
        return len(blob)  # the module info runs past KEEP: decode reports it
    return pos


class GoBuildInfoScanner:
    """Finds the build info blob in an ELF executable stream (16-byte aligned magic).

    One scanner serves one walk (layers are read on several threads): past ``max_kept``
    bytes of build info it keeps nothing more and counts what it skipped instead."""

    name = "go-buildinfo"

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self.max_kept = max_kept
        self.kept = 0
        self.skipped = 0  # executables with build info not kept (over the budget)
        self._lock = threading.Lock()

    def scan(self, stream: BinaryIO, size: int) -> bytes | None:
        blob = self._find(stream)
        if blob is None:
            return None
        with self._lock:
            if self.kept + len(blob) > self.max_kept:
                self.skipped += 1
                return None
            self.kept += len(blob)
        return blob

    def _find(self, stream: BinaryIO) -> bytes | None:
        head = stream.read(4)
        if head != ELF_MAGIC:
            return None
        buf = bytearray(head)
        base = 0  # file offset of buf[0]
        start = 0  # where to resume searching in buf
        eof = False
        while True:
            i = buf.find(MAGIC, start)
            if i < 0:
                if eof:
                    return None
                # keep an overlap so a magic split across reads is still found
                keep = len(MAGIC) - 1
                drop = max(0, len(buf) - keep)
                del buf[:drop]
                base += drop
                start = 0
                chunk = stream.read(_CHUNK)
                if not chunk:
                    eof = True
                buf += chunk
                continue
            if (base + i) % 16:
                start = i + 1
                continue
            while len(buf) - i < KEEP and not eof:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    eof = True
                buf += chunk
            blob = bytes(buf[i : i + KEEP])
            if _looks_valid(blob):
                return blob[: _extent(blob)]
            start = i + 1


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""


@dataclass(frozen=True)
class BuildInfo:
    go_version: str
    path: str = ""
    main: Module | None = None
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = field(default=())


def parse_modinfo(go_version: str, mod: str) -> BuildInfo:
    """Parse the module info text (``runtime/debug.BuildInfo.String`` format)."""
    path = ""
    main: Module | None = None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    last: str | None = None  # "mod" or "dep": what a "=>" line replaces
    for line in mod.splitlines():
        f = line.split("\t")
        kind = f[0]
        if kind == "path" and len(f) >= 2:
            path = f[1]
        elif kind in ("mod", "dep") and len(f) >= 3:
            m = Module(f[1], f[2], f[3] if len(f) > 3 else "")
            if kind == "mod":
                main = m
            else:
                deps.append(m)
            last = kind
        elif kind == "=>" and len(f) >= 3:
            # replacement: a local directory replacement has no version
            r = Module(f[1], f[2], f[3] if len(f) > 3 else "")
            if last == "dep" and deps:
                deps[-1] = r
            elif last == "mod" and main is not None:
                main = r
        elif kind == "build" and len(f) >= 2:
            k, _, v = f[1].partition("=")
            settings.append((k, v))
    return BuildInfo(go_version, path, main, tuple(deps), tuple(settings))


def decode_buildinfo(blob: bytes) -> BuildInfo:
    """Decode a build info blob as returned by the scanner (Go ≥ 1.18 format only)."""
    if not blob.startswith(MAGIC) or len(blob) < HEADER:
        raise BuildInfoError("not a Go build info blob")
    if not blob[15] & FLAG_POINTER_FREE:
        raise BuildInfoError("built with Go < 1.18 (pointer-based build info)")
    vers, pos = _vstring(blob, HEADER)
    mod, _ = _vstring(blob, pos)
    # debug.modinfo is wrapped in 16-byte sentinels (cmd/go/internal/modload.ModInfoData)
    mod = mod[16:-16] if len(mod) >= 33 and mod[-17] == 0x0A else b""
    return parse_modinfo(vers.decode("utf-8", "replace"), mod.decode("utf-8", "replace"))


def _go_purl(path: str, version: str) -> str:
    namespace, _, name = path.rpartition("/")
    return purl("golang", name, version, namespace=namespace or None)


class GoBinaryCataloger:
    """Go modules of every Go executable; one instance catalogs one image (its scanner keeps
    the walk's budget)."""

    name = "go-binary"
    requests: tuple[FileRequest, ...] = ()

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._scanner = GoBuildInfoScanner(max_kept)
        self.scanner: ExecutableScanner | None = self._scanner

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        if self._scanner.skipped:
            ctx.note(
                f"go: the build info of {self._scanner.skipped} executable(s) was not read: "
                f"more than {self._scanner.max_kept} bytes of it in the image; their modules "
                "are not listed"
            )
        for rec in fs.scans:
            if rec.scanner != GoBuildInfoScanner.name:
                continue
            try:
                bi = decode_buildinfo(rec.result)
            except BuildInfoError as e:
                ctx.note(f"go: {rec.path}: {e}; its modules are not listed")
                continue
            settings = dict(bi.settings)
            meta = tuple(
                sorted(
                    (k, v)
                    for k, v in {
                        "go-version": bi.go_version,
                        "main-package": bi.path,
                        "goarch": settings.get("GOARCH", ""),
                        "vcs-revision": settings.get("vcs.revision", ""),
                    }.items()
                    if v
                )
            )
            mods = ([bi.main] if bi.main is not None else []) + list(bi.deps)
            for m in mods:
                if not ctx.take(self.name):
                    return pkgs
                pkgs.append(
                    Package(
                        name=m.path,
                        version=m.version,
                        type=GOLANG,
                        purl=_go_purl(m.path, m.version if m.version != "(devel)" else ""),
                        cataloger=self.name,
                        layer=rec.layer,
                        paths=(rec.path,),
                        metadata=meta,
                    )
                )
            if bi.go_version.startswith("go"):
                # the standard library is compiled in too (vulnerability scanners need it)
                v = bi.go_version.split()[0]
                if not ctx.take(self.name):
                    return pkgs
                pkgs.append(
                    Package(
                        name="stdlib",
                        version=v,
                        type=GOLANG,
                        purl=purl("golang", "stdlib", v.removeprefix("go")),
                        cataloger=self.name,
                        layer=rec.layer,
                        paths=(rec.path,),
                        metadata=meta,
                    )
                )
        return pkgs
