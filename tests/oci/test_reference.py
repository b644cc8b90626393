from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.errors import InputError
from xarch.oci.digest import Digest
from xarch.oci.reference import Reference

DG = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("s", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", None, None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("library/alpine", "docker.io", "library/alpine", None, None),
        ("docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("docker.io/library/alpine:latest", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
        ("user/app", "docker.io", "user/app", None, None),
        ("user/team/app", "docker.io", "user/team/app", None, None),
        ("ghcr.io/o/r", "ghcr.io", "o/r", None, None),
        ("ghcr.io/o/r:t@" + DG, "ghcr.io", "o/r", "t", DG),
        ("ghcr.io/o/r@" + DG, "ghcr.io", "o/r", None, DG),
        ("alpine@" + DG, "docker.io", "library/alpine", None, DG),
        ("localhost/foo", "localhost", "foo", None, None),
        ("localhost:5000/foo/bar:1.0", "localhost:5000", "foo/bar", "1.0", None),
        ("registry:5000/foo", "registry:5000", "foo", None, None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, None),
        ("10.1.2.3/x", "10.1.2.3", "x", None, None),
        ("[::1]:5000/foo", "[::1]:5000", "foo", None, None),
        ("[2001:db8::1]/foo:tag", "[2001:db8::1]", "foo", "tag", None),
        ("Example.COM/foo", "Example.COM", "foo", None, None),
        ("FOO/bar", "FOO", "bar", None, None),  # upper-case first element is a registry
        ("a.b-c.d/e__f/g--h.i_j", "a.b-c.d", "e__f/g--h.i_j", None, None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),  # like docker
        ("docker.io", "docker.io", "library/docker.io", None, None),
        ("foo:" + "t" * 128, "docker.io", "library/foo", "t" * 128, None),
        ("foo:_x.Y-z", "docker.io", "library/foo", "_x.Y-z", None),
    ],
)
def test_parse_valid(
    s: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    r = Reference.parse(s)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repository, tag, digest)
    assert Reference.parse(str(r)) == r


@pytest.mark.parametrize(
    ("s", "fragment"),
    [
        ("", "empty"),
        ("Alpine", "must be lowercase (got 'Alpine')"),
        ("ghcr.io/Org/repo", "must be lowercase (got 'Org')"),
        ("alpine:", "tag is empty"),
        ("alpine:-x", "tag '-x' is invalid"),
        ("alpine:.x", "tag '.x' is invalid"),
        ("alpine:a/b", "registry 'alpine:a' is not a valid host[:port]"),
        ("foo:" + "t" * 129, "tag is 129 characters long, the maximum is 128"),
        ("foo@sha256:abc", "digest 'sha256:abc' is malformed"),
        ("foo@sha256:" + "A" * 64, "hex must be lowercase"),
        ("foo@md5:" + "a" * 32, "unsupported algorithm 'md5'"),
        ("foo@" + DG + "@" + DG, "more than one '@'"),
        ("@" + DG, "missing repository name"),
        (":tag", "missing repository name"),
        ("foo//bar", "empty path component"),
        ("foo/", "empty path component"),
        ("/foo", "empty path component"),
        ("foo bar", "is invalid"),
        (" alpine", "whitespace"),
        ("foo/-bar", "path component '-bar' is invalid"),
        ("foo/bar_", "path component 'bar_' is invalid"),
        ("foo/b...r", "path component 'b...r' is invalid"),
        ("foo/b___r", "path component 'b___r' is invalid"),
        ("::1/foo", "registry '::1' is not a valid host[:port]"),
        ("-bad.com/foo", "registry '-bad.com' is not a valid host"),
        ("host:port/foo", "registry 'host:port' is not a valid host"),
        ("0123456789abcdef" * 4, "image ID, not a repository name"),
        ("ghcr.io/" + "a" * 250, "longer than 255 characters"),
        ("ghcr.io/é", "is invalid"),
    ],
)
def test_parse_invalid(s: str, fragment: str) -> None:
    with pytest.raises(InputError) as ei:
        Reference.parse(s)
    msg = str(ei.value)
    assert fragment in msg
    assert msg.startswith("invalid image reference")


def test_parse_non_string() -> None:
    with pytest.raises(InputError):
        Reference.parse(None)  # type: ignore[arg-type]


def test_properties() -> None:
    r = Reference.parse("alpine:3.20")
    assert str(r) == "docker.io/library/alpine:3.20"
    assert r.familiar == "alpine:3.20"
    assert r.api_registry == "registry-1.docker.io"
    assert r.context() == "docker.io/library/alpine"
    assert r.identifier == "3.20"
    assert not r.is_localhost
    assert r.host == "docker.io" and r.port is None
    assert Reference.parse("alpine").identifier == "latest"
    pinned = r.with_digest(DG)
    assert pinned.identifier == DG and pinned.tag == "3.20"
    assert str(pinned) == f"docker.io/library/alpine:3.20@{DG}"
    assert isinstance(pinned.digest, Digest)
    retagged = pinned.with_tag("edge")
    assert retagged.digest is None and str(retagged) == "docker.io/library/alpine:edge"
    assert pinned.without_tag().tag is None
    with pytest.raises(InputError):
        r.with_tag("bad tag")
    with pytest.raises(InputError):
        r.with_digest("sha256:nope")


