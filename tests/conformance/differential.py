"""Differential comparison of two images: xarch's against the reference BuildKit's (v0.32).

An image is reduced to an :class:`ImageView` (config document, history, final filesystem) and
two views are compared field by field. The filesystem is computed by walking the layer tars
ourselves (whiteouts and opaque directories applied, hardlinks tracked as shared inodes), so a
layer xarch writes is read by code that is not xarch's applier.

What is not compared (docs/compat.md, "What the comparison ignores"):

- timestamps: ``created`` (config and history entries) and every mtime;
- ``rootfs.diff_ids``: the digests of layer tars, which hold those mtimes (the layers'
  content is compared as the final filesystem, their number as a count);
- a value ``null``, ``""`` or ``{}`` equals an absent key, in the config and in history
  entries (Go's ``omitempty``), and so does ``empty_layer: false``; ``[]`` is kept distinct
  from absent because ``CMD []`` / ``ENTRYPOINT []`` carry meaning.

Everything else is compared as written: every config key, every history field (``created_by``
byte for byte), every path of the final filesystem.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# top-level config keys compared on their own (history, rootfs) or not at all (created)
SEPARATE_KEYS = ("config", "created", "history", "rootfs")
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Inode:
    type: str  # file dir symlink char block fifo
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""
    target: str = ""  # symlink target
    dev: tuple[int, int] = (0, 0)
    xattrs: tuple[tuple[str, str], ...] = ()


@dataclass
class Filesystem:
    """path (relative, no leading slash) -> inode number; inode number -> Inode."""

    paths: dict[str, int] = field(default_factory=dict)
    inodes: dict[int, Inode] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (small files)
    _next: int = 0

    def new(self, node: Inode) -> int:
        self._next += 1
        self.inodes[self._next] = node
        return self._next

    def remove_tree(self, path: str, *, keep_self: bool = False) -> None:
        prefix = path + "/" if path else ""
        for p in [p for p in self.paths if p.startswith(prefix) or (p == path and not keep_self)]:
            del self.paths[p]

    def ensure_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent not in self.paths:
            # what BuildKit's and xarch's appliers do for a missing parent
            self.paths[parent] = self.new(Inode("dir", 0o755, 0, 0))
            parent = posixpath.dirname(parent)

    def node(self, path: str) -> Inode:
        return self.inodes[self.paths[path]]

    def links(self, path: str) -> tuple[str, ...]:
        """Other paths sharing this path's inode (hardlink group), sorted."""
        ino = self.paths[path]
        return tuple(sorted(p for p, i in self.paths.items() if i == ino and p != path))


