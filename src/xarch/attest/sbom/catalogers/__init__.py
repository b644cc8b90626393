"""Catalogers: each turns some files of the visible image filesystem into packages.

A cataloger declares the files it needs (``requests``: path globs, optionally with their
history across layers) and, when it inspects executables, a streaming ``scanner``; the walker
reads only those. ``catalog`` then sees the final (whiteouts applied) view.

What a cataloger keeps is bounded, since a few KB of compressed layer can hold a "database"
of millions of records: the image's packages share one budget (``Context.take``, at most
``MAX_PACKAGES``), notes are capped, and databases are parsed lazily so that parsing stops
where listing stops.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from packageurl import PackageURL

from xarch.attest.sbom.model import LayerRef, OSInfo, Package
from xarch.attest.sbom.walker import ExecutableScanner, FileRecord, FileRequest, FileSystemView

# Far above any real image (a full Debian desktop has ~3 000 packages, a big node_modules a
# few thousand); a crafted database past it is cut off with a note instead of filling memory.
MAX_PACKAGES = 50_000
MAX_NOTES = 1000


@dataclass
class Context:
    """What catalogers share: the detected OS (for purl namespaces/distro), a notes sink and
    the image's package budget."""

    os: OSInfo | None = None
    notes: list[str] = field(default_factory=list)
    packages_left: int = MAX_PACKAGES
    max_notes: int = MAX_NOTES

    def take(self, cataloger: str) -> bool:
        """Room for one more package? Past the budget: False, and a note (once)."""
        if self.packages_left > 0:
            self.packages_left -= 1
            return True
        if self.packages_left == 0:
            self.packages_left = -1
            self.note(
                f"{cataloger}: more than {MAX_PACKAGES} packages in the image; the rest are "
                "not listed (a crafted package database?)"
            )
        return False

    def note(self, message: str) -> None:
        if len(self.notes) < self.max_notes:
            self.notes.append(message)


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


def memoized(keys_of: Callable[[bytes], Container[object]]) -> Callable[[bytes], Container[object]]:
    """``keys_of`` computed once per database version: :func:`introduced_in` asks for every
    package, and parsing every earlier version once per package is quadratic."""
    cache: dict[int, tuple[bytes, Container[object]]] = {}

    def cached(data: bytes) -> Container[object]:
        hit = cache.get(id(data))
        if hit is None or hit[0] is not data:
            hit = (data, keys_of(data))  # the bytes are kept, so their id stays theirs
            cache[id(data)] = hit
        return hit[1]

    return cached


def introduced_in(
    rec: FileRecord, key: object, keys_of: Callable[[bytes], Container[object]]
) -> LayerRef:
    """The lowest layer from which ``key`` stayed continuously in the database ``rec``.

    ``rec.history`` holds the database's earlier versions (oldest first); walking down from
    the final one, the package was introduced where it last appeared without a gap. Pass a
    :func:`memoized` ``keys_of`` when asking for many keys of one database.
    """
    layer = rec.layer
    for hist_layer, data in reversed(rec.history):
        if key not in keys_of(data):
            break
        layer = hist_layer
    return layer


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` (``\n`` or ``\r\n``), one at a time: ``splitlines()`` of a
    64 MiB database would hold millions of strings at once."""
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start)
        if end < 0:
            end = n
        yield text[start:end].removesuffix("\r")
        start = end + 1


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Debian control-file style paragraphs (``Key: value``, continuation lines indented,
    blank line between paragraphs). Keys keep their case; the first occurrence wins."""
    return list(iter_paragraphs(text))


def iter_paragraphs(text: str) -> Iterator[dict[str, str]]:
    """:func:`parse_paragraphs`, one paragraph at a time."""
    cur: dict[str, str] = {}
    last: str | None = None
    for line in iter_lines(text):
        if not line.strip():
            if cur:
                yield cur
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
        yield cur


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
    "MAX_PACKAGES",
    "Cataloger",
    "Context",
    "default_catalogers",
    "introduced_in",
    "iter_lines",
    "iter_paragraphs",
    "memoized",
    "parse_paragraphs",
    "purl",
]
