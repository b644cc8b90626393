from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.images import single_image, write_image
from xarch.errors import UsageError, XarchError
from xarch.transports.archive import DockerArchiveSink, OciArchiveSink, OciArchiveSource
from xarch.transports.copy import copy_image
from xarch.transports.layout import LayoutSource
from xarch.transports.resolve import (
    Location,
    looks_like_registry,
    open_sink,
    open_source,
    parse_location,
)
from xarch.transports.store import LocalStore, StoreSink, StoreSource


@pytest.mark.parametrize(
    ("s", "transport", "path", "tag", "ref"),
    [
        ("docker://alpine", "docker", None, None, "docker.io/library/alpine"),
        ("docker://hello:1", "docker", None, None, "docker.io/library/hello:1"),
        ("ghcr.io/org/app:1", "docker", None, None, "ghcr.io/org/app:1"),
        ("localhost:5000/app", "docker", None, None, "localhost:5000/app"),
        ("localhost/app:dev", "docker", None, None, "localhost/app:dev"),
        (
            "127.0.0.1:5000/a/b@sha256:" + "c" * 64,
            "docker",
            None,
            None,
            "127.0.0.1:5000/a/b@sha256:" + "c" * 64,
        ),
        ("oci:/tmp/lay", "oci", "/tmp/lay", None, None),
        ("oci:/tmp/lay:v1", "oci", "/tmp/lay", "v1", None),
        ("oci:rel/dir:v1.2-x", "oci", "rel/dir", "v1.2-x", None),
        ("oci:/s:localhost/app:dev", "oci", "/s", "localhost/app:dev", None),
        ("oci-archive:/a.tar", "oci-archive", "/a.tar", None, None),
        ("oci-archive:/a.tar:t", "oci-archive", "/a.tar", "t", None),
        ("docker-archive:/d.tar", "docker-archive", "/d.tar", None, None),
        (
            "docker-archive:/d.tar:app:1",
            "docker-archive",
            "/d.tar",
            "app:1",
            "docker.io/library/app:1",
        ),
        (
            "docker-archive:/d.tar:localhost:5000/x:y",
            "docker-archive",
            "/d.tar",
            "localhost:5000/x:y",
            "localhost:5000/x:y",
        ),
        ("docker-archive:/d.tar:@1", "docker-archive", "/d.tar", "@1", None),
        ("store:hello:1", "store", None, "docker.io/library/hello:1", None),
        ("store:hello", "store", None, "docker.io/library/hello:latest", None),
        ("store:ghcr.io/o/r:2", "store", None, "ghcr.io/o/r:2", None),
        ("hello:1", "store", None, "docker.io/library/hello:1", None),
        ("hello", "store", None, "docker.io/library/hello:latest", None),
        ("user/app:dev", "store", None, "docker.io/user/app:dev", None),
    ],
)
def test_rules(s: str, transport: str, path: str | None, tag: str | None, ref: str | None) -> None:
    loc = parse_location(s)
    assert loc.transport == transport
    assert (str(loc.path) if loc.path else None) == path
    assert loc.tag == tag
    assert (str(loc.reference) if loc.reference else None) == ref
    assert loc.raw == s
    # canonical string parses back to the same location
    again = parse_location(str(loc))
    assert (again.transport, again.path, again.tag, again.reference) == (
        loc.transport,
        loc.path,
        loc.tag,
        loc.reference,
    )


@pytest.mark.parametrize(
    "s",
    [
        "",
        " hello",
        "oci:",
        "oci::tag",
        "oci:/x:",
        "oci:/x:bad tag",
        "oci-archive:",
        "docker-archive:",
        "docker-archive:/d.tar:Bad:Ref",
        "docker://",
        "docker://UPPER",
        "store:",
        "store:Bad",
        "dir:/tmp/x",
        "containers-storage:foo",
        "http://example.com/x",
        "Hello:1",
        "a\nb",
    ],
)
def test_invalid(s: str) -> None:
    with pytest.raises(UsageError):
        parse_location(s)


def test_looks_like_registry() -> None:
    assert looks_like_registry("ghcr.io/x")
    assert looks_like_registry("localhost/x")
    assert looks_like_registry("host:5000/x")
    assert not looks_like_registry("user/app")
    assert not looks_like_registry("hello:1")
    assert not looks_like_registry("example.com")  # no '/': a plain name


_pieces = st.sampled_from(
    [
        "docker://",
        "oci:",
        "oci-archive:",
        "docker-archive:",
        "store:",
        "dir:",
        "",
        ":",
        "/",
        "@",
        "sha256:",
        "a" * 64,
        "localhost",
        "ghcr.io",
        ".",
        "..",
        "x",
        "Tag",
        "1",
        "-",
        "_",
        "\x00",
        " ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_pieces, max_size=8).map("".join)))
def test_never_raises_anything_but_xarch_error(s: str) -> None:
    try:
        loc = parse_location(s)
    except XarchError:
        return
    assert isinstance(loc, Location)
    str(loc)


def test_open_source_and_sink(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    img = single_image()
    lay = tmp_path / "lay"
    write_image(open_sink(parse_location(f"oci:{lay}:v1")), img)
    src = open_source(parse_location(f"oci:{lay}:v1"))
    assert isinstance(src, LayoutSource)
    sink = open_sink(parse_location("app:1", default_store=store))
    assert isinstance(sink, StoreSink)
    copy_image(src, sink)
    s2 = open_source(parse_location("store:app:1", default_store=store))
    assert isinstance(s2, StoreSource)
    assert s2.resolve().digest == img.root.digest
    a = open_sink(parse_location(f"oci-archive:{tmp_path}/a.tar:t"))
    assert isinstance(a, OciArchiveSink)
    copy_image(s2, a)
    assert isinstance(
        open_source(parse_location(f"oci-archive:{tmp_path}/a.tar:t")), OciArchiveSource
    )
    d = open_sink(parse_location(f"docker-archive:{tmp_path}/d.tar:app:1"))
    assert isinstance(d, DockerArchiveSink)
    d.close()
    with pytest.raises(UsageError):
        open_sink(parse_location(f"docker-archive:{tmp_path}/d.tar:@0"))
    with pytest.raises(UsageError):
        open_sink(parse_location(f"oci:{lay}:@sha256:" + "a" * 64))


def test_default_store_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XARCH_HOME", str(tmp_path))
    img = single_image()
    write_image(open_sink(parse_location("hello:1")), img)
    assert (tmp_path / "store" / "index.json").is_file()
    assert open_source(parse_location("store:hello:1")).resolve().digest == img.root.digest


def test_remote_location_opens_remote(tmp_path: Path) -> None:
    remote = pytest.importorskip("xarch.transports.remote")
    if not hasattr(remote, "RemoteSource"):
        pytest.skip("remote transport not available yet")
    src = open_source(parse_location("localhost:5000/app:1"))
    assert src.name
    src.close()
