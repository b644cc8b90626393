"""An image under ``depth`` levels of indexes (index → index → ... → manifest): what a hostile
source can serve, and deeper than Python's recursion limit."""

from __future__ import annotations

from helpers.images import ImageSet, single_image
from xarch.oci.manifest import Index


def nested_indexes(depth: int) -> ImageSet:
    img = single_image("linux/amd64")
    manifests = dict(img.manifests)
    desc = img.root
    for _ in range(depth):
        idx = Index.build([desc])
        manifests[idx.descriptor.digest] = (idx.media_type, idx.raw)
        desc = idx.descriptor
    return ImageSet(desc, manifests, dict(img.blobs))
