"""npm packages: every ``node_modules/<name>/package.json`` (``@scope/name`` too, any depth)."""

from __future__ import annotations

import json

from xarch.attest.sbom.catalogers import Context, purl
from xarch.attest.sbom.model import NPM, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRequest, FileSystemView

PATTERNS = ("**/node_modules/*/package.json", "**/node_modules/@*/*/package.json")
MAX_PACKAGE_JSON = 4 << 20


def _licenses(doc: dict[str, object]) -> list[str]:
    out: list[str] = []
    lic = doc.get("license")
    items: list[object] = [lic] if lic is not None else []
    legacy = doc.get("licenses")  # deprecated array form: [{"type": "MIT", "url": ...}]
    if isinstance(legacy, list):
        items.extend(legacy)
    for it in items:
        v = it.get("type") if isinstance(it, dict) else it
        if isinstance(v, str) and v.strip() and v.strip() not in out:
            out.append(v.strip())
    return out


class NpmCataloger:
    name = "npm"
    requests: tuple[FileRequest, ...] = (FileRequest(PATTERNS),)
    scanner: ExecutableScanner | None = None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]:
        pkgs: list[Package] = []
        recs = {r.path: r for pat in PATTERNS for r in fs.glob(pat)}
        for path in sorted(recs):
            rec = recs[path]
            if len(rec.data) > MAX_PACKAGE_JSON:
                ctx.note(f"npm: {path} ({len(rec.data)} bytes) is larger than "
                         f"{MAX_PACKAGE_JSON} bytes; skipped")  # fmt: skip
                continue
            try:
                doc = json.loads(rec.data.decode("utf-8", "replace"))
            except (ValueError, RecursionError):
                ctx.note(f"npm: {path} is not valid JSON; skipped")
                continue
            if not isinstance(doc, dict):
                continue
            name, version = doc.get("name"), doc.get("version")
            if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
                continue  # fixtures and partial packages without identity
            if not ctx.take(self.name):
                break
            namespace, _, short = name.rpartition("/")
            pkgs.append(
                Package(
                    name=name,
                    version=version,
                    type=NPM,
                    purl=purl("npm", short, version, namespace=namespace or None),
                    cataloger=self.name,
                    licenses=tuple(_licenses(doc)),
                    layer=rec.layer,
                    paths=(path,),
                )
            )
        return pkgs
