"""Check an OCI layout directory the way an independent reader would.

``assert_valid_layout(dir)`` validates ``oci-layout``, ``index.json`` and every manifest, index
and config reachable from it against the image-spec JSON schemas (``oci.schema_check``), and
checks every referenced blob exists with the right size and digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from oci.schema_check import assert_valid_oci
from xarch.oci import mediatype as mt

CONFIG_TYPES = {mt.OCI_CONFIG, mt.DOCKER_CONFIG}


def _blob(root: Path, desc: dict[str, object]) -> bytes:
    digest = str(desc["digest"])
    alg, hexpart = digest.split(":", 1)
    data = (root / "blobs" / alg / hexpart).read_bytes()
    assert len(data) == desc["size"], f"{digest}: size {len(data)} != {desc['size']}"
    assert hashlib.new(alg, data).hexdigest() == hexpart, f"{digest}: content does not match"
    return data


def assert_valid_layout(root: Path) -> int:
    """Returns how many documents were schema-checked."""
    root = Path(root)
    assert_valid_oci(mt.OCI_LAYOUT_HEADER, (root / "oci-layout").read_bytes())
    index_raw = (root / "index.json").read_bytes()
    assert_valid_oci(mt.OCI_INDEX, index_raw)
    checked = 2
    stack = list(json.loads(index_raw)["manifests"])
    seen: set[str] = set()
    while stack:
        d = stack.pop()
        if d["digest"] in seen:
            continue
        seen.add(d["digest"])
        data = _blob(root, d)
        media = d["mediaType"]
        if media in mt.INDEX_TYPES:
            assert_valid_oci(media, data)
            checked += 1
            stack.extend(json.loads(data)["manifests"])
        elif media in mt.MANIFEST_TYPES:
            assert_valid_oci(media, data)
            checked += 1
            doc = json.loads(data)
            stack.append(doc["config"])
            stack.extend(doc["layers"])
        elif media in CONFIG_TYPES:
            assert_valid_oci(media, data)
            checked += 1
    return checked
