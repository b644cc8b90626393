"""Sample images for the registry tests (small, deterministic, distinct per seed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fakeregistry import FakeRegistry

from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest


@dataclass
class SampleImage:
    config: bytes
    layers: list[bytes]
    manifest: Manifest

    @property
    def config_desc(self) -> Descriptor:
        return self.manifest.config

    @property
    def layer_descs(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    def blobs(self) -> list[tuple[Descriptor, bytes]]:
        return [(self.manifest.config, self.config), *zip(self.manifest.layers, self.layers)]


def _pseudo_random(seed: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sample_image(seed: str = "a", layer_sizes: tuple[int, ...] = (1000,)) -> SampleImage:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "seed": seed,
        },
        separators=(",", ":"),
    ).encode()
    layers = [_pseudo_random(f"{seed}-{i}", size) for i, size in enumerate(layer_sizes)]
    manifest = Manifest.build(
        Descriptor.of(mt.OCI_CONFIG, config),
        [Descriptor.of(mt.OCI_LAYER_GZIP, layer) for layer in layers],
    )
    return SampleImage(config, layers, manifest)


def seed_image(fake: FakeRegistry, repo: str, image: SampleImage, tag: str | None = "v1") -> str:
    for _, data in image.blobs():
        fake.add_blob(repo, data)
    return fake.add_manifest(repo, image.manifest.raw, image.manifest.media_type, tag)
