"""USER and --chown resolution through the image's own /etc/passwd and /etc/group."""

from __future__ import annotations

from pathlib import Path

from xarch.archive.safepath import safe_join
from xarch.errors import InputError


def _read_db(root: Path, name: str) -> list[list[str]]:
    try:
        text = safe_join(root, f"/etc/{name}").read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _lookup_user(root: Path, user: str) -> tuple[int, int] | None:
    for f in _read_db(root, "passwd"):
        if len(f) >= 4 and (f[0] == user or (user.isdigit() and f[2] == user)):
            try:
                return int(f[2]), int(f[3])
            except ValueError:
                continue
    return None


def _lookup_group(root: Path, group: str) -> int | None:
    for f in _read_db(root, "group"):
        if len(f) >= 3 and f[0] == group:
            try:
                return int(f[2])
            except ValueError:
                continue
    return None


def resolve_user(root: Path, spec: str) -> tuple[int, int, list[int]]:
    """``USER`` value -> (uid, gid, supplementary gids), as BuildKit v0.32 resolves it.

    The supplementary gids are the groups of the image's /etc/group that list the user (only
    when the USER has no explicit group), plus the primary gid, always (containerd's
    ``WithAdditionalGIDs`` ensures it): ``id`` prints ``groups=`` for every user. No USER is
    uid 0 looked up like ``USER 0``.
    """
    user, _, group = (spec or "0").partition(":")
    found = _lookup_user(root, user)
    if found is None:
        if not user.isdigit():
            raise InputError(
                f"unable to find user {user}: no matching entries in passwd file",
                hint="create the user in an earlier RUN or use a numeric uid",
            )
        uid, gid = int(user), 0
    else:
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = _lookup_group(root, group)
            if g is None:
                raise InputError(f"unable to find group {group}: no matching entries in group file")
            gid = g
    name = user
    if user.isdigit():
        name = next((f[0] for f in _read_db(root, "passwd") if len(f) >= 3 and f[2] == user), user)
    # every group listing the user (none with an explicit group), and the primary gid; the
    # kernel keeps the list sorted (setgroups), so sorted here too
    listed = (
        {
            int(f[2])
            for f in _read_db(root, "group")
            if len(f) >= 4 and f[2].isdigit() and name in f[3].split(",")
        }
        if not group
        else set()
    )
    return uid, gid, sorted(listed | {gid})


def resolve_chown(root: Path, spec: str) -> tuple[int, int]:
    """``--chown`` value -> (uid, gid). A user without a group uses the uid as gid (Docker)."""
    user, sep, group = spec.partition(":")
    primary: int | None = None
    if user.isdigit():
        uid = int(user)
    else:
        found = _lookup_user(root, user)
        if found is None:
            raise InputError(f"unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}")
        uid, primary = found
    if not sep or not group:
        # a user name: its primary group from /etc/passwd (BuildKit); a bare uid: gid = uid
        return uid, primary if primary is not None else uid
    if group.isdigit():
        return uid, int(group)
    g = _lookup_group(root, group)
    if g is None:
        raise InputError(f"unable to convert uid/gid chown string to host mapping: can't find gid for group {group}: no such group: {group}")
    return uid, g
