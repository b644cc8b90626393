"""Alpine (and Wolfi, Chainguard...) packages from the apk database ``/lib/apk/db/installed``.

The database is a list of records separated by blank lines, one ``X:value`` field per line:
``P`` name, ``V`` version, ``A`` architecture, ``L`` licence, ``o`` origin (source package).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from xarch.attest.sbom.catalogers import (
    MAX_PACKAGES,
    Context,
    introduced_in,
    iter_lines,
    memoized,
    purl,
)
from xarch.attest.sbom.model import APK, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRequest, FileSystemView

DBS = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")


def parse_installed(data: bytes) -> list[dict[str, str]]:
    return list(iter_installed(data))


def iter_installed(data: bytes) -> Iterator[dict[str, str]]:
    """The package records (with a name and a version), one at a time."""
    cur: dict[str, str] = {}
    for line in iter_lines(data.decode("utf-8", "replace")):
        if not line.strip():
            if cur.get("P") and cur.get("V"):
                yield cur
            cur = {}
            continue
        key, sep, val = line.partition(":")
        # single-letter keys; repeated ones (F/R file lists) are not needed here
        if sep and len(key) == 1 and key not in cur:
            cur[key] = val
    if cur.get("P") and cur.get("V"):
        yield cur


def _keys(data: bytes) -> set[object]:
    return {(r["P"], r.get("A", ""), r["V"]) for r in islice(iter_installed(data), MAX_PACKAGES)}


class ApkCataloger:
    name = "apk"
    requests: tuple[FileRequest, ...] = (
        FileRequest(tuple(p.lstrip("/") for p in DBS), history=True),
    )
    scanner: ExecutableScanner | None = None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        seen: set[str] = set()
        keys = memoized(_keys)
        for path in DBS:
            rec = fs.get(path)
            if rec is None or rec.path in seen:
                continue  # /lib may be a symlink to /usr/lib: the same database twice
            seen.add(rec.path)
            for r in iter_installed(rec.data):
                if not ctx.take(self.name):
                    return pkgs
                name, version, arch = r["P"], r["V"], r.get("A", "")
                origin = r.get("o", "")
                namespace = ctx.os.id if ctx.os is not None else "alpine"
                q = {
                    "arch": arch,
                    "distro": ctx.os.distro if ctx.os is not None else "",
                    "upstream": origin if origin and origin != name else "",
                }
                lic = r.get("L", "").strip()
                meta = {"architecture": arch, "origin": origin}
                pkgs.append(
                    Package(
                        name=name,
                        version=version,
                        type=APK,
                        purl=purl("apk", name, version, namespace=namespace, qualifiers=q),
                        cataloger=self.name,
                        licenses=(lic,) if lic else (),
                        layer=introduced_in(rec, (name, arch, version), keys),
                        paths=(rec.path,),
                        metadata=tuple(sorted((k, v) for k, v in meta.items() if v)),
                    )
                )
        return pkgs
