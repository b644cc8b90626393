"""Catalogers: each turns some files of the visible image filesystem into packages.

A cataloger declares the files it needs (``requests``: path globs, optionally with their
history across layers) and, when it inspects executables, a streaming ``scanner``; the walker
reads only those. ``catalog`` then sees the final (whiteouts applied) view.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from packageurl import PackageURL

from xarch.attest.sbom.model import LayerRef, OSInfo, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRecord, FileRequest, FileSystemView


@dataclass
class Context:
    """What catalogers share: the detected OS (for purl namespaces/distro) and a notes sink."""

    os: OSInfo | None = None
    notes: list[str] = field(default_factory=list)


class Cataloger(Protocol):
    name: str
    requests: tuple[FileRequest, ...]
    scanner: ExecutableScanner | None

    def catalog(self, fs: FileSystemView, ctx: Context) -> list[Package]: ...


def purl(
    type_: str,
    name: str,
    version: str,
    *,
    namespace: str | None = None,
    qualifiers: Mapping[str, str] | None = None,
) -> str:
    q = {k: v for k, v in (qualifiers or {}).items() if v}
    return PackageURL(
        type=type_, namespace=namespace or None, name=name, version=version or None,
        qualifiers=q or None,
    ).to_string()  # fmt: skip


def introduced_in(
    rec: FileRecord, key: object, keys_of: Callable[[bytes], Container[object]]
) -> LayerRef:
    """The lowest layer from which ``key`` stayed continuously in the database ``rec``.

    ``rec.history`` holds the database's earlier versions (oldest first); walking down from
    the final one, the package was introduced where it last appeared without a gap.
    """
    layer = rec.layer
    for hist_layer, data in reversed(rec.history):
        if key not in keys_of(data):
            break
        layer = hist_layer
    return layer


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Debian control-file style paragraphs (``Key: value``, continuation lines indented,
    blank line between paragraphs). Keys keep their case; the first occurrence wins."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                cur[last] += "\n" + line.strip()
            continue
        key, sep, val = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key in cur:
            last = None
            continue
        cur[key] = val.strip()
        last = key
    if cur:
        out.append(cur)
    return out


def default_catalogers() -> Sequence[Cataloger]:
    from xarch.attest.sbom.catalogers.apk import ApkCataloger
    from xarch.attest.sbom.catalogers.dpkg import DpkgCataloger
    from xarch.attest.sbom.catalogers.golang import GoBinaryCataloger
    from xarch.attest.sbom.catalogers.npm import NpmCataloger
    from xarch.attest.sbom.catalogers.python import PythonCataloger
    from xarch.attest.sbom.catalogers.rpm import RpmCataloger

    return (
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        PythonCataloger(),
        NpmCataloger(),
        GoBinaryCataloger(),
    )


__all__ = [
    "Cataloger",
    "Context",
    "default_catalogers",
    "introduced_in",
    "parse_paragraphs",
    "purl",
]
