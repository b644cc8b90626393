"""Image references (``[registry[:port]/]repository[:tag][@digest]``).

Grammar and normalisation follow docker/distribution ``reference`` (regexp.go, normalize.go):
a first path element is a registry only if it is ``localhost``, contains ``.`` or ``:``, or has
upper-case letters; otherwise the registry is ``docker.io`` and single-element names gain the
``library/`` prefix. ``index.docker.io`` is normalised to ``docker.io``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from xarch.errors import InputError
from xarch.oci.digest import Digest

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255
TAG_MAX = 128

# re.ASCII: Go's \w is ASCII-only.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?", re.ASCII)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_PAT = re.compile(
    r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII
)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")


def _bad(s: str, why: str) -> InputError:
    return InputError(f"invalid image reference {s!r}: {why}")


def _split_domain(name: str) -> tuple[str, str]:
    """distribution's splitDockerDomain (name is the part before any tag/digest)."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_REGISTRY, OFFICIAL_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_REGISTRY, name
    if domain == LEGACY_DEFAULT_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def _check_repository(s: str, repo: str) -> None:
    if not repo:
        raise _bad(s, "repository name is empty")
    for comp in repo.split("/"):
        if not comp:
            raise _bad(s, f"repository {repo!r} has an empty path component ('//' or trailing '/')")
        if _PATH_COMPONENT.fullmatch(comp):
            continue
        if comp.isascii() and _PATH_COMPONENT.fullmatch(comp.lower()):
            raise _bad(s, f"repository name must be lowercase (got {comp!r})")
        raise _bad(
            s,
            f"repository path component {comp!r} is invalid (use lowercase letters, digits and "
            "single '.', '_' or '__', or '-' runs between them)",
        )


def _check_registry(s: str, registry: str) -> None:
    if not _DOMAIN_AND_PORT.fullmatch(registry):
        raise _bad(
            s,
            f"registry {registry!r} is not a valid host[:port] "
            "(hostname, IPv4, or [IPv6] with an optional numeric port)",
        )


def _check_tag(s: str, tag: str) -> None:
    if not tag:
        raise _bad(s, "tag is empty (remove the trailing ':' or give a tag)")
    if len(tag) > TAG_MAX:
        raise _bad(s, f"tag is {len(tag)} characters long, the maximum is {TAG_MAX}")
    if not _TAG.fullmatch(tag):
        raise _bad(
            s,
            f"tag {tag!r} is invalid (letters, digits, '_', '.', '-'; must not start with '.' or '-')",
        )


def _parse_digest(s: str, d: str) -> Digest:
    if not _DIGEST_PAT.fullmatch(d):
        raise _bad(s, f"digest {d!r} is malformed (expected 'sha256:<64 hex characters>')")
    try:
        return Digest.parse(d)
    except InputError as e:
        raise _bad(s, e.message) from None


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        # Normalise Docker Hub spellings so equal images compare equal however they were built.
        if self.registry == LEGACY_DEFAULT_REGISTRY:
            object.__setattr__(self, "registry", DEFAULT_REGISTRY)
        if self.registry == DEFAULT_REGISTRY and "/" not in self.repository:
            object.__setattr__(self, "repository", OFFICIAL_PREFIX + self.repository)
        where = f"{self.registry}/{self.repository}"
        _check_registry(where, self.registry)
        _check_repository(where, self.repository)
        if len(self.registry) + 1 + len(self.repository) > NAME_MAX:
            raise _bad(where, f"name is longer than {NAME_MAX} characters")
        if self.tag is not None:
            _check_tag(where, self.tag)
        if self.digest is not None and not isinstance(self.digest, Digest):
            object.__setattr__(self, "digest", _parse_digest(where, self.digest))

    @classmethod
    def parse(cls, s: str) -> Reference:
        if not isinstance(s, str):
            raise InputError(f"invalid image reference {s!r}: expected a string")
        if not s:
            raise InputError("invalid image reference '': empty (expected e.g. 'alpine:3.20')")
        if s != s.strip():
            raise _bad(s, "leading or trailing whitespace")
        if _IDENTIFIER.fullmatch(s):
            raise _bad(
                s,
                "a bare 64-character hex string is an image ID, not a repository name "
                "(use 'repo@sha256:<hex>')",
            )
        name, at, dg = s.partition("@")
        digest: Digest | None = None
        if at:
            if "@" in dg:
                raise _bad(s, "more than one '@'")
            digest = _parse_digest(s, dg)
        if not name:
            raise _bad(s, "missing repository name before '@'")
        # A tag's ':' comes after the last '/'; a ':' before it belongs to the registry port.
        slash = name.rfind("/")
        colon = name.rfind(":")
        tag: str | None = None
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
            _check_tag(s, tag)
        if not name:
            raise _bad(s, "missing repository name")
        registry, repository = _split_domain(name)
        _check_registry(s, registry)
        _check_repository(s, repository)
        if len(registry) + 1 + len(repository) > NAME_MAX:
            raise _bad(s, f"repository name is longer than {NAME_MAX} characters")
        return cls(registry, repository, tag, digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """Docker's short display form: ``alpine:3.20``, ``user/app``, ``ghcr.io/o/r@sha256:…``."""
        name = self.repository
        first = name.partition("/")[0]
        # "docker.io/a.b/c" must keep its registry: "a.b/c" would read back as registry "a.b"
        # (docker's FamiliarString has that ambiguity; we stay parseable)
        if self.registry == DEFAULT_REGISTRY and not (
            "/" in name and (first == "localhost" or any(c in first for c in ".:"))
        ):
            rest = name.removeprefix(OFFICIAL_PREFIX)
            if name.startswith(OFFICIAL_PREFIX) and "/" not in rest:
                name = rest
        else:
            name = f"{self.registry}/{name}"
        if self.tag is not None:
            name += f":{self.tag}"
        if self.digest is not None:
            name += f"@{self.digest}"
        return name

    @property
    def api_registry(self) -> str:
        """Host[:port] to talk the distribution API to (Docker Hub's API lives elsewhere)."""
        return DOCKER_HUB_API if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def host(self) -> str:
        """Registry without the port (IPv6 without brackets)."""
        r = self.registry
        if r.startswith("["):
            return r[1 : r.index("]")]
        return r.partition(":")[0]

    @property
    def port(self) -> int | None:
        r = self.registry
        tail = r[r.index("]") + 1 :] if r.startswith("[") else r
        _, sep, port = tail.partition(":")
        return int(port) if sep else None

    @property
    def is_localhost(self) -> bool:
        """localhost / loopback registries, where plain HTTP is allowed by default (as containerd)."""
        host = self.host
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def identifier(self) -> str:
        """What to put in /v2/<name>/manifests/<identifier>: the digest wins over the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag if self.tag is not None else DEFAULT_TAG

    def context(self) -> str:
        """``registry/repository`` (no tag or digest)."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> Reference:
        """Same repository at ``tag``; any digest is dropped (the tag is what is meant)."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest | str) -> Reference:
        """Pin to ``digest``, keeping the tag for display (``repo:tag@digest``)."""
        return replace(self, digest=Digest.parse(digest))

    def without_tag(self) -> Reference:
        return replace(self, tag=None)
