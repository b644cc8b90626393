"""Debian packages: ``/var/lib/dpkg/status`` and distroless' ``/var/lib/dpkg/status.d/*``.

Licences come from ``/usr/share/doc/<package>/copyright`` when it is in the machine-readable
DEP-5 format (every ``License:`` field's short name). Packages whose dpkg state is
``not-installed`` or ``config-files`` (removed, only conffiles left) are not software that is
present, so they are not listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from xarch.attest.sbom.catalogers import (
    MAX_PACKAGES,
    Context,
    introduced_in,
    iter_paragraphs,
    memoized,
    purl,
)
from xarch.attest.sbom.model import DEB, LayerRef, OSInfo, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRecord, FileRequest, FileSystemView

STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d/"
_ABSENT_STATES = frozenset({"not-installed", "config-files"})
DEP5_MARKER = "copyright-format"
# Real copyright files are at most a few hundred KB; licences are not read from bigger ones.
MAX_COPYRIGHT = 4 << 20
MAX_LICENSES = 100  # per package; a real one declares a handful


def parse_status(data: bytes) -> list[dict[str, str]]:
    """The installed package paragraphs of a dpkg status file."""
    return list(iter_status(data))


def iter_status(data: bytes) -> Iterator[dict[str, str]]:
    """:func:`parse_status`, one paragraph at a time."""
    for p in iter_paragraphs(data.decode("utf-8", "replace")):
        if not p.get("Package") or not p.get("Version"):
            continue
        status = p.get("Status", "install ok installed").split()
        if status and status[-1] in _ABSENT_STATES:
            continue
        yield p


def _keys(data: bytes) -> set[object]:
    # no more than could ever be listed: an earlier version's keys only date listed packages
    return {
        (p["Package"], p.get("Architecture", ""), p["Version"])
        for p in islice(iter_status(data), MAX_PACKAGES)
    }


def copyright_licenses(text: str) -> list[str]:
    """Short names of every ``License:`` field of a DEP-5 copyright file, in order, unique.
    Files not in the machine-readable format declare nothing we can rely on: []."""
    head = text[:2000]
    if DEP5_MARKER not in head and "Format-Specification:" not in head:
        return []
    out: dict[str, None] = {}  # ordered and unique, without a quadratic "not in list"
    for p in iter_paragraphs(text):
        lic = p.get("License")
        if lic is None:
            continue
        short = lic.split("\n", 1)[0].strip()
        if short:
            out[short] = None
            if len(out) >= MAX_LICENSES:
                break
    return list(out)


def _source(p: dict[str, str], name: str, version: str) -> tuple[str, str]:
    src = p.get("Source", "").strip()
    if not src:
        return name, version
    sname, _, rest = src.partition(" ")
    sver = rest.strip().strip("()") or version
    return sname, sver


class DpkgCataloger:
    name = "dpkg"
    # history for the status database only: it tells which layer introduced each package
    requests: tuple[FileRequest, ...] = (
        FileRequest(("var/lib/dpkg/status",), history=True),
        FileRequest(("var/lib/dpkg/status.d/*", "usr/share/doc/*/copyright")),
    )
    scanner: ExecutableScanner | None = None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        status = fs.files.get(STATUS)
        keys = memoized(_keys)
        if status is not None:
            for p in iter_status(status.data):
                if not ctx.take(self.name):
                    return pkgs
                key = (p["Package"], p.get("Architecture", ""), p["Version"])
                layer = introduced_in(status, key, keys)
                pkgs.append(self._package(p, status, layer, fs, ctx))
        for path, rec in fs.files.items():
            if not path.startswith(STATUS_D) or "/" in path[len(STATUS_D) :]:
                continue
            if path.endswith(".md5sums"):
                continue
            for p in iter_status(rec.data):
                if not ctx.take(self.name):
                    return pkgs
                pkgs.append(self._package(p, rec, rec.layer, fs, ctx))
        return pkgs

    def _package(
        self,
        p: dict[str, str],
        db: FileRecord,
        layer: LayerRef,
        fs: FileSystemView,
        ctx: Context,
    ) -> Package:
        os: OSInfo | None = ctx.os
        name, version = p["Package"], p["Version"]
        arch = p.get("Architecture", "")
        src_name, src_ver = _source(p, name, version)
        paths = [db.path]
        licenses: list[str] = []
        cpath = f"/usr/share/doc/{name}/copyright"
        crec = fs.get(cpath)
        if crec is not None and len(crec.data) > MAX_COPYRIGHT:
            ctx.note(
                f"dpkg: {cpath} ({len(crec.data)} bytes) is larger than {MAX_COPYRIGHT} bytes; "
                "its licences are not read"
            )
        elif crec is not None:
            licenses = copyright_licenses(crec.data.decode("utf-8", "replace"))
            paths.append(cpath)
        namespace = os.id if os is not None else "debian"
        upstream = ""
        if src_name != name or src_ver != version:  # binNMUs differ in version only
            upstream = src_name if src_ver == version else f"{src_name}@{src_ver}"
        qualifiers = {
            "arch": arch,
            "distro": os.distro if os is not None else "",
            "upstream": upstream,
        }
        meta = {"architecture": arch, "source": src_name, "source-version": src_ver}
        return Package(
            name=name,
            version=version,
            type=DEB,
            purl=purl("deb", name, version, namespace=namespace, qualifiers=qualifiers),
            cataloger=self.name,
            licenses=tuple(licenses),
            layer=layer,
            paths=tuple(paths),
            metadata=tuple(sorted((k, v) for k, v in meta.items() if v)),
        )
