"""Python distributions: ``*.dist-info/METADATA`` (wheels, pip) and ``*.egg-info`` (setuptools,
as a ``PKG-INFO`` file inside the directory or as a single file).

Declared licence, in order of preference: ``License-Expression`` (PEP 639, an SPDX
expression), a one-line ``License`` field, else the ``License ::`` trove classifiers.
"""

from __future__ import annotations

import re
from email.parser import HeaderParser

from xarch.attest.sbom.catalogers import Context, purl
from xarch.attest.sbom.model import PYPI, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRecord, FileRequest, FileSystemView

PATTERNS = ("**/*.dist-info/METADATA", "**/*.egg-info/PKG-INFO", "**/*.egg-info")
_CLASSIFIER = {
    "MIT License": "MIT",
    "BSD License": "BSD-3-Clause",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "The Unlicense (Unlicense)": "Unlicense",
}
_NAME_NORM = re.compile(r"[-_.]+")


# The headers only; the body (the long description, a README) is never decoded.
MAX_HEADERS = 1 << 20
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def parse_metadata(data: bytes) -> dict[str, list[str]]:
    """Core metadata headers (RFC 822 style), each key with all its values."""
    end = _END_OF_HEADERS.search(data, 0, MAX_HEADERS)
    head = data[: end.start() + 1] if end is not None else data[:MAX_HEADERS]
    msg = HeaderParser().parsestr(head.decode("utf-8", "replace"), headersonly=True)
    out: dict[str, list[str]] = {}
    for k, v in msg.items():
        out.setdefault(k.lower(), []).append(str(v).strip())
    return out


def declared_licenses(md: dict[str, list[str]]) -> list[str]:
    expr = [v for v in md.get("license-expression", []) if v]
    if expr:
        return expr[:1]
    lic = next(iter(md.get("license", [])), "").strip()
    if lic and lic.upper() != "UNKNOWN" and "\n" not in lic and len(lic) <= 100:
        return [lic]
    out: list[str] = []
    for c in md.get("classifier", []):
        parts = [p.strip() for p in c.split("::")]
        if len(parts) >= 2 and parts[0] == "License" and parts[-1] not in ("OSI Approved",):
            v = _CLASSIFIER.get(parts[-1], parts[-1])
            if v not in out:
                out.append(v)
    return out


class PythonCataloger:
    name = "python"
    requests: tuple[FileRequest, ...] = (FileRequest(PATTERNS),)
    scanner: ExecutableScanner | None = None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        recs: list[FileRecord] = []
        for pat in PATTERNS:
            recs.extend(fs.glob(pat))
        for rec in sorted({r.path: r for r in recs}.values(), key=lambda r: r.path):
            md = parse_metadata(rec.data)
            name = next(iter(md.get("name", [])), "")
            version = next(iter(md.get("version", [])), "")
            if not name or not version:
                ctx.note(f"python: {rec.path} has no Name/Version; skipped")
                continue
            if not ctx.take(self.name):
                break
            pkgs.append(
                Package(
                    name=name,
                    version=version,
                    type=PYPI,
                    purl=purl("pypi", _NAME_NORM.sub("-", name).lower(), version),
                    cataloger=self.name,
                    licenses=tuple(declared_licenses(md)),
                    layer=rec.layer,
                    paths=(rec.path,),
                )
            )
        return pkgs
