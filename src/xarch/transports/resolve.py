"""Turn a location string into an image source or sink.

A location is ``TRANSPORT:DETAIL`` or a bare image reference. The transports are
``docker://REF`` (a registry), ``oci:DIR[:TAG]`` (an OCI image layout directory),
``oci-archive:FILE[:TAG]`` (a tar of one), ``docker-archive:FILE[:REF]`` (what ``docker save``
writes and ``docker load`` reads) and ``store:NAME[:TAG]`` (xarch's local image store); as in
skopeo, DIR/FILE end at the first ``:`` after the transport name, the rest is the tag. A bare
reference is a registry image when its first ``/``-separated component looks like a registry
host — it contains a ``.`` or a ``:`` or is ``localhost`` (``ghcr.io/org/app:1``,
``localhost:5000/app``, ``localhost/app``); otherwise (``hello:1``, ``user/app:dev``) it names
an image in the local store. Store names are normalised like Docker's, so ``hello:1`` is stored
as ``docker.io/library/hello:1`` and a name without a tag means ``:latest``. To address a
Docker Hub image without a registry host, write ``docker://hello:1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xarch.errors import InputError, UsageError
from xarch.oci.reference import Reference
from xarch.transports.base import ImageSink, ImageSource

Transport = Literal["docker", "oci", "oci-archive", "docker-archive", "store"]

_PREFIXES: tuple[tuple[str, Transport], ...] = (
    ("docker://", "docker"),
    ("oci-archive:", "oci-archive"),
    ("docker-archive:", "docker-archive"),
    ("oci:", "oci"),
    ("store:", "store"),
)
# skopeo transports xarch does not implement; named so the error says so instead of
# misreading "dir:/x" as an image called "dir".
_UNSUPPORTED = ("dir", "containers-storage", "docker-daemon", "ostree", "sif", "tarball")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Layout tags: what skopeo/umoci accept in ref.name (components joined by [-._:@/+]).
_LAYOUT_TAG = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._:@/+-]*[A-Za-z0-9_])?")

FORMS = (
    "expected docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], "
    "store:NAME[:TAG], or a bare reference like ghcr.io/org/app:1 (registry) or app:1 (local store)"
)


@dataclass(frozen=True)
class Location:
    transport: Transport
    raw: str
    path: Path | None = None
    # oci/oci-archive: the layout tag; docker-archive: the REF as written; store: normalised name
    tag: str | None = None
    reference: Reference | None = None
    store: Any = None  # LocalStore | None (None → the default store, opened lazily)
    registry_options: Any = None

    def __str__(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.reference}"
        if self.transport == "store":
            return f"store:{self.tag}"
        base = f"{self.transport}:{self.path}"
        return f"{base}:{self.tag}" if self.tag else base


def _bad(s: str, why: str) -> UsageError:
    return UsageError(f"invalid image location {s!r}: {why}", hint=FORMS)


def _split_path(s: str, rest: str, what: str) -> tuple[Path, str | None]:
    path, sep, tag = rest.partition(":")
    if not path:
        raise _bad(s, f"missing {what} after the transport name")
    if "\x00" in path:
        raise _bad(s, f"{what} contains a NUL byte")
    return Path(path), (tag if sep else None)


def _check_layout_tag(s: str, tag: str | None) -> str | None:
    if tag is None:
        return None
    if tag == "":
        raise _bad(s, "empty tag after ':'")
    if tag.startswith("@"):
        try:
            Reference.parse("x" + tag)
        except InputError as e:
            raise _bad(s, e.message) from None
        return tag
    if _CONTROL.search(tag) or not _LAYOUT_TAG.fullmatch(tag):
        raise _bad(s, f"invalid tag {tag!r} (letters, digits and . _ - : @ / + only)")
    return tag


def _ref(s: str, text: str) -> Reference:
    try:
        return Reference.parse(text)
    except InputError as e:
        raise _bad(s, e.message) from None


def looks_like_registry(ref: str) -> bool:
    """The first path component names a registry host (docker's rule, plus bare ``localhost``)."""
    first, slash, _ = ref.partition("/")
    if not slash:
        return False
    return "." in first or ":" in first or first == "localhost"


def parse_location(s: str, *, default_store: Any = None, registry_options: Any = None) -> Location:
    """Parse a location string (see the module docstring for the rules). Raises UsageError."""
    if not isinstance(s, str):
        raise UsageError(f"invalid image location {s!r}: expected a string", hint=FORMS)
    if not s or s != s.strip():
        raise _bad(s, "empty or surrounded by whitespace")
    if _CONTROL.search(s):
        raise _bad(s, "contains control characters")
    for prefix, transport in _PREFIXES:
        if s.startswith(prefix):
            rest = s[len(prefix) :]
            if transport == "docker":
                return Location(
                    "docker", s, reference=_ref(s, rest), registry_options=registry_options
                )
            if transport == "store":
                if not rest:
                    raise _bad(s, "missing image name after 'store:'")
                from xarch.transports.store import normalize_name

                try:
                    name = normalize_name(rest)
                except UsageError as e:
                    raise _bad(s, e.message) from None
                return Location("store", s, tag=name, store=default_store)
            path, tag = _split_path(s, rest, "file" if "archive" in transport else "directory")
            if transport == "docker-archive":
                ref = None
                if tag is not None:
                    if tag.startswith("@") and tag[1:].isdigit():
                        return Location(transport, s, path=path, tag=tag)
                    ref = _ref(s, tag)
                return Location(transport, s, path=path, tag=tag, reference=ref)
            return Location(transport, s, path=path, tag=_check_layout_tag(s, tag))
    head, sep, rest = s.partition(":")
    if sep and head in _UNSUPPORTED:
        raise UsageError(
            f"transport {head!r} is not supported (in {s!r})",
            hint="supported: docker://, oci:, oci-archive:, docker-archive:, store:",
        )
    if "://" in s:
        raise _bad(s, f"unknown transport {s.split('://', 1)[0]!r}")
    ref = _ref(s, s)
    if looks_like_registry(s):
        return Location("docker", s, reference=ref, registry_options=registry_options)
    from xarch.transports.store import normalize_name

    return Location("store", s, tag=normalize_name(s), store=default_store)


def _store(loc: Location) -> Any:
    from xarch.transports.store import LocalStore

    return loc.store if loc.store is not None else LocalStore.default()


def open_source(loc: Location, *, on_event: Any = None) -> ImageSource:
    """An ImageSource for ``loc``; the caller closes it. ``on_event`` is the registry client's
    progress callback (remote locations only)."""
    if loc.transport == "oci":
        from xarch.transports.layout import LayoutSource

        assert loc.path is not None
        return LayoutSource(loc.path, loc.tag)
    if loc.transport == "oci-archive":
        from xarch.transports.archive import OciArchiveSource

        assert loc.path is not None
        return OciArchiveSource(loc.path, loc.tag)
    if loc.transport == "docker-archive":
        from xarch.transports.archive import DockerArchiveSource

        assert loc.path is not None
        return DockerArchiveSource(loc.path, loc.tag)
    if loc.transport == "store":
        assert loc.tag is not None
        src: ImageSource = _store(loc).source(loc.tag)
        return src
    from xarch.transports.remote import RemoteSource

    assert loc.reference is not None
    remote: ImageSource = RemoteSource(loc.reference, loc.registry_options, on_event=on_event)
    return remote


def open_sink(loc: Location, *, on_event: Any = None) -> ImageSink:
    """An ImageSink for ``loc``; nothing is visible under its name before ``commit``.
    ``on_event`` is the registry client's progress callback (remote locations only)."""
    if loc.transport == "oci":
        from xarch.transports.layout import LayoutSink

        assert loc.path is not None
        if loc.tag is not None and loc.tag.startswith("@"):
            raise UsageError(f"cannot write to {loc.raw}: a destination needs a tag, not a digest")
        return LayoutSink(loc.path, loc.tag)
    if loc.transport == "oci-archive":
        from xarch.transports.archive import OciArchiveSink

        assert loc.path is not None
        if loc.tag is not None and loc.tag.startswith("@"):
            raise UsageError(f"cannot write to {loc.raw}: a destination needs a tag, not a digest")
        return OciArchiveSink(loc.path, loc.tag)
    if loc.transport == "docker-archive":
        from xarch.transports.archive import DockerArchiveSink

        assert loc.path is not None
        if loc.tag is not None and loc.reference is None:
            raise UsageError(f"cannot write to {loc.raw}: '@N' only selects an image when reading")
        return DockerArchiveSink(loc.path, loc.tag)
    if loc.transport == "store":
        assert loc.tag is not None
        sink: ImageSink = _store(loc).sink(loc.tag)
        return sink
    from xarch.transports.remote import RemoteSink

    assert loc.reference is not None
    remote: ImageSink = RemoteSink(loc.reference, loc.registry_options, on_event=on_event)
    return remote
