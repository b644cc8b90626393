"""A source serving indexes nested deeper than Python's recursion limit: copy walks them all,
children before parents, each manifest fetched once."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from helpers.images import ImageSet, MemorySource
from helpers.nested import nested_indexes
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest
from xarch.transports.copy import copy_image


class RecordingSink:
    """Keeps what it is given and checks that every manifest comes after its children."""

    def __init__(self) -> None:
        self.name = "memory:sink"
        self.blobs: dict[Digest, bytes] = {}
        self.manifests: dict[Digest, bytes] = {}
        self.root: Digest | None = None
        self.committed = False

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self.blobs[desc.digest] = b"".join(chunks)

    def put_manifest(self, raw: bytes, media_type: str, *, root: bool = False) -> Digest:
        doc = Index.parse(raw) if mt.is_index(media_type) else Manifest.parse(raw)
        refs = doc.manifests if isinstance(doc, Index) else (doc.config, *doc.layers)
        assert all(r.digest in self.manifests or r.digest in self.blobs for r in refs)
        d = Digest.from_bytes(raw)
        self.manifests[d] = raw
        if root:
            self.root = d
        return d

    def commit(self) -> None:
        self.committed = True

    def close(self) -> None:
        pass


class CountingSource(MemorySource):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.fetched: list[Digest] = []

    def fetch_manifest(self, desc):  # type: ignore[no-untyped-def]
        self.fetched.append(desc.digest)
        return super().fetch_manifest(desc)


@pytest.mark.timeout(120)
def test_deeply_nested_indexes_copy() -> None:
    depth = 5000
    img = nested_indexes(depth)
    src = CountingSource(img)
    sink = RecordingSink()  # asserts every manifest's children were put before it
    res = copy_image(src, sink)
    assert sink.committed and sink.root == img.root.digest
    assert len(res.manifests) == depth + 1  # every index and the image manifest
    assert res.manifests[-1].digest == img.root.digest  # the root last
    assert len(src.fetched) == len(set(src.fetched)) == depth + 1
    assert set(sink.blobs) == set(img.blobs)


@pytest.mark.timeout(120)
def test_shared_child_is_walked_once_at_depth() -> None:
    # two deep chains over the same image: the second finds everything already seen
    a = nested_indexes(1500)
    b = nested_indexes(1600)
    top = Index.build([a.root, b.root])
    manifests = {**a.manifests, **b.manifests, top.descriptor.digest: (top.media_type, top.raw)}
    img = ImageSet(top.descriptor, manifests, {**a.blobs, **b.blobs})
    src = CountingSource(img)
    res = copy_image(src, RecordingSink())
    assert len(src.fetched) == len(set(src.fetched)) == len(manifests)
    assert len(res.manifests) == len(manifests)
