"""USER resolution for RUN: uid, gid and supplementary gids as BuildKit v0.32 gives them
(the differential corpus case user-supplementary-groups checks the same forms end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xarch.builder.users import resolve_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:App:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:root,app\ngrp:x:2345:\nother:x:777:app\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(
    ("user", "want"),
    [
        # listed groups plus the primary gid, which no group lists
        ("app", (1234, 2345, [10, 777, 2345])),
        ("1234", (1234, 2345, [10, 777, 2345])),
        # an explicit group: that group only
        ("app:other", (1234, 777, [777])),
        ("1234:777", (1234, 777, [777])),
        ("root:grp", (0, 2345, [2345])),
        # no USER is uid 0, looked up: root's groups and its primary gid
        ("", (0, 0, [0, 10])),
        ("root", (0, 0, [0, 10])),
        # a uid without a passwd entry: gid 0, which is its only group
        ("999", (999, 0, [0])),
    ],
)
def test_supplementary_groups_include_the_primary_gid(
    root: Path, user: str, want: tuple[int, int, list[int]]
) -> None:
    assert resolve_user(root, user) == want


def test_no_user_databases(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "") == (0, 0, [0])
    assert resolve_user(tmp_path, "5:6") == (5, 6, [6])
