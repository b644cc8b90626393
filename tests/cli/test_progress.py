"""Progress renderers: the line formats the CLI promises, thread safety, mode resolution."""

from __future__ import annotations

import io
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xarch.api import ProgressEvent, parse_platforms
from xarch.cli.progress import (
    JsonRenderer,
    PlainRenderer,
    QuietRenderer,
    TtyRenderer,
    format_plain,
    human_size,
    make_renderer,
    resolve_mode,
)
from xarch.errors import UsageError

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ProgressEvent("copy", D, 1234, 1234), f"copy {D} 1234 bytes"),
        (ProgressEvent("skip", D, 10, 10), f"skip {D} 10 bytes (exists)"),
        (ProgressEvent("mount", D, 10, 10, "from lib/app"), f"mount {D} from lib/app"),
        (ProgressEvent("manifest", D, 10, 10, "application/x"), f"manifest {D} application/x"),
        (ProgressEvent("retry", "", 0, 0, "GET /v2/: HTTP 503"), "retry GET /v2/: HTTP 503"),
        (ProgressEvent("begin", D, 10), None),
        (ProgressEvent("progress", D, 10, 5), None),
    ],
)
def test_plain_format(event: ProgressEvent, line: str | None) -> None:
    assert format_plain(event) == line


def test_plain_renderer_threads_never_interleave() -> None:
    buf = io.StringIO()
    r = PlainRenderer(buf)

    def work(i: int) -> None:
        for _ in range(200):
            r(ProgressEvent("copy", f"sha256:{i:064x}", i, i))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    r.message("done")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1601 and lines[-1] == "done"
    assert all(ln.startswith("copy sha256:") and ln.endswith(" bytes") for ln in lines[:-1])


def test_json_renderer_one_object_per_line() -> None:
    buf = io.StringIO()
    r = JsonRenderer(buf)
    r(ProgressEvent("progress", D, 100, 50))
    r.message("hi")
    a, b = (json.loads(x) for x in buf.getvalue().splitlines())
    assert a["kind"] == "progress" and a["current"] == 50 and a["total"] == 100 and a["id"] == D
    assert b == {"time": b["time"], "kind": "message", "detail": "hi"}


def test_tty_renderer_bars_and_lines() -> None:
    buf = io.StringIO()
    r = TtyRenderer(buf)
    r(ProgressEvent("begin", D, 100))
    r(ProgressEvent("progress", D, 100, 50))
    assert r.tasks
    r(ProgressEvent("copy", D, 100, 100))
    assert not r.tasks
    r.message("summary")
    r.close()
    out = buf.getvalue()
    assert f"copy {D} 100 bytes" in out and "summary" in out


def test_quiet_and_modes() -> None:
    buf = io.StringIO()
    q = QuietRenderer(buf)
    q(ProgressEvent("copy", D, 1, 1))
    q.message("x")
    assert buf.getvalue() == ""
    assert resolve_mode("auto", io.StringIO()) == "plain"
    assert isinstance(make_renderer("auto", io.StringIO()), PlainRenderer)
    with pytest.raises(ValueError):
        make_renderer("loud")


def test_human_size() -> None:
    assert human_size(999) == "999 B"
    assert human_size(1500) == "1.5 kB"
    assert human_size(300_000_000) == "300.0 MB"


@given(
    st.lists(
        st.sampled_from(["linux/amd64", "arm64", "linux/arm/v7", "x86_64", " ", ""]), min_size=1
    )
)
def test_parse_platforms_dedupes_and_normalises(values: list[str]) -> None:
    joined = ",".join(values)
    try:
        plats = parse_platforms([joined])
    except UsageError:
        assert not joined.replace(",", "").strip()
        return
    assert len(plats) == len(set(plats))
    assert all(p.os == "linux" for p in plats)
    assert all(p.architecture != "x86_64" for p in plats)
