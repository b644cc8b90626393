"""What both output formats share: ordering, stable ids, the image's purl, timestamps."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime

from packageurl import PackageURL

from xarch import __version__
from xarch.attest.sbom.model import Catalog, ImageInfo, Package

TOOL_NAME = "xarch"
TOOL_VERSION = __version__
EPOCH = "1970-01-01T00:00:00Z"
# Namespace for name-based UUIDs of xarch SBOM documents (uuid5 of a fixed URL).
XARCH_UUID_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://xarch.dev/sbom")


def normalize_timestamp(ts: str | None) -> str:
    """RFC 3339 → ``YYYY-MM-DDThh:mm:ssZ`` in UTC (what SPDX requires); EPOCH when unknown."""
    if not ts:
        return EPOCH
    s = ts.strip().replace("z", "Z")
    # Python < 3.11 fromisoformat is stricter; Go writes up to 9 fractional digits
    m = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", s)
    if not m:
        return EPOCH
    tz = m.group(3) or "Z"
    try:
        dt = datetime.fromisoformat(m.group(1) + ("+00:00" if tz == "Z" else tz))
    except ValueError:
        return EPOCH
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document_uuid(image: ImageInfo, fmt: str) -> uuid.UUID:
    """Deterministic per image digest + platform (+ format): same input, same document id."""
    return uuid.uuid5(XARCH_UUID_NS, f"{fmt}|{image.digest}|{image.platform}")


def sorted_packages(catalog: Catalog) -> list[Package]:
    return sorted(catalog.packages, key=lambda p: p.sort_key())


def short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def image_purl(image: ImageInfo) -> str:
    """``pkg:oci/<name>@<digest>?arch=…&repository_url=…`` (purl spec's oci type)."""
    repo = image.name
    name = repo.rsplit("/", 1)[-1].lower() or "image"
    name = re.sub(r"[^a-z0-9._-]", "-", name)
    q = {"arch": image.platform.architecture}
    if image.platform.variant:
        q["variant"] = image.platform.variant
    if image.reference is not None:
        q["repository_url"] = repo
    return PackageURL(type="oci", name=name, version=str(image.digest), qualifiers=q).to_string()


def layer_props(p: Package) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if p.layer is not None:
        out.append(("xarch:layer:digest", str(p.layer.digest)))
        out.append(("xarch:layer:diffID", str(p.layer.diff_id)))
        out.append(("xarch:layer:index", str(p.layer.index)))
    return out
