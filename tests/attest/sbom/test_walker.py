from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attest.sbom._fixtures import OPQ, WH, D, E, F, H, L, make_image
from xarch.attest.sbom.walker import FileRequest, glob_to_regex, walk_layers
from xarch.errors import IntegrityError
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest

ALL = [FileRequest(("**",))]


def test_whiteout_removes_file_and_subtree_from_lower_layers() -> None:
    img = make_image(
        [
            [D("etc"), F("etc/a", "1"), F("etc/b", "2"), D("opt/x"), F("opt/x/y", "3")],
            [WH("etc/a"), WH("opt/x"), F("etc/c", "4")],
        ]
    )
    fs = walk_layers(img, ALL)
    assert set(fs.files) == {"/etc/b", "/etc/c"}
    assert not fs.exists("/opt/x") and fs.exists("/opt")
    assert fs.files["/etc/b"].layer.index == 0
    assert fs.files["/etc/c"].layer.index == 1
    assert fs.files["/etc/c"].layer.digest == img.manifest.layers[1].digest
    assert fs.files["/etc/c"].layer.diff_id == img.config.diff_ids[1]


def test_whiteout_only_hides_lower_layers_whatever_the_tar_order() -> None:
    # the same layer re-creates the path after (or before) whiting it out: it stays visible
    img = make_image([[F("a/f", "old")], [F("a/f", "new"), WH("a/f")]])
    fs = walk_layers(img, ALL)
    assert fs.files["/a/f"].data == b"new"


def test_opaque_dir_hides_lower_children_but_keeps_its_own() -> None:
    img = make_image(
        [
            [D("d"), F("d/old1", "x"), F("d/sub/old2", "y"), F("keep", "k")],
            [D("d"), OPQ("d"), F("d/new", "z")],
        ]
    )
    fs = walk_layers(img, ALL)
    assert set(fs.files) == {"/d/new", "/keep"}


def test_file_replacing_directory_drops_subtree_and_dir_merges() -> None:
    img = make_image(
        [
            [F("x/inner", "1"), F("y/one", "1")],
            [F("x", "now a file"), D("y"), F("y/two", "2")],
        ]
    )
    fs = walk_layers(img, ALL)
    assert set(fs.files) == {"/x", "/y/one", "/y/two"}


def test_only_requested_contents_are_kept() -> None:
    img = make_image([[F("etc/os-release", "ID=x\n"), F("usr/bin/tool", b"\x00" * 100)]])
    fs = walk_layers(img, [FileRequest(("etc/os-release",))])
    assert list(fs.files) == ["/etc/os-release"]
    assert fs.exists("/usr/bin/tool")


def test_history_keeps_earlier_versions_and_restarts_after_whiteout() -> None:
    req = [FileRequest(("db",), history=True)]
    img = make_image([[F("db", "v1")], [F("db", "v2")], [F("db", "v3")]])
    rec = walk_layers(img, req).files["/db"]
    assert rec.data == b"v3"
    assert [(layer.index, d) for layer, d in rec.history] == [(0, b"v1"), (1, b"v2")]
    img = make_image([[F("db", "v1")], [WH("db")], [F("db", "v3")]])
    assert walk_layers(img, req).files["/db"].history == ()


def test_symlinks_are_followed_for_lookups() -> None:
    img = make_image(
        [
            [D("usr/lib"), F("usr/lib/os-release", "ID=debian\n"), L("etc/os-release",
             "../usr/lib/os-release"), L("lib", "usr/lib"), L("loop", "loop")],
        ]
    )  # fmt: skip
    fs = walk_layers(img, [FileRequest(("**/os-release",))])
    rec = fs.get("/etc/os-release")
    assert rec is not None and rec.path == "/usr/lib/os-release"
    assert fs.get("/lib/os-release") is rec
    assert fs.is_symlink("/etc/os-release")
    assert fs.get("/loop") is None


def test_entries_under_a_symlinked_dir_land_in_its_target() -> None:
    img = make_image([[D("usr/lib"), L("lib", "usr/lib")], [F("lib/apk/db/installed", "P:x\n")]])
    fs = walk_layers(img, ALL)
    assert "/usr/lib/apk/db/installed" in fs.files


