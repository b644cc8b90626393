"""Debian packages: ``/var/lib/dpkg/status`` and distroless' ``/var/lib/dpkg/status.d/*``.

Licences come from ``/usr/share/doc/<package>/copyright`` when it is in the machine-readable
DEP-5 format (every ``License:`` field's short name). Packages whose dpkg state is
``not-installed`` or ``config-files`` (removed, only conffiles left) are not software that is
present, so they are not listed.
"""

from __future__ import annotations

from xarch.attest.sbom.catalogers import Context, introduced_in, parse_paragraphs, purl
from xarch.attest.sbom.model import DEB, LayerRef, OSInfo, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRecord, FileRequest, FileSystemView

STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d/"
_ABSENT_STATES = frozenset({"not-installed", "config-files"})
DEP5_MARKER = "copyright-format"


def parse_status(data: bytes) -> list[dict[str, str]]:
    """The installed package paragraphs of a dpkg status file."""
    out = []
    for p in parse_paragraphs(data.decode("utf-8", "replace")):
        if not p.get("Package") or not p.get("Version"):
            continue
        status = p.get("Status", "install ok installed").split()
        if status and status[-1] in _ABSENT_STATES:
            continue
        out.append(p)
    return out


def _keys(data: bytes) -> set[object]:
    return {(p["Package"], p.get("Architecture", ""), p["Version"]) for p in parse_status(data)}


def copyright_licenses(text: str) -> list[str]:
    """Short names of every ``License:`` field of a DEP-5 copyright file, in order, unique.
    Files not in the machine-readable format declare nothing we can rely on: []."""
    head = text[:2000]
    if DEP5_MARKER not in head and "Format-Specification:" not in head:
        return []
    out: list[str] = []
    for p in parse_paragraphs(text):
        lic = p.get("License")
        if lic is None:
            continue
        short = lic.split("\n", 1)[0].strip()
        if short and short not in out:
            out.append(short)
    return out


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
        if status is not None:
            for p in parse_status(status.data):
                key = (p["Package"], p.get("Architecture", ""), p["Version"])
                layer = introduced_in(status, key, _keys)
                pkgs.append(self._package(p, status, layer, fs, ctx.os))
        for path, rec in fs.files.items():
            if not path.startswith(STATUS_D) or "/" in path[len(STATUS_D) :]:
                continue
            if path.endswith(".md5sums"):
                continue
            for p in parse_status(rec.data):
                pkgs.append(self._package(p, rec, rec.layer, fs, ctx.os))
        return pkgs

    def _package(
        self,
        p: dict[str, str],
        db: FileRecord,
        layer: LayerRef,
        fs: FileSystemView,
        os: OSInfo | None,
    ) -> Package:
        name, version = p["Package"], p["Version"]
        arch = p.get("Architecture", "")
        src_name, src_ver = _source(p, name, version)
        paths = [db.path]
        licenses: list[str] = []
        cpath = f"/usr/share/doc/{name}/copyright"
        crec = fs.get(cpath)
        if crec is not None:
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
