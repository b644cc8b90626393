"""verify_all over stored indexes nested deeper than Python's recursion limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.nested import nested_indexes
from xarch.content.store import ContentStore
from xarch.oci.manifest import Index, Manifest


def _store(tmp_path: Path, depth: int) -> tuple[ContentStore, list]:  # type: ignore[type-arg]
    cs = ContentStore(tmp_path)
    cs.init()
    img = nested_indexes(depth)
    for data in img.blobs.values():
        cs.ingest_bytes(data)
    for _, raw in img.manifests.values():
        cs.ingest_bytes(raw)
    cs.update_index(lambda es: [*es, img.root])
    return cs, [img.root]


@pytest.mark.timeout(120)
def test_verify_all_deep_chain_is_clean(tmp_path: Path) -> None:
    cs, _ = _store(tmp_path, 3000)
    assert cs.verify_all() == []


@pytest.mark.timeout(120)
def test_verify_all_reports_what_is_missing_at_the_bottom(tmp_path: Path) -> None:
    cs, (root,) = _store(tmp_path, 3000)
    # walk down to the image manifest and delete its config
    d = root
    while True:
        raw = cs.read_bytes(d)
        doc = Index.parse(raw) if "manifests" in raw.decode() else Manifest.parse(raw)
        if isinstance(doc, Manifest):
            cs.delete(doc.config)
            break
        (d,) = doc.manifests
    problems = cs.verify_all()
    assert len(problems) == 1 and "missing" in problems[0] and str(doc.config.digest) in problems[0]