def test_parent_lookups_follow_a_directory_replaced_mid_layer() -> None:
    """Entries after a directory is replaced (by a symlink, then by a file) must land where the
    new node leads, not in the directory looked up just before."""
    img = make_image(
        [
            [D("d"), F("d/f1", "1"), D("e")],
            [F("d/f2", "2"), L("d", "e"), F("d/f3", "3"), F("x/a", "a"), F("x", "file"),
             F("x/b", "b")],
        ]
    )  # fmt: skip
    fs = walk_layers(img, ALL)
    assert "/e/f3" in fs.files and "/d/f1" not in fs.files and "/d/f2" not in fs.files
    assert fs.is_symlink("/d") and fs.get("/d/f3") is fs.files["/e/f3"]
    # "x" became a file and then a directory again for x/b: only x/b survives below it
    assert "/x/b" in fs.files and "/x/a" not in fs.files


def test_hardlink_shares_content_of_requested_target() -> None:
    img = make_image([[F("a/METADATA", "Name: x\n"), H("b/METADATA", "a/METADATA")]])
    fs = walk_layers(img, [FileRequest(("**/METADATA",))])
    assert fs.files["/b/METADATA"].data == b"Name: x\n"


@pytest.mark.parametrize("how", ["gzip", "zstd", "plain"])
def test_compressions(how: str) -> None:
    img = make_image([[F("f", "data")]], compression=how)
    assert walk_layers(img, ALL).files["/f"].data == b"data"


def test_corrupt_blob_fails_closed() -> None:
    img = make_image([[F("f", "data")]])
    d = img.manifest.layers[0]
    blob = bytearray(img.blobs[d.digest])
    blob[-5] ^= 0xFF  # gzip trailer (CRC/size) or data: either way the digest differs
    img.blobs[d.digest] = bytes(blob)
    with pytest.raises(IntegrityError):
        walk_layers(img, ALL)


def test_truncated_blob_fails() -> None:
    img = make_image([[F("f", "data" * 1000)]])
    d = img.manifest.layers[0]
    img.blobs[d.digest] = img.blobs[d.digest][:-20]
    with pytest.raises(IntegrityError):
        walk_layers(img, ALL)


def test_escaping_entry_is_rejected() -> None:
    img = make_image([[E("../../etc/passwd", b"x")]])
    with pytest.raises(IntegrityError, match="climbs above"):
        walk_layers(img, ALL)


def test_large_requested_file_is_skipped_with_a_note() -> None:
    img = make_image([[F("big", b"x" * 2000), F("small", "s")]])
    notes: list[str] = []
    fs = walk_layers(img, ALL, notes=notes, max_capture=1000)
    assert set(fs.files) == {"/small"}
    assert any("/big" in n for n in notes)


class _Recorder:
    name = "rec"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def scan(self, stream: io.BufferedReader, size: int) -> bytes | None:
        data = stream.read()
        self.seen.append(size)
        return data[:4] if data.startswith(b"\x7fELF") else None


def test_scanners_see_executables_only() -> None:
    img = make_image(
        [[F("bin/tool", b"\x7fELF" + b"\x00" * 100, 0o755), F("etc/conf", b"\x7fELF" + b"0" * 100),
          F("bin/script", b"#!/bin/sh\n" + b"#" * 100, 0o755)]]
    )  # fmt: skip
    sc = _Recorder()
    fs = walk_layers(img, [], [sc])
    assert [(s.path, s.result) for s in fs.scans] == [("/bin/tool", b"\x7fELF")]
    assert sorted(sc.seen) == [104, 110]


def test_glob_to_regex() -> None:
    rx = re.compile(glob_to_regex("**/node_modules/*/package.json"))
    assert rx.fullmatch("node_modules/a/package.json")
    assert rx.fullmatch("app/x/node_modules/a/package.json")
    assert not rx.fullmatch("node_modules/a/b/package.json")
    assert re.fullmatch(glob_to_regex("/var/lib/dpkg/status.d/*"), "var/lib/dpkg/status.d/x")


# -- property: the walker agrees with a naive overlay model ----------------------------------

NAMES = ["a", "b", "c"]
PATHS = [p for n in NAMES for p in (n, f"{n}/x", f"{n}/x/y")]


