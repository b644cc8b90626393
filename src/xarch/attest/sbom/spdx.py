"""SPDX 2.3 JSON for one platform's image.

The document DESCRIBES the image (a CONTAINER package identified by its manifest digest),
which CONTAINS the operating system and every package found. Licences are SPDX expressions;
anything that is not one becomes a ``LicenseRef-`` defined in ``hasExtractedLicensingInfos``
(as SPDX requires). SPDX has no free-form properties, so the layer a package came from and
where it was found go into ``sourceInfo``. Output is deterministic for the same catalog and
timestamp.
"""

from __future__ import annotations

import json
from typing import Any

from xarch.attest.sbom import licenses
from xarch.attest.sbom._common import (
    TOOL_NAME,
    TOOL_VERSION,
    document_uuid,
    image_purl,
    normalize_timestamp,
    short_hash,
    sorted_packages,
)
from xarch.attest.sbom.model import Catalog, Package

SPDX_VERSION = "SPDX-2.3"
NAMESPACE_BASE = "https://xarch.dev/spdx"
NOASSERTION = "NOASSERTION"
_ID_CHARS = str.maketrans({c: "-" for c in "/:@+~_ %#?&=,()[]{}'\"\\!*$;<>|^`"})


def _spdx_id(prefix: str, label: str, *parts: str) -> str:
    """``SPDXRef-<prefix>-<label>-<hash of parts>``: readable, unique, and only made of the
    letters, digits, ``.`` and ``-`` SPDX allows."""
    readable = label.translate(_ID_CHARS)
    readable = "".join(c for c in readable if c.isascii() and (c.isalnum() or c in ".-"))
    return f"SPDXRef-{prefix}-{readable[:60]}-{short_hash(label, *parts)}"


def _source_info(p: Package) -> str:
    where = ", ".join(p.paths)
    s = f"acquired package info from the {p.cataloger} cataloger: {where}"
    if p.layer is not None:
        s += f" (layer {p.layer.index}: {p.layer.digest}, diffID {p.layer.diff_id})"
    return s


def build(catalog: Catalog, *, created: str | None = None) -> dict[str, Any]:
    img = catalog.image
    ts = normalize_timestamp(created if created is not None else img.created)
    doc_uuid = document_uuid(img, "spdx")
    image_id = "SPDXRef-Image"
    image_name = img.name
    packages: list[dict[str, Any]] = [
        {
            "name": image_name,
            "SPDXID": image_id,
            "versionInfo": str(img.digest),
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "CONTAINER",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": image_purl(img),
                }
            ],
            "comment": f"platform {img.platform}; config {img.config_digest}",
        }
    ]
    rels: list[dict[str, str]] = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image_id,
        }
    ]
    if catalog.os is not None:
        o = catalog.os
        os_id = _spdx_id("OperatingSystem", o.id, o.version_id)
        packages.append(
            {
                "name": o.id,
                "SPDXID": os_id,
                "versionInfo": o.version_id or NOASSERTION,
                "downloadLocation": NOASSERTION,
                "filesAnalyzed": False,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": NOASSERTION,
                "copyrightText": NOASSERTION,
                "primaryPackagePurpose": "OPERATING_SYSTEM",
                "description": o.pretty_name or o.name or o.id,
                "sourceInfo": f"from {o.path}",
            }
        )
        rels.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": os_id}
        )
    extracted: dict[str, str] = {}
    used_ids: set[str] = set()
    for p in sorted_packages(catalog):
        sid = _spdx_id(p.type, p.name, p.version, p.purl, *p.paths)
        if sid in used_ids:  # identical evidence twice (cannot happen from one walk)
            continue
        used_ids.add(sid)
        exprs, refs = licenses.normalize(p.licenses)
        extracted.update((k, v) for k, v in refs.items() if k not in extracted)
        if not exprs:
            declared = NOASSERTION
        elif len(exprs) == 1:
            declared = exprs[0]
        else:
            declared = " AND ".join(f"({e})" if " " in e else e for e in exprs)
        pkg: dict[str, Any] = {
            "name": p.name,
            "SPDXID": sid,
            "versionInfo": p.version,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": declared,
            "copyrightText": NOASSERTION,
            "sourceInfo": _source_info(p),
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p.purl,
                }
            ],
        }
        packages.append(pkg)
        rels.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": sid}
        )
    doc: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image_name}@{img.digest} ({img.platform})",
        "documentNamespace": f"{NAMESPACE_BASE}/{_ns_name(image_name)}-{doc_uuid}",
        "creationInfo": {
            "created": ts,
            "creators": [f"Tool: {TOOL_NAME}-{TOOL_VERSION}"],
            "licenseListVersion": licenses.LICENSE_LIST_VERSION,
        },
        "packages": packages,
        "relationships": rels,
    }
    if catalog.notes:
        doc["comment"] = "xarch notes: " + " | ".join(catalog.notes)
    if extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": k, "name": v[:200], "extractedText": v}
            for k, v in sorted(extracted.items())
        ]
    return doc


def _ns_name(name: str) -> str:
    out = "".join(c if c.isalnum() or c in ".-" else "-" for c in name)
    return out.strip("-")[:100] or "image"


def render(catalog: Catalog, *, created: str | None = None) -> bytes:
    """The SPDX 2.3 JSON document as bytes (2-space indent, stable key order, newline)."""
    return (
        json.dumps(build(catalog, created=created), indent=2, ensure_ascii=False) + "\n"
    ).encode()
