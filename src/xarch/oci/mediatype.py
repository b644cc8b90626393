"""Media type constants and predicates for OCI and Docker image content."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
# Deprecated by image-spec 1.1 but still found in the wild (Windows base layers).
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = OCI_LAYER_NONDIST + "+gzip"
OCI_LAYER_NONDIST_ZSTD = OCI_LAYER_NONDIST + "+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# BuildKit's in-toto attestation layers and cosign artifacts (attached as manifests).
IN_TOTO = "application/vnd.in-toto+json"

MANIFEST_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES: frozenset[str] = frozenset({OCI_CONFIG, DOCKER_CONFIG})

LAYER_TYPES: frozenset[str] = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDIST,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_ZSTD,
        DOCKER_FOREIGN_LAYER_GZIP,
    }
)

# Preference order matters to some registries (first acceptable wins); schema1 signed is the
# very last resort because we cannot produce or fully verify it.
ACCEPT_MANIFESTS: str = ", ".join(
    (
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_SCHEMA1_SIGNED,
    )
)


def base(mt: str) -> str:
    """Strip parameters (``; charset=...``) and whitespace, as HTTP Content-Type may carry them."""
    return mt.split(";", 1)[0].strip()


def is_index(mt: str) -> bool:
    return base(mt) in INDEX_TYPES


def is_manifest(mt: str) -> bool:
    """True for single-image manifests (not indexes)."""
    return base(mt) in MANIFEST_TYPES


def is_config(mt: str) -> bool:
    return base(mt) in CONFIG_TYPES


def is_layer(mt: str) -> bool:
    return base(mt) in LAYER_TYPES


def is_gzip(mt: str) -> bool:
    b = base(mt)
    return b.endswith("+gzip") or b.endswith(".tar.gzip")


def is_zstd(mt: str) -> bool:
    b = base(mt)
    return b.endswith("+zstd") or b.endswith(".tar.zstd")


def is_nondistributable(mt: str) -> bool:
    b = base(mt)
    return b.startswith(OCI_LAYER_NONDIST) or b == DOCKER_FOREIGN_LAYER_GZIP