@pytest.mark.parametrize(
    ("s", "familiar"),
    [
        ("docker.io/user/app", "user/app"),
        ("docker.io/library/a/b", "library/a/b"),
        ("docker.io/a.b/c", "docker.io/a.b/c"),
        ("docker.io/localhost/c", "docker.io/localhost/c"),
        ("docker.io/library/a.b", "a.b"),
        ("ghcr.io/o/r@" + DG, "ghcr.io/o/r@" + DG),
    ],
)
def test_familiar(s: str, familiar: str) -> None:
    assert Reference.parse(s).familiar == familiar


@pytest.mark.parametrize(
    ("s", "local", "host", "port", "api"),
    [
        ("localhost/x", True, "localhost", None, "localhost"),
        ("localhost:5000/x", True, "localhost", 5000, "localhost:5000"),
        ("127.0.0.1:5000/x", True, "127.0.0.1", 5000, "127.0.0.1:5000"),
        ("127.0.0.2/x", True, "127.0.0.2", None, "127.0.0.2"),
        ("[::1]:5000/x", True, "::1", 5000, "[::1]:5000"),
        ("[::1]/x", True, "::1", None, "[::1]"),
        ("[2001:db8::1]:80/x", False, "2001:db8::1", 80, "[2001:db8::1]:80"),
        ("ghcr.io/x/y", False, "ghcr.io", None, "ghcr.io"),
        ("10.0.0.1:443/x", False, "10.0.0.1", 443, "10.0.0.1:443"),
    ],
)
def test_localhost_host_port(s: str, local: bool, host: str, port: int | None, api: str) -> None:
    r = Reference.parse(s)
    assert r.is_localhost is local
    assert r.host == host
    assert r.port == port
    assert r.api_registry == api


def test_constructor_normalizes_and_validates() -> None:
    assert Reference("index.docker.io", "alpine") == Reference.parse("alpine")
    assert Reference("docker.io", "alpine", "1", DG).digest == DG  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Reference("docker.io", "Alpine")
    with pytest.raises(InputError):
        Reference("bad host", "x")
    with pytest.raises(InputError):
        Reference("ghcr.io", "x", tag="")
    with pytest.raises(InputError):
        Reference("ghcr.io", "x", digest="sha256:1")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Reference("ghcr.io", "a" * 250)


# --- properties ---------------------------------------------------------------------------

_alnum = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
_sep = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _path_component(draw: st.DrawFn) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_sep), draw(_alnum)]
    return "".join(parts)


_domain_component = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True)
_port = st.integers(0, 99999).map(lambda p: f":{p}")
_registry = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "localhost",
            "localhost:5000",
            "docker.io",
            "index.docker.io",
            "[::1]:5000",
            "[fe80::1]",
            "127.0.0.1:5000",
            "192.168.1.10",
        ]
    ),
    st.builds(
        lambda comps, port: ".".join(comps) + port,
        st.lists(_domain_component, min_size=2, max_size=3),
        st.one_of(st.just(""), _port),
    ),
    st.builds(lambda host, port: host + port, _domain_component, _port),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_hex = st.binary(min_size=1, max_size=8).map(lambda b: str(Digest.from_bytes(b)))


@st.composite
def references(draw: st.DrawFn) -> str:
    reg = draw(_registry)
    path = "/".join(draw(st.lists(_path_component(), min_size=1, max_size=3)))
    s = f"{reg}/{path}" if reg else path
    if draw(st.booleans()):
        s += ":" + draw(_tag)
    if draw(st.booleans()):
        s += "@" + draw(_hex)
    return s


@given(references())
def test_parse_str_round_trip(s: str) -> None:
    try:
        r = Reference.parse(s)
    except InputError as e:
        # grammar-valid strings we reject: over-long names, 64-hex bare identifiers, and a first
        # element that looks like a host (has a '.') but is not one, e.g. "0.0_0/x" (distribution
        # silently parses that into a reference without a domain; we say what is wrong instead)
        first = s.partition("/")[0]
        assert (
            "longer than" in str(e)
            or "image ID" in str(e)
            or ("." in first and "is not a valid host" in str(e))
        )
        return
    assert Reference.parse(str(r)) == r
    assert Reference.parse(r.familiar) == r
    assert str(r).startswith(r.registry + "/" + r.repository)


@given(st.text(max_size=80))
def test_random_text_only_raises_input_error(s: str) -> None:
    try:
        r = Reference.parse(s)
    except InputError:
        return
    assert Reference.parse(str(r)) == r


@given(st.text(alphabet="abcAB019:/@._-[]", max_size=60))
def test_reference_alphabet_only_raises_input_error(s: str) -> None:
    try:
        r = Reference.parse(s)
    except InputError:
        return
    assert Reference.parse(str(r)) == r
