"""CycloneDX 1.6 JSON for one platform's image.

``metadata.component`` is the image (type ``container``, version = manifest digest); the OS
is an ``operating-system`` component and every package a ``library`` whose ``bom-ref`` is its
purl (made unique with a suffix when the same purl was found at several paths). The layer a
package came from and where it was found are ``properties`` (``xarch:…`` names). The
``serialNumber`` is a UUID derived from the image digest and platform, so the same image gives
the same document.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from xarch.attest.sbom import licenses
from xarch.attest.sbom._common import (
    TOOL_NAME,
    TOOL_VERSION,
    document_uuid,
    image_purl,
    layer_props,
    normalize_timestamp,
    short_hash,
    sorted_packages,
)
from xarch.attest.sbom.model import Catalog, Package

SPEC_VERSION = "1.6"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.6.schema.json"


def cdx_licenses(declared: tuple[str, ...]) -> list[dict[str, Any]]:
    """CycloneDX ``licenses``: SPDX ids as ``license.id``, a compound expression as the single
    ``expression`` entry the schema allows, anything else as ``license.name``."""
    if not declared:
        return []
    exprs = [licenses.to_expression(d) for d in declared]
    if all(e is not None for e in exprs):
        uniq = list(dict.fromkeys(e for e in exprs if e is not None))
        if all(licenses.is_license_id(e) for e in uniq):
            return [{"license": {"id": e}} for e in uniq]
        if len(uniq) == 1:
            return [{"expression": uniq[0]}]
        joined = " AND ".join(f"({e})" if " " in e else e for e in uniq)
        return [{"expression": joined}]
    out: list[dict[str, Any]] = []
    for raw, e in zip(declared, exprs):
        item = {"id": e} if e is not None and licenses.is_license_id(e) else {"name": raw.strip()}
        if {"license": item} not in out:
            out.append({"license": item})
    return out


def _props(p: Package) -> list[dict[str, str]]:
    pairs = [("xarch:package:type", p.type), ("xarch:cataloger", p.cataloger)]
    pairs += layer_props(p)
    pairs += [("xarch:location:path", path) for path in p.paths]
    pairs += [(f"xarch:metadata:{k}", v) for k, v in p.metadata]
    return [{"name": k, "value": v} for k, v in pairs]


def build(catalog: Catalog, *, created: str | None = None) -> dict[str, Any]:
    img = catalog.image
    ts = normalize_timestamp(created if created is not None else img.created)
    image_ref = image_purl(img)
    pkgs = sorted_packages(catalog)
    dup = Counter(p.purl for p in pkgs)
    components: list[dict[str, Any]] = []
    refs: list[str] = []
    if catalog.os is not None:
        o = catalog.os
        ref = f"os:{o.id}@{o.version_id}" if o.version_id else f"os:{o.id}"
        comp: dict[str, Any] = {"type": "operating-system", "bom-ref": ref, "name": o.id}
        if o.version_id:
            comp["version"] = o.version_id
        if o.pretty_name:
            comp["description"] = o.pretty_name
        comp["properties"] = [{"name": "xarch:location:path", "value": o.path}]
        components.append(comp)
        refs.append(ref)
    seen: set[str] = set()
    for p in pkgs:
        ref = p.purl if dup[p.purl] == 1 else f"{p.purl}#{short_hash(*p.paths)}"
        if ref in seen:
            continue
        seen.add(ref)
        comp = {"type": "library", "bom-ref": ref, "name": p.name, "version": p.version}
        lic = cdx_licenses(p.licenses)
        if lic:
            comp["licenses"] = lic
        comp["purl"] = p.purl
        comp["properties"] = _props(p)
        components.append(comp)
        refs.append(ref)
    image_props = [
        {"name": "xarch:image:platform", "value": str(img.platform)},
        {"name": "xarch:image:config", "value": str(img.config_digest)},
    ] + [
        {"name": f"xarch:image:layer:{layer.index}", "value": f"{layer.digest} {layer.diff_id}"}
        for layer in img.layers
    ]
    doc: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{document_uuid(img, 'cyclonedx')}",
        "version": 1,
        "metadata": {
            "timestamp": ts,
            "tools": {
                "components": [{"type": "application", "name": TOOL_NAME, "version": TOOL_VERSION}]
            },
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": img.name,
                "version": str(img.digest),
                "purl": image_ref,
                "properties": image_props,
            },
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": refs}],
    }
    if catalog.notes:
        doc["metadata"]["properties"] = [{"name": "xarch:note", "value": n} for n in catalog.notes]
    return doc


def render(catalog: Catalog, *, created: str | None = None) -> bytes:
    """The CycloneDX 1.6 JSON document as bytes (2-space indent, stable order, newline)."""
    return (
        json.dumps(build(catalog, created=created), indent=2, ensure_ascii=False) + "\n"
    ).encode()