def _model(layers: list[list[tuple[str, str]]]) -> dict[str, str]:
    """Reference semantics: each layer hides lower content by whiteouts/opaques, then adds."""
    visible: dict[str, str] = {}  # path -> "dir" | file data
    for i, layer in enumerate(layers):
        for op, p in layer:
            if op == "wh":
                visible = {k: v for k, v in visible.items() if k != p and not k.startswith(p + "/")}
            elif op == "opq":
                visible = {k: v for k, v in visible.items() if not k.startswith(p + "/")}
        for op, p in layer:
            if op in ("file", "dir"):
                parts = p.split("/")
                for j in range(1, len(parts)):
                    anc = "/".join(parts[:j])
                    if visible.get(anc, "dir") != "dir":
                        visible = {k: v for k, v in visible.items() if not k.startswith(anc + "/")}
                    visible[anc] = "dir"
                if op == "file":
                    visible = {k: v for k, v in visible.items() if not k.startswith(p + "/")}
                    visible[p] = f"{p}@{i}"
                elif visible.get(p, "dir") != "dir":
                    visible[p] = "dir"
                else:
                    visible.setdefault(p, "dir")
    return visible


_op = st.tuples(st.sampled_from(["file", "dir", "wh", "opq"]), st.sampled_from(PATHS))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_op, max_size=6), min_size=1, max_size=4))
def test_walker_matches_overlay_model(layers: list[list[tuple[str, str]]]) -> None:
    # one entry per path and layer (a real layer never has the same path twice)
    clean: list[list[tuple[str, str]]] = []
    for layer in layers:
        seen: set[str] = set()
        ops: list[tuple[str, str]] = []
        for op, p in layer:
            key = p if op in ("file", "dir", "wh") else p + "/.opq"
            if key in seen or (op == "wh" and p in {q for o, q in layer if o in ("file", "dir")}):
                continue
            if op in ("file", "dir") and any(o == "wh" and q == p for o, q in ops):
                continue
            seen.add(key)
            ops.append((op, p))
        clean.append(ops)
    entries = []
    for i, ops in enumerate(clean):
        es: list[E] = []
        for op, p in ops:
            if op == "file":
                es.append(F(p, f"{p}@{i}"))
            elif op == "dir":
                es.append(D(p))
            elif op == "wh":
                es.append(WH(p))
            else:
                es.append(OPQ(p))
        entries.append(es)
    img = make_image(entries)
    fs = walk_layers(img, ALL)
    expected = _model(clean)
    for p in PATHS:
        assert fs.exists("/" + p) == (p in expected), (p, clean)
        if expected.get(p, "dir") != "dir":
            assert fs.files["/" + p].data.decode() == expected[p]


def test_reader_protocol_accepts_any_opener() -> None:
    img = make_image([[F("f", "1")]])
    opened: list[Descriptor] = []

    class R:
        def layers(self) -> list[tuple[Descriptor, Digest]]:
            return img.layers()

        def open_blob(self, desc: Descriptor) -> io.BytesIO:
            opened.append(desc)
            return io.BytesIO(img.blobs[desc.digest])

    walk_layers(R(), ALL)
    assert opened == list(img.manifest.layers)


def test_hardlink_to_lower_layer_and_to_missing_target() -> None:
    img = make_image(
        [[F("a/METADATA", "lower")],
         [H("b/METADATA", "a/METADATA"), H("c/METADATA", "nowhere/METADATA")]]
    )  # fmt: skip
    fs = walk_layers(img, [FileRequest(("**/METADATA",))])
    assert fs.files["/b/METADATA"].data == b"lower"
    assert fs.files["/b/METADATA"].layer.index == 1
    assert "/c/METADATA" not in fs.files and fs.exists("/c/METADATA")


def test_parallel_and_sequential_walks_agree() -> None:
    layers = [
        [F(f"l{i}/f{j}", f"{i}-{j}") for j in range(30)] + [WH(f"l{i - 1}/f3")] if i else
        [F(f"l{i}/f{j}", f"{i}-{j}") for j in range(30)]
        for i in range(6)
    ]  # fmt: skip
    img = make_image(layers, compression=["gzip", "zstd", "plain"] * 2)
    a = walk_layers(img, ALL, workers=1)
    b = walk_layers(img, ALL, workers=4)
    assert a.files == b.files and len(a.files) == 6 * 30 - 5


def test_error_in_one_layer_fails_the_parallel_walk() -> None:
    img = make_image([[F("a", "1")], [F("b", "2")], [F("c", "3")]])
    d = img.manifest.layers[1]
    blob = img.blobs[d.digest]
    img.blobs[d.digest] = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    with pytest.raises(IntegrityError):
        walk_layers(img, ALL, workers=3)
