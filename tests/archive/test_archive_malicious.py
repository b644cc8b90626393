"""Hostile archives: each must raise IntegrityError and write nothing outside the root."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.archive.helpers import make_tar

from xarch.archive import apply_layer, clean_name, safe_join
from xarch.archive.safepath import UnsafePathError, is_within
from xarch.errors import IntegrityError


def _outside_snapshot(tmp: Path) -> set[str]:
    return {str(p) for p in tmp.rglob("*") if not is_within(tmp / "root", p)}


def _apply_expect_refusal(tmp_path: Path, tar: bytes, match: str = "unsafe layer entry") -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("host passwd")
    before = _outside_snapshot(tmp_path)
    with pytest.raises(IntegrityError, match=match) as ei:
        apply_layer(io.BytesIO(tar), root)
    assert "\n" not in str(ei.value)
    assert _outside_snapshot(tmp_path) == before
    assert (tmp_path / "etc/passwd").read_text() == "host passwd"
    return root


def test_dotdot_escape(tmp_path: Path) -> None:
    _apply_expect_refusal(tmp_path, make_tar(("file", "../../etc/x", "pwned")))


def test_dotdot_escape_in_the_middle(tmp_path: Path) -> None:
    _apply_expect_refusal(tmp_path, make_tar(("file", "a/../../etc/x", "pwned")))


def test_absolute_path_is_made_root_relative(tmp_path: Path) -> None:
    """Decision (containerd/BuildKit): a leading '/' is stripped, not an error."""
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(make_tar(("file", "/abs/path", "ok"))), root)
    assert (root / "abs/path").read_text() == "ok"
    assert not Path("/abs/path").exists()


def test_symlink_escaping_then_write_through_it(tmp_path: Path) -> None:
    root = _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "a", str(tmp_path / "etc")), ("file", "a/passwd", "pwned")),
        match="writes through symlink",
    )
    assert (root / "a").is_symlink()  # what came before the bad entry is still there


def test_relative_symlink_escaping_then_write_through_it(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "a", "../etc"), ("file", "a/passwd", "pwned")),
        match="writes through symlink",
    )


def test_symlink_chain_escaping(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(
            ("dir", "d", ""),
            ("symlink", "d/up", ".."),
            ("symlink", "x", "d/up/.."),
            ("file", "x/etc/passwd", "pwned"),
        ),
        match="writes through symlink",
    )


def test_hardlink_to_host_file(tmp_path: Path) -> None:
    root = _apply_expect_refusal(
        tmp_path, make_tar(("hardlink", "pw", str(tmp_path / "etc/passwd")))
    )
    assert not (root / "pw").exists()


def test_hardlink_to_etc_passwd(tmp_path: Path) -> None:
    _apply_expect_refusal(tmp_path, make_tar(("hardlink", "pw", "/etc/passwd")))


def test_hardlink_outside_via_dotdot(tmp_path: Path) -> None:
    _apply_expect_refusal(tmp_path, make_tar(("hardlink", "pw", "../etc/passwd")))


def test_hardlink_through_escaping_symlink(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "s", str(tmp_path / "etc")), ("hardlink", "pw", "s/passwd")),
    )


def test_hardlink_to_not_yet_extracted_path(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path, make_tar(("hardlink", "early", "later"), ("file", "later", "x"))
    )


def test_hardlink_to_symlink_does_not_follow_it(tmp_path: Path) -> None:
    """Linking to a symlink links the symlink itself, never the host file it names."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("s")
    apply_layer(
        io.BytesIO(make_tar(("symlink", "s", str(tmp_path / "secret")), ("hardlink", "h", "s"))),
        root,
    )
    assert (root / "h").is_symlink()
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino
    assert os.stat(tmp_path / "secret").st_nlink == 1


def test_symlink_loop(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "a", "b"), ("symlink", "b", "a"), ("file", "a/x", "x")),
        match="too many levels of symbolic links",
    )


