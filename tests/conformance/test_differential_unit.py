"""The comparator itself, on synthetic layers: it must see every kind of difference."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.differential import (
    Filesystem,
    accept_recorded,
    apply_tar,
    check_expectations,
    diff_config,
    diff_fs,
    diff_history,
    view_from_layers,
)
from conformance.harness import layout_views
from helpers import buildkit

Entry = tuple[str, str, Any]  # name, kind (file dir sym link fifo), data/target


def layer(entries: Iterable[Entry], *, mode: int | None = None, uid: int = 0,
          xattrs: dict[str, str] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.uid = uid
            if xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, mode or 0o755
                tf.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tf.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                tf.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                tf.addfile(ti)
            else:
                raw = data.encode() if isinstance(data, str) else data
                ti.size, ti.mode = len(raw), mode or 0o644
                tf.addfile(ti, io.BytesIO(raw))
    buf.seek(0)
    return buf


def fs_of(*layers: io.BytesIO) -> Filesystem:
    fs = Filesystem()
    for lay in layers:
        apply_tar(fs, lay)
    return fs


BASE = [("d", "dir", None), ("d/a", "file", "a"), ("d/sub", "dir", None),
        ("d/sub/b", "file", "b"), ("f", "file", "f")]


def test_whiteouts_remove_lower_paths_and_subtrees() -> None:
    fs = fs_of(layer(BASE), layer([("d/.wh.sub", "file", ""), (".wh.f", "file", "")]))
    assert sorted(fs.paths) == ["d", "d/a"]


def test_opaque_directory_hides_lower_children_only() -> None:
    fs = fs_of(layer(BASE), layer([("d", "dir", None), ("d/.wh..wh..opq", "file", ""),
                                   ("d/new", "file", "n")]))
    assert sorted(p for p in fs.paths if p.startswith("d")) == ["d", "d/new"]


def test_hardlink_groups_follow_later_writes() -> None:
    fs = fs_of(layer([("a", "file", "x")]), layer([("b", "link", "a"), ("c", "link", "a")]))
    assert fs.links("a") == ("b", "c")
    fs2 = fs_of(layer([("a", "file", "x")]), layer([("b", "link", "a"), ("c", "link", "a")]),
                layer([("c", "file", "changed")]))
    assert fs2.links("a") == ("b",)
    diffs = diff_fs(fs2, fs)
    assert "/a: hardlinks: xarch=['b'] buildkit=['b', 'c']" in diffs
    assert any(d.startswith("/c: size:") for d in diffs)


def test_every_field_difference_is_reported() -> None:
    ours = fs_of(layer([("x", "file", "one")], mode=0o4755, uid=5, xattrs={"user.k": "v"}))
    theirs = fs_of(layer([("x", "file", "two")], mode=0o755, uid=6))
    diffs = diff_fs(ours, theirs)
    assert '/x: mode: xarch="0o4755" buildkit="0o755"' in diffs
    assert "/x: uid: xarch=5 buildkit=6" in diffs
    assert '/x: content: xarch="one" buildkit="two"' in diffs
    assert any(d.startswith("/x: xattrs:") for d in diffs)
    assert diff_fs(fs_of(layer([("s", "sym", "a")])), fs_of(layer([("s", "sym", "b")]))) == [
        '/s: target: xarch="a" buildkit="b"']
    assert diff_fs(fs_of(layer([("p", "fifo", None)])), fs_of(layer([("p", "file", "")])))[0] \
        .startswith('/p: type: xarch="fifo" buildkit="file"')


def test_missing_and_extra_paths() -> None:
    diffs = diff_fs(fs_of(layer([("only-ours", "file", "")])), fs_of(layer([("only-theirs", "dir", None)])))
    assert diffs == ["/only-ours: only in xarch (file 0o644 0:0)",
                     "/only-theirs: missing in xarch (buildkit has a dir 0o755 0:0)"]


def test_runtime_mount_points_are_compared() -> None:
    # BuildKit v0.32 is the reference: an empty /proc or /etc/hosts in one image only is a
    # difference like any other (v0.8's leftover stubs were once ignored)
    base = [("etc", "dir", None), ("etc/fstab", "file", "x")]
    ours = fs_of(layer(base))
    theirs = fs_of(layer(base), layer([("proc", "dir", None), ("etc/hosts", "file", "")]))
    assert diff_fs(ours, theirs) == [
        "/etc/hosts: missing in xarch (buildkit has a file 0o644 0:0)",
        "/proc: missing in xarch (buildkit has a dir 0o755 0:0)",
    ]
    assert diff_fs(ours, theirs, ignore=["/proc", "/etc/hosts"]) == []


def test_history_every_field_but_created() -> None:
    h1: list[dict[str, Any]] = [
        {"created": "1", "created_by": "RUN a # buildkit", "comment": "buildkit.dockerfile.v0"},
        {"created_by": "ENV X=1", "empty_layer": True},
    ]
    h2: list[dict[str, Any]] = [
        {"created": "2", "created_by": "RUN a # buildkit", "comment": "buildkit.dockerfile.v0",
         "empty_layer": False},
    ]
    assert diff_history(h1, h2)[0] == "history: 2 entries in xarch, 1 in buildkit"
    assert diff_history(h1[:1], h2) == []
    assert diff_history([{"created_by": "ARG B=x"}], [{"created_by": "ARG B=y"}]) == [
        'history[0]: xarch={"created_by": "ARG B=x"} buildkit={"created_by": "ARG B=y"}']
    assert diff_history([{"created_by": "X", "comment": "a"}], [{"created_by": "X"}]) == [
        'history[0]: xarch={"comment": "a", "created_by": "X"} buildkit={"created_by": "X"}']


def test_config_every_key() -> None:
    c1 = {"architecture": "arm64", "variant": "v8", "created": "1",
          "config": {"Cmd": [], "WorkingDir": "", "Hostname": "h"},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]}}
    c2 = {"architecture": "arm64", "created": "2", "config": {"Cmd": None},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:c"]}}
    assert diff_config(c1, c2) == ["config.Cmd: xarch=[] buildkit=null",
                                   'config.Hostname: xarch="h" buildkit=null',
                                   'variant: xarch="v8" buildkit=null',
                                   "rootfs: 2 layers in xarch, 1 in buildkit"]
    same = {"os": "linux", "config": {"Env": ["A=1"], "Labels": {}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:x"]}}
    assert diff_config(same, {**same, "config": {"Env": ["A=1"]},
                              "rootfs": {"type": "layers", "diff_ids": ["sha256:y"]}}) == []


def test_expectations() -> None:
    view = view_from_layers({"config": {"User": "app"}},
                            [layer([("f", "file", "hello\n")], mode=0o600)])
    assert check_expectations(view, {"config": {"User": "app"},
                                     "files": {"/f": {"content": "hello\n", "mode": "600"}},
                                     "absent": ["/g"]}) == []
    problems = check_expectations(view, {"config": {"User": "root"},
                                         "files": {"/f": {"content": "bye\n", "uid": 1},
                                                   "/missing": {}},
                                         "absent": ["/f"]})
    assert len(problems) == 5
    assert check_expectations(view, {"absent": ["/f"]}, who="buildkit") == [
        "/f: present in buildkit, expected absent"]


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def test_layout_views_reads_buildkits_oci_output(tmp_path: Path) -> None:
    """BuildKit's type=oci output: index.json -> image index -> one manifest per platform."""
    manifests = []
    for arch in ("amd64", "arm64"):
        lay = _blob(tmp_path, gzip.compress(layer([("f", "file", arch)]).getvalue()))
        cfg = _blob(tmp_path, json.dumps({"architecture": arch, "os": "linux"}).encode())
        man = _blob(tmp_path, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **lay}],
        }).encode())
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **man,
                          "platform": {"architecture": arch, "os": "linux"}})
    idx = _blob(tmp_path, json.dumps({"schemaVersion": 2, "manifests": manifests}).encode())
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", **idx}]}))
    views = layout_views(tmp_path)
    assert sorted(views) == ["linux/amd64", "linux/arm64"]
    fs = views["linux/arm64"].fs
    assert fs.blobs[fs.node("f").sha256] == b"arm64"


