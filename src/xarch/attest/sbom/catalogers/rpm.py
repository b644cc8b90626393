"""RPM packages from an sqlite rpmdb (``rpmdb.sqlite``, rpm ≥ 4.16: Fedora ≥ 33, RHEL 9...).

Each row of the ``Packages`` table is an RPM header blob: ``il`` (index entry count) and ``dl``
(data size) as big-endian uint32, ``il`` 16-byte index entries (tag, type, offset, count) and
the data store. Only the tags needed for an SBOM are decoded, every offset bounds-checked.
BerkeleyDB (``Packages``) and ndb (``Packages.db``) databases are reported and skipped.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from dataclasses import dataclass

from xarch.attest.sbom.catalogers import MAX_PACKAGES, Context, purl
from xarch.attest.sbom.model import RPM, LayerRef, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRequest, FileSystemView
from xarch.errors import InputError

SQLITE_DBS = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
OTHER_DBS = (
    "/var/lib/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages.db",
)

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_VENDOR, TAG_LICENSE, TAG_ARCH, TAG_SOURCERPM = 1011, 1014, 1022, 1044
_WANTED = frozenset(
    {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_VENDOR, TAG_LICENSE, TAG_ARCH,
     TAG_SOURCERPM}
)  # fmt: skip
T_INT32, T_STRING, T_STRING_ARRAY, T_I18NSTRING = 4, 6, 8, 9
MAX_INDEX = 0x0000FFFF  # rpm's own sanity limits (hdrchkTags / hdrchkData)
MAX_DATA = 0x0FFFFFFF
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class RpmHeader:
    name: str
    version: str
    release: str
    epoch: int | None
    arch: str
    license: str
    sourcerpm: str
    vendor: str


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\x00", off)
    if end < 0:
        raise InputError(f"rpm header: unterminated string at offset {off}")
    return data[off:end].decode("utf-8", "replace")


def parse_header(blob: bytes) -> RpmHeader:
    """Decode the wanted tags of one header blob (as stored in rpmdb.sqlite)."""
    if len(blob) < 8:
        raise InputError("rpm header: shorter than 8 bytes")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il < 1 or il > MAX_INDEX or dl > MAX_DATA:
        raise InputError(f"rpm header: implausible sizes (il={il}, dl={dl})")
    start = 8 + 16 * il
    if len(blob) < start + dl:
        raise InputError("rpm header: truncated (index/data run past the blob)")
    data = blob[start : start + dl]
    vals: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, off, cnt = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag not in _WANTED:
            continue
        if off < 0 or off >= dl or cnt < 1:
            raise InputError(f"rpm header: tag {tag} points outside the data store")
        if typ == T_INT32:
            if off + 4 > dl or off % 4:
                raise InputError(f"rpm header: bad INT32 for tag {tag}")
            vals[tag] = struct.unpack_from(">i", data, off)[0]
        elif typ in (T_STRING, T_STRING_ARRAY, T_I18NSTRING):
            vals[tag] = _cstr(data, off)  # first (default-locale) string
    name = vals.get(TAG_NAME)
    if not isinstance(name, str) or not name:
        raise InputError("rpm header: no package name")
    epoch = vals.get(TAG_EPOCH)

    def s(tag: int) -> str:
        v = vals.get(tag, "")
        return v if isinstance(v, str) else str(v)

    return RpmHeader(
        name=name,
        version=s(TAG_VERSION),
        release=s(TAG_RELEASE),
        epoch=epoch if isinstance(epoch, int) else None,
        arch=s(TAG_ARCH),
        license=s(TAG_LICENSE),
        sourcerpm=s(TAG_SOURCERPM),
        vendor=s(TAG_VENDOR),
    )


def read_sqlite_rpmdb(data: bytes, limit: int = MAX_PACKAGES) -> list[bytes]:
    """Header blobs of the rows of ``Packages`` (at most ``limit``) in an in-memory copy of
    the database."""
    if not data.startswith(SQLITE_MAGIC):
        raise InputError("not an sqlite database")
    # A WAL-mode file (header bytes 18/19 == 2) cannot be opened from memory; the WAL itself
    # is not in the image anyway once rpm closed the db, so read it as a rollback-journal db.
    if len(data) > 19 and data[18] == 2 and data[19] == 2:
        data = data[:18] + b"\x01\x01" + data[20:]
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(data)
        cur = conn.execute("SELECT blob FROM Packages ORDER BY hnum LIMIT ?", (limit,))
        return [bytes(r[0]) for r in cur if isinstance(r[0], bytes | memoryview)]
    except sqlite3.Error as e:
        raise InputError(f"unreadable rpmdb.sqlite: {e}") from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


class RpmCataloger:
    name = "rpm"
    requests: tuple[FileRequest, ...] = (
        FileRequest(tuple(p.lstrip("/") for p in (*SQLITE_DBS, *OTHER_DBS))),
    )
    scanner: ExecutableScanner | None = None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        seen: set[str] = set()
        for path in SQLITE_DBS:
            rec = fs.get(path)
            if rec is None or rec.path in seen:
                continue  # /var/lib/rpm is often a symlink to /usr/lib/sysimage/rpm
            seen.add(rec.path)
            try:
                blobs = read_sqlite_rpmdb(rec.data, max(0, ctx.packages_left) + 1)
            except InputError as e:
                ctx.note(f"rpm: {rec.path}: {e.message}; skipped")
                continue
            for i, blob in enumerate(blobs):
                try:
                    h = parse_header(blob)
                except InputError as e:
                    ctx.note(f"rpm: {rec.path}: package #{i}: {e.message}; skipped")
                    continue
                if h.name == "gpg-pubkey":
                    continue  # imported signing keys, not software
                if not ctx.take(self.name):
                    return pkgs
                pkgs.append(self._package(h, rec.path, rec.layer, ctx))
        if not pkgs:
            for path in OTHER_DBS:
                rec = fs.get(path)
                if rec is not None and rec.path not in seen:
                    seen.add(rec.path)
                    kind = "ndb" if path.endswith(".db") else "BerkeleyDB"
                    ctx.note(
                        f"rpm: {rec.path} is a {kind} rpmdb, which xarch does not read; "
                        "its packages are not listed"
                    )
        return pkgs

    def _package(self, h: RpmHeader, path: str, layer: LayerRef, ctx: Context) -> Package:
        version = f"{h.version}-{h.release}" if h.release else h.version
        namespace = ctx.os.id if ctx.os is not None else "rpm"
        q = {
            "arch": h.arch,
            "epoch": str(h.epoch) if h.epoch is not None else "",
            "distro": ctx.os.distro if ctx.os is not None else "",
            "upstream": h.sourcerpm,
        }
        full = f"{h.epoch}:{version}" if h.epoch else version
        meta = {"architecture": h.arch, "sourcerpm": h.sourcerpm, "vendor": h.vendor}
        return Package(
            name=h.name,
            version=full,
            type=RPM,
            purl=purl("rpm", h.name, version, namespace=namespace, qualifiers=q),
            cataloger=self.name,
            licenses=(h.license,) if h.license else (),
            layer=layer,
            paths=(path,),
            metadata=tuple(sorted((k, v) for k, v in meta.items() if v)),
        )