def test_file_replacing_escaping_symlink_does_not_follow_it(tmp_path: Path) -> None:
    """Entry 's' -> host file, then a regular file 's': the link is replaced, not written through."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "victim").write_text("orig")
    apply_layer(
        io.BytesIO(make_tar(("symlink", "s", str(tmp_path / "victim")), ("file", "s", "new"))),
        root,
    )
    assert (tmp_path / "victim").read_text() == "orig"
    assert (root / "s").read_text() == "new" and not (root / "s").is_symlink()


def test_whiteout_through_escaping_symlink(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "a", str(tmp_path / "etc")), ("file", "a/.wh.passwd", "")),
    )


def test_opaque_through_escaping_symlink(tmp_path: Path) -> None:
    _apply_expect_refusal(
        tmp_path,
        make_tar(("symlink", "a", str(tmp_path / "etc")), ("file", "a/.wh..wh..opq", "")),
    )


# -- unit level ------------------------------------------------------------------------------


def test_clean_name() -> None:
    assert clean_name("/a//b/./c/") == "a/b/c"
    assert clean_name("a/../b") == "b"
    assert clean_name("./") == ""
    for bad in ("..", "../x", "a/../../x", "/../x", "a\x00b"):
        with pytest.raises(UnsafePathError):
            clean_name(bad)


def test_safe_join_resolves_in_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("/usr/lib", root / "lib")
    os.symlink("../../../../..", root / "usr/up")
    os.symlink("/", root / "slash")
    assert safe_join(root, "lib/x") == root / "usr/lib/x"
    assert safe_join(root, "usr/up/etc/passwd") == root / "etc/passwd"
    assert safe_join(root, "slash/../../etc") == root / "etc"
    assert safe_join(root, "lib", follow_final=False) == root / "lib"
    os.symlink("loop", root / "loop")
    with pytest.raises(UnsafePathError):
        safe_join(root, "loop/x")


_component = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "lnk_abs", "lnk_up", "lnk_rel", "lnk_dot", "f"]),
    st.text(alphabet=st.characters(blacklist_characters="/\x00"), min_size=1, max_size=8),
)


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hyp")
    root = base / "root"
    (root / "a/b").mkdir(parents=True)
    (root / "f").write_text("f")
    for d in (root, root / "a", root / "a/b"):
        os.symlink("/", d / "lnk_abs")
        os.symlink("../../../../../..", d / "lnk_up")
        os.symlink("a/b", d / "lnk_rel")
        os.symlink(".", d / "lnk_dot")
    return root


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_component, max_size=12), follow=st.booleans())
def test_safe_join_never_escapes(hostile_root: Path, parts: list[str], follow: bool) -> None:
    name = "/".join(parts)
    try:
        p = safe_join(hostile_root, name, follow_final=follow)
    except UnsafePathError:
        return
    assert is_within(hostile_root, p)
    # physically too: whatever exists of it resolves inside the root
    check = p if follow or p == hostile_root else p.parent
    assert is_within(os.path.realpath(hostile_root), os.path.realpath(check))


@settings(max_examples=300)
@given(parts=st.lists(_component, max_size=12))
def test_clean_name_is_relative_and_normal(parts: list[str]) -> None:
    name = "/".join(parts)
    try:
        c = clean_name(name)
    except UnsafePathError:
        return
    assert not c.startswith("/")
    assert all(comp not in ("", ".", "..") for comp in c.split("/")) or c == ""


def _reference_clean(name: str) -> str | None:
    """What clean_name must return, by the plain component rule (None: must be refused)."""
    if "\x00" in name:
        return None
    out: list[str] = []
    for comp in name.split("/"):
        if comp == "..":
            if not out:
                return None
            out.pop()
        elif comp not in ("", "."):
            out.append(comp)
    return "/".join(out)


@settings(max_examples=1000)
@given(name=st.one_of(st.lists(_component, max_size=12).map("/".join),
                      st.text(alphabet="ab./\x00\n", max_size=14)))  # fmt: skip
def test_clean_name_fast_path_agrees(name: str) -> None:
    """clean_name returns already-clean names as they are (a regex fast path): it must agree
    with the component rule on every input."""
    want = _reference_clean(name)
    if want is None:
        with pytest.raises(UnsafePathError):
            clean_name(name)
    else:
        assert clean_name(name) == want


def test_deferred_dir_metadata_not_applied_through_later_symlink(tmp_path: Path) -> None:
    """dir 'd' (mode 0777), dir 'd/passwd', then 'd' replaced by a symlink to the host: the
    deferred chmod of both dirs must not follow it."""
    root = tmp_path / "root"
    root.mkdir()
    host = tmp_path / "host"
    (host / "passwd").mkdir(parents=True)
    os.chmod(host, 0o700)
    os.chmod(host / "passwd", 0o700)
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("d", "d/passwd"):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o777
            tf.addfile(ti)
        ti = tarfile.TarInfo("d")
        ti.type, ti.linkname = tarfile.SYMTYPE, str(host)
        tf.addfile(ti)
    apply_layer(io.BytesIO(buf.getvalue()), root)
    assert os.stat(host).st_mode & 0o777 == 0o700
    assert os.stat(host / "passwd").st_mode & 0o777 == 0o700
    assert (root / "d").is_symlink()


# -- property: no archive, however hostile, writes outside the root ----------------------------

_names = st.lists(
    st.sampled_from(["a", "b", "c", "..", ".", "", "/", "x.wh", ".wh.a", ".wh..wh..opq"]),
    min_size=1,
    max_size=4,
).map("/".join)


def _targets(outside: str) -> st.SearchStrategy[str]:
    return st.one_of(
        _names,
        st.sampled_from(
            [outside, outside + "/passwd", "../outside", "../../outside/passwd", "..", "../.."]
        ),
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_hostile_archives_never_touch_outside(data: st.DataObject) -> None:
    import tempfile

    from xarch.errors import XarchError

    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        root = base / "root"
        root.mkdir()
        outside = base / "outside"
        outside.mkdir()
        (outside / "passwd").write_text("host")
        os.chmod(outside / "passwd", 0o600)
        os.chmod(outside, 0o755)
        members = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["file", "dir", "symlink", "hardlink"]),
                    _names,
                    _targets(str(outside)),
                ),
                min_size=1,
                max_size=8,
            )
        )
        try:
            tar = make_tar(
                *[(k, n, t if k in ("symlink", "hardlink") else "x") for k, n, t in members]
            )
        except (ValueError, OSError):
            return
        try:
            apply_layer(io.BytesIO(tar), root)
            event("applied")
        except XarchError as e:
            event(f"refused: {type(e).__name__}")
        assert sorted(p.name for p in base.iterdir()) == ["outside", "root"]
        assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
        assert (outside / "passwd").read_text() == "host"
        assert os.stat(outside / "passwd").st_nlink == 1
        assert os.stat(outside / "passwd").st_mode & 0o7777 == 0o600
        assert os.stat(outside).st_mode & 0o7777 == 0o755
