"""The comparator itself, on synthetic layers: it must see every kind of difference."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from typing import Any

from conformance.differential import (
    Filesystem,
    apply_tar,
    check_expectations,
    diff_config,
    diff_fs,
    diff_history,
    normalize_created_by,
    view_from_layers,
)

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
    assert "/a: hardlinks: xarch=['b'] docker=['b', 'c']" in diffs
    assert any(d.startswith("/c: size:") for d in diffs)


def test_every_field_difference_is_reported() -> None:
    ours = fs_of(layer([("x", "file", "one")], mode=0o4755, uid=5, xattrs={"user.k": "v"}))
    theirs = fs_of(layer([("x", "file", "two")], mode=0o755, uid=6))
    diffs = diff_fs(ours, theirs)
    assert '/x: mode: xarch="0o4755" docker="0o755"' in diffs
    assert "/x: uid: xarch=5 docker=6" in diffs
    assert '/x: content: xarch="one" docker="two"' in diffs
    assert any(d.startswith("/x: xattrs:") for d in diffs)
    assert diff_fs(fs_of(layer([("s", "sym", "a")])), fs_of(layer([("s", "sym", "b")]))) == [
        '/s: target: xarch="a" docker="b"']
    assert diff_fs(fs_of(layer([("p", "fifo", None)])), fs_of(layer([("p", "file", "")])))[0] \
        .startswith('/p: type: xarch="fifo" docker="file"')


def test_missing_and_extra_paths() -> None:
    diffs = diff_fs(fs_of(layer([("only-ours", "file", "")])), fs_of(layer([("only-theirs", "dir", None)])))
    assert diffs == ["/only-ours: only in xarch (file)",
                     "/only-theirs: missing in xarch (docker has a dir)"]


def test_runtime_stubs_are_ignored_only_when_empty_and_one_sided() -> None:
    base = [("etc", "dir", None), ("etc/fstab", "file", "x")]
    ours = fs_of(layer(base))
    theirs = fs_of(layer(base), layer([("proc", "dir", None), ("sys", "dir", None),
                                       ("etc/hosts", "file", ""), ("run", "dir", None),
                                       ("run/secrets", "dir", None)]))
    assert diff_fs(ours, theirs, mount_targets=["/run/secrets/tok"]) == []
    # without the mount target, /run is a real difference
    assert "/run: missing in xarch (docker has a dir)" in diff_fs(ours, theirs)
    # a stub with content is a real file
    theirs2 = fs_of(layer(base), layer([("etc/hosts", "file", "127.0.0.1 x")]))
    assert diff_fs(ours, theirs2) == ["/etc/hosts: missing in xarch (docker has a file)"]
    # a non-empty /proc is compared
    theirs3 = fs_of(layer(base), layer([("proc", "dir", None), ("proc/x", "file", "")]))
    assert len(diff_fs(ours, theirs3)) == 2


def test_noop_layers_become_empty_history_entries() -> None:
    base = layer([("etc", "dir", None), ("a", "file", "a")])
    noop = layer([("etc", "dir", None)])  # only a directory mtime changed
    real = layer([("b", "file", "b")])
    history = [{"created_by": "base"}, {"created_by": "RUN true"}, {"created_by": "RUN b"},
               {"created_by": "ENV x=1", "empty_layer": True}]
    view = view_from_layers({"history": history}, [base, noop, real], drop_noop_layers=True)
    assert [bool(h.get("empty_layer")) for h in view.history] == [False, True, False, True]


def test_created_by_normalisation() -> None:
    assert normalize_created_by("ARG A=x B") == "ARG A B"
    assert normalize_created_by("RUN |3 V=a V=b W=w /bin/sh -c x # buildkit") == \
        "RUN |2 V=b W=w /bin/sh -c x"
    assert normalize_created_by("EXPOSE map[80/tcp:{} 443/tcp:{}]") == "EXPOSE [443/tcp 80/tcp]"
    assert normalize_created_by("EXPOSE [80/tcp 443/tcp]") == "EXPOSE [443/tcp 80/tcp]"
    assert normalize_created_by('HEALTHCHECK &{["NONE"] "0s" "0s" "0s" \'\\x00\'}') == \
        'HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" \'\\x00\'}'
    assert normalize_created_by("COPY a /a # buildkit") == "COPY a /a"


def test_history_and_config_differences() -> None:
    h1: list[dict[str, Any]] = [{"created_by": "RUN a # buildkit"},
                                {"created_by": "ENV X=1", "empty_layer": True}]
    h2: list[dict[str, Any]] = [{"created_by": "RUN a # buildkit"}]
    assert diff_history(h1, h2)[0] == "history: 2 entries in xarch, 1 in docker"
    c1 = {"architecture": "arm64", "variant": "v8", "config": {"Cmd": [], "WorkingDir": ""}}
    c2 = {"architecture": "arm64", "config": {"Cmd": None}}
    assert diff_config(c1, c2) == ["config.Cmd: xarch=[] docker=null",
                                   'variant: xarch="v8" docker=null']


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