def _norm(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    name = posixpath.normpath(name) if name not in ("", ".") else ""
    return "" if name == "." else name


def _xattrs(ti: tarfile.TarInfo) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in ti.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out.append((k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape").hex()))
    return tuple(sorted(out))


def apply_tar(fs: Filesystem, stream: BinaryIO) -> None:
    """Apply one uncompressed layer tar onto ``fs`` (OCI image-spec layer semantics)."""
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        for ti in tf:
            data = None
            if ti.isreg():
                f = tf.extractfile(ti)
                data = f.read() if f is not None else b""
            members.append((ti, data))
    # whiteouts hide lower layers only: apply them all before this layer's own entries
    for ti, _ in members:
        name = _norm(ti.name)
        base = posixpath.basename(name)
        parent = posixpath.dirname(name)
        if base == OPAQUE:
            fs.remove_tree(parent, keep_self=True)
        elif base.startswith(WHITEOUT):
            fs.remove_tree(posixpath.join(parent, base[len(WHITEOUT):]))
    for ti, data in members:
        name = _norm(ti.name)
        if not name or posixpath.basename(name).startswith(WHITEOUT):
            continue
        fs.ensure_parents(name)
        if ti.islnk():
            target = _norm(ti.linkname)
            if name in fs.paths and fs.node(name).type == "dir":
                fs.remove_tree(name)
            if target in fs.paths:
                fs.paths[name] = fs.paths[target]
            else:  # dangling hardlink: recorded so the diff shows it
                fs.paths[name] = fs.new(Inode("dangling-hardlink", 0, 0, 0, target=target))
            continue
        mode = ti.mode & 0o7777
        xattrs = _xattrs(ti)
        if ti.isdir():
            node = Inode("dir", mode, ti.uid, ti.gid, xattrs=xattrs)
            if name in fs.paths and fs.node(name).type == "dir":
                fs.inodes[fs.paths[name]] = node  # a dir entry over a dir merges, keeps children
                continue
        elif ti.issym():
            node = Inode("symlink", mode, ti.uid, ti.gid, target=ti.linkname, xattrs=xattrs)
        elif ti.isreg():
            assert data is not None
            sha = hashlib.sha256(data).hexdigest()
            if len(data) <= 65536:
                fs.blobs[sha] = data
            node = Inode("file", mode, ti.uid, ti.gid, len(data), sha, xattrs=xattrs)
        elif ti.ischr() or ti.isblk():
            node = Inode("char" if ti.ischr() else "block", mode, ti.uid, ti.gid,
                         dev=(ti.devmajor, ti.devminor), xattrs=xattrs)
        elif ti.isfifo():
            node = Inode("fifo", mode, ti.uid, ti.gid, xattrs=xattrs)
        else:
            raise ValueError(f"unsupported tar entry type {ti.type!r} for {name}")
        if name in fs.paths:
            fs.remove_tree(name)
        fs.paths[name] = fs.new(node)


@dataclass
class ImageView:
    config: dict[str, Any]  # the whole config document
    fs: Filesystem

    @property
    def cfg(self) -> dict[str, Any]:
        c = self.config.get("config") or {}
        assert isinstance(c, dict)
        return c

    @property
    def history(self) -> list[dict[str, Any]]:
        h = self.config.get("history") or []
        assert isinstance(h, list)
        return h


def view_from_layers(config: Mapping[str, Any], layers: Iterable[BinaryIO]) -> ImageView:
    """Apply ``layers`` (uncompressed tars) in order."""
    fs = Filesystem()
    for stream in layers:
        apply_tar(fs, stream)
    return ImageView(dict(config), fs)


# -- comparison -------------------------------------------------------------------------------


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == {}


def normalize_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if not _empty(v)}


def history_entry(h: Mapping[str, Any]) -> dict[str, Any]:
    """A history entry as compared: every field but ``created``; ``empty_layer`` only if set."""
    return {k: v for k, v in h.items()
            if k != "created" and not _empty(v) and not (k == "empty_layer" and v is False)}


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return json.dumps(v, sort_keys=True)


def diff_fs(ours: Filesystem, theirs: Filesystem, *, ignore: Iterable[str] = ()) -> list[str]:
    skip = {_norm(p) for p in ignore}
    out: list[str] = []
    for p in sorted(set(ours.paths) | set(theirs.paths)):
        if p in skip or any(p.startswith(s + "/") for s in skip if s):
            continue
        if p not in theirs.paths:
            n = ours.node(p)
            out.append(f"/{p}: only in xarch ({n.type} {oct(n.mode)} {n.uid}:{n.gid})")
            continue
        if p not in ours.paths:
            n = theirs.node(p)
            out.append(f"/{p}: missing in xarch (buildkit has a {n.type} {oct(n.mode)} "
                       f"{n.uid}:{n.gid})")
            continue
        a, b = ours.node(p), theirs.node(p)
        for f in ("type", "mode", "uid", "gid", "size", "sha256", "target", "dev", "xattrs"):
            va, vb = getattr(a, f), getattr(b, f)
            if va != vb:
                if f == "mode":
                    va, vb = oct(va), oct(vb)
                if f == "sha256":
                    ca, cb = ours.blobs.get(va), theirs.blobs.get(vb)
                    if ca is not None and cb is not None and max(len(ca), len(cb)) <= 200:
                        va, vb = ca.decode("utf-8", "replace"), cb.decode("utf-8", "replace")
                        f = "content"
                out.append(f"/{p}: {f}: xarch={_fmt(va)} buildkit={_fmt(vb)}")
        la, lb = ours.links(p), theirs.links(p)
        if la != lb:
            out.append(f"/{p}: hardlinks: xarch={list(la)} buildkit={list(lb)}")
    return out


def diff_config(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    a = normalize_config(ours.get("config") or {})
    b = normalize_config(theirs.get("config") or {})
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"config.{k}: xarch={_fmt(a.get(k))} buildkit={_fmt(b.get(k))}")
    for k in sorted((set(ours) | set(theirs)) - set(SEPARATE_KEYS)):
        va, vb = ours.get(k), theirs.get(k)
        if _empty(va) and _empty(vb):
            continue
        if va != vb:
            out.append(f"{k}: xarch={_fmt(va)} buildkit={_fmt(vb)}")
    ra, rb = ours.get("rootfs") or {}, theirs.get("rootfs") or {}
    if ra.get("type") != rb.get("type"):
        out.append(f"rootfs.type: xarch={_fmt(ra.get('type'))} buildkit={_fmt(rb.get('type'))}")
    na, nb = len(ra.get("diff_ids") or ()), len(rb.get("diff_ids") or ())
    if na != nb:
        out.append(f"rootfs: {na} layers in xarch, {nb} in buildkit")
    return out


def diff_history(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    a, b = [history_entry(h) for h in ours], [history_entry(h) for h in theirs]
    out: list[str] = []
    if len(a) != len(b):
        out.append(f"history: {len(a)} entries in xarch, {len(b)} in buildkit")
    for i in range(max(len(a), len(b))):
        ea = a[i] if i < len(a) else None
        eb = b[i] if i < len(b) else None
        if ea != eb:
            out.append(f"history[{i}]: xarch={_fmt(ea) if ea else '-'} "
                       f"buildkit={_fmt(eb) if eb else '-'}")
    return out


def diff_images(ours: ImageView, theirs: ImageView, *,
                ignore_paths: Iterable[str] = ()) -> list[str]:
    out = diff_config(ours.config, theirs.config)
    out += diff_history(ours.history, theirs.history)
    out += diff_fs(ours.fs, theirs.fs, ignore=ignore_paths)
    return out


RECORDED_KEYS = ("deviations", "known_differences")


def accept_recorded(problems: list[str], spec: Mapping[str, Any]) -> list[str]:
    """``problems`` without the differences ``spec`` (case.toml) records word for word under
    :data:`RECORDED_KEYS`; a recorded difference missing from ``problems`` is a problem itself
    (stale: fixed, or BuildKit changed)."""
    recorded = {line: key for key in RECORDED_KEYS for line in spec.get(key) or ()}
    out = [p for p in problems if p not in recorded]
    out += [f"recorded in {key} but no longer a difference: {line}"
            for line, key in recorded.items() if line not in problems]
    return out


# -- hand-written expectations ----------------------------------------------------------------


def check_expectations(view: ImageView, expect: Mapping[str, Any], who: str = "xarch") -> list[str]:
    """``expect`` from case.toml, checked against ``who``'s image: ``config`` (subset of the
    config's ``config``), ``history`` (created_by list, ``# buildkit`` removed, base entries
    excluded: compared against the tail), ``files`` (path -> type/content/mode/uid/gid/
    target/links), ``absent``."""
    out: list[str] = []
    cfg = normalize_config(view.cfg)
    for k, v in (expect.get("config") or {}).items():
        got = cfg.get(k)
        if _empty(v) and got is None:
            continue
        if got != v:
            out.append(f"config.{k}: {who}={_fmt(got)} expected={_fmt(v)}")
    if "history" in expect:
        want = list(expect["history"])
        got_h = [h.get("created_by", "").removesuffix(" # buildkit")
                 for h in view.history][-len(want):]
        if got_h != want:
            out.append(f"history tail: {who}={got_h} expected={want}")
    fs = view.fs
    for path, spec in (expect.get("files") or {}).items():
        p = _norm(path)
        if p not in fs.paths:
            out.append(f"{path}: missing in {who} (expected {spec.get('type', 'file')})")
            continue
        n = fs.node(p)
        if n.type != spec.get("type", "file"):
            out.append(f"{path}: type: {who}={n.type} expected={spec.get('type', 'file')}")
        if "mode" in spec and n.mode != int(str(spec["mode"]), 8):
            out.append(f"{path}: mode: {who}={oct(n.mode)} expected=0o{spec['mode']}")
        for k in ("uid", "gid", "target"):
            if k in spec and getattr(n, k) != spec[k]:
                out.append(f"{path}: {k}: {who}={getattr(n, k)!r} expected={spec[k]!r}")
        if "content" in spec:
            want_b = spec["content"].encode()
            got_b = fs.blobs.get(n.sha256) if n.type == "file" else None
            if got_b != want_b:
                out.append(f"{path}: content: {who}={got_b!r} expected={want_b!r}")
        if "links" in spec:
            want_l = tuple(sorted(_norm(x) for x in spec["links"]))
            if fs.links(p) != want_l:
                out.append(f"{path}: hardlinks: {who}={list(fs.links(p))} expected={list(want_l)}")
    for path in expect.get("absent") or ():
        if _norm(path) in fs.paths:
            out.append(f"{path}: present in {who}, expected absent")
    return out