def test_buildkitd_config() -> None:
    """Plain HTTP for the registry ports start.sh allows, and RUN --network=host."""
    conf = tomllib.loads(buildkit.config())
    assert conf["insecure-entitlements"] == ["network.host"]
    assert sorted(conf["registry"]) == [f"127.0.0.1:{p}" for p in range(5000, 5010)]
    assert all(r == {"http": True, "insecure": True} for r in conf["registry"].values())


def test_recorded_differences_are_exact_and_must_still_occur() -> None:
    problems = ["/a: mode: xarch=\"0o755\" buildkit=\"0o700\"", "/b: only in xarch (dir 0o755 0:0)"]
    spec = {"deviations": [problems[0]], "known_differences": ["/c: gone"]}
    assert accept_recorded(problems, spec) == [
        problems[1], "recorded in known_differences but no longer a difference: /c: gone"]
    # a near miss is not accepted
    assert accept_recorded(problems, {"deviations": ["/a: mode: xarch=\"0o755\""]})[:2] == problems
    assert accept_recorded(problems, {}) == problems


def test_every_recorded_difference_is_in_compat_md() -> None:
    """docs/compat.md names every case that records a difference."""
    from conformance.harness import load_cases

    compat = (Path(__file__).resolve().parents[2] / "docs" / "compat.md").read_text()
    for case in load_cases():
        if case.spec.get("deviations") or case.spec.get("known_differences") or case.spec.get("xfail"):
            assert f"`{case.name}`" in compat, f"{case.name} records a difference compat.md omits"


# -- the diffID report ---------------------------------------------------------------------


def test_diffid_pairs_and_report() -> None:
    from conformance import diffids

    def cfg(ids: list[str], hist: list[tuple[str, bool]]) -> dict[str, object]:
        return {"rootfs": {"type": "layers", "diff_ids": ids},
                "history": [{"created_by": c, **({"empty_layer": True} if e else {})}
                            for c, e in hist]}  # fmt: skip

    theirs = cfg(["sha256:a", "sha256:b", "sha256:c"],
                 [("ENV x=1", True), ("COPY f /f # buildkit", False),
                  ("RUN /bin/sh -c make # buildkit", False), ("ADD u /u # buildkit", False)])
    ours = cfg(["sha256:a", "sha256:X"], [])
    pairs = diffids.pair_layers("c1", "linux/amd64", ours, theirs)
    assert [(p.instruction, p.equal) for p in pairs] == [("COPY", True), ("RUN", False),
                                                         ("ADD", False)]
    text = diffids.report(pairs)
    assert text.startswith("diffID equal to BuildKit v0.32's: 1 of 3 layers (33 %)")
    assert "| COPY | 1 | 1 | 100 % |" in text and "- `c1` [linux/amd64] RUN:" in text
    assert diffids.by_platform({"linux/arm64": 1, "linux/amd64": 2},
                               {"linux/arm64/v8": 3}) == [("linux/arm64", 1, 3)]
    assert diffids.report([]) == "no layers compared\n"
