"""Differential comparison of two images: xarch's against Docker BuildKit's.

An image is reduced to an :class:`ImageView` (config fields, history, final filesystem) and two
views are compared field by field. The filesystem is computed by walking the layer tars
ourselves (whiteouts and opaque directories applied, hardlinks tracked as shared inodes), so a
layer xarch writes is read by code that is not xarch's applier.

Normalisation decisions (documented in docs/compat.md, "Differential tier"):

- timestamps (``created``, mtimes) are never compared;
- history ``comment`` is BuildKit's identity (``buildkit.dockerfile.v0``) and is ignored;
  ``created_by`` is compared after removing a trailing `` # buildkit``; the ``|N k=v`` build-arg
  prefix of ``RUN`` entries is compared as is (BuildKit's is stable);
- config values that are ``null``, ``""`` or ``{}`` equal an absent key (Docker's config
  struct serialises them either way); ``[]`` is kept distinct from absent because
  ``CMD []`` / ``ENTRYPOINT []`` carry meaning;
- runtime mount stubs: an *empty* file or directory present in one image and absent in the
  other, at a mount point of the runtime (``/proc``, ``/sys``, ``/dev`` and its standard
  children, ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``) or at a ``RUN --mount``
  target of the Dockerfile (secrets: ``/run/secrets/<id>``), together with directories that
  exist only to hold such stubs, is left out. Docker 20.10's BuildKit (v0.8) leaves the
  mount points runc creates in the layer of a ``RUN``; BuildKit since v0.10
  (``MountStubsCleaner``) removes empty stubs, as xarch does. Anything else about those
  paths (content, a stub present in both) is still compared.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

CONFIG_KEYS = (
    "Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
    "Healthcheck", "StopSignal", "Shell", "OnBuild", "ArgsEscaped",
)
PLATFORM_KEYS = ("architecture", "os", "variant", "os.version", "os.features")
RUNTIME_STUBS = ("etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev",
                 "dev/pts", "dev/shm", "dev/mqueue")
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
            # what docker's and xarch's appliers do for a missing parent
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


def view_from_layers(config: Mapping[str, Any], layers: Iterable[BinaryIO], *,
                     drop_noop_layers: bool = False) -> ImageView:
    """Apply ``layers`` in order. ``drop_noop_layers``: a layer that changes nothing but
    mtimes marks its history entry ``empty_layer`` (see :func:`read_docker_save`)."""
    fs = Filesystem()
    noop: list[bool] = []
    for stream in layers:
        before = _state(fs) if drop_noop_layers else None
        apply_tar(fs, stream)
        noop.append(before is not None and before == _state(fs))
    config = dict(config)
    if drop_noop_layers:
        config["history"] = _mark_empty(config.get("history") or [], noop)
    return ImageView(config, fs)


def _state(fs: Filesystem) -> dict[str, tuple[Inode, tuple[str, ...]]]:
    return {p: (fs.inodes[i], fs.links(p) if _shared(fs, i) else ()) for p, i in fs.paths.items()}


def _shared(fs: Filesystem, ino: int) -> bool:
    return sum(1 for i in fs.paths.values() if i == ino) > 1


def _mark_empty(history: list[dict[str, Any]], noop: list[bool]) -> list[dict[str, Any]]:
    out = []
    i = 0
    for h in history:
        h = dict(h)
        if not h.get("empty_layer"):
            if i < len(noop) and noop[i]:
                h["empty_layer"] = True
            i += 1
        out.append(h)
    return out


def read_docker_save(tar_path: str) -> dict[str, ImageView]:
    """``docker save`` archive -> {repo tag: view}.

    Docker's own exporter keeps a layer for a step that changed nothing (an empty tar, or
    one holding only ``/etc`` because the runtime's ``/etc/hosts`` stub touched its mtime);
    BuildKit's image exporter drops empty layers and marks the history entry
    ``empty_layer`` (``normalizeLayersAndHistory``), as xarch does. The view follows
    BuildKit's rule: a Docker layer that changes nothing but mtimes counts as empty.
    """
    out: dict[str, ImageView] = {}
    with tarfile.open(tar_path, "r:") as tf:
        manifest = json.load(_member(tf, "manifest.json"))
        for entry in manifest:
            config = json.load(_member(tf, entry["Config"]))
            layers = [io.BytesIO(_member(tf, layer).read()) for layer in entry["Layers"]]
            view = view_from_layers(config, layers, drop_noop_layers=True)
            for tag in entry.get("RepoTags") or []:
                out[tag] = view
    return out


def _member(tf: tarfile.TarFile, name: str) -> BinaryIO:
    f = tf.extractfile(name)
    if f is None:
        raise ValueError(f"{name} is not a regular file in the docker-save archive")
    return f  # type: ignore[return-value]


# -- comparison -------------------------------------------------------------------------------


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == {}


def normalize_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in CONFIG_KEYS if k in cfg and not _empty(cfg[k])}


_RUN_ARGS = re.compile(r"^RUN \|(\d+) ")
_EXPOSE_MAP = re.compile(r"^EXPOSE map\[(.*)\]$")
_HC_OLD = re.compile(r'^(HEALTHCHECK &\{\[.*\] "[^"]*" "[^"]*" "[^"]*") (\'.*\'\})$')


def normalize_created_by(s: str) -> str:
    """One shape for history lines whose format changed between BuildKit versions
    (Docker 20.10 ships BuildKit v0.8; xarch follows current BuildKit):

    - `` # buildkit`` suffix removed (both write it; kept out of the diff for readability);
    - ``ARG k=v``: keys only. v0.8 writes the Dockerfile's default, current BuildKit the
      resolved value (build-arg, default, or global/automatic ARG);
    - ``RUN |N k=v ...``: a key repeated (an ARG declared twice) kept once, last value
      wins, as current BuildKit's ``runCommandString`` does; v0.8 repeats it;
    - ``EXPOSE map[a:{} b:{}]`` (v0.8 prints the port map, sorted) == ``EXPOSE [a b]``, and
      the ports are compared as a sorted list (current BuildKit keeps Dockerfile order);
    - ``HEALTHCHECK &{[...] "i" "t" "s" 'r'}`` (v0.8, no StartInterval field) gets the
      ``"0s"`` StartInterval current BuildKit prints.
    """
    s = s.removesuffix(" # buildkit")
    if s.startswith("ARG "):
        return "ARG " + " ".join(kv.split("=", 1)[0] for kv in s[4:].split(" ") if kv)
    m = _RUN_ARGS.match(s)
    if m:
        n = int(m.group(1))
        words = s[m.end():].split(" ")
        pairs, rest = words[:n], words[n:]
        merged: dict[str, str] = {}
        for kv in pairs:
            k, _, v = kv.partition("=")
            merged.pop(k, None)
            merged[k] = v
        return " ".join([f"RUN |{len(merged)}", *(f"{k}={v}" for k, v in merged.items()), *rest])
    m = _EXPOSE_MAP.match(s)
    if m:
        s = "EXPOSE [" + " ".join(p.removesuffix(":{}") for p in m.group(1).split(" ") if p) + "]"
    if s.startswith("EXPOSE [") and s.endswith("]"):
        return "EXPOSE [" + " ".join(sorted(s[8:-1].split())) + "]"
    m = _HC_OLD.match(s)
    if m:
        return f'{m.group(1)} "0s" {m.group(2)}'
    return s


def history_shape(history: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(normalize_created_by(h.get("created_by", "")), bool(h.get("empty_layer")))
            for h in history]


def _stub_paths(a: Filesystem, b: Filesystem, extra: Iterable[str] = ()) -> set[str]:
    """Runtime mount stubs present in exactly one of the two filesystems: an empty file or an
    empty directory at a mount point of the runtime (or of a ``RUN --mount`` target), plus
    the directories created only to hold such stubs."""
    candidates = set()
    for p in (*RUNTIME_STUBS, *extra):
        p = _norm(p)
        while p:  # the runtime creates missing parents of a mount point too
            candidates.add(p)
            p = posixpath.dirname(p)
    ignored: set[str] = set()
    # deepest first, so a stub directory holding only stubs is itself a stub
    for p in sorted(candidates, key=lambda x: -x.count("/")):
        in_a, in_b = p in a.paths, p in b.paths
        if in_a == in_b:
            continue
        fs = a if in_a else b
        n = fs.node(p)
        children = [c for c in fs.paths if c.startswith(p + "/")]
        if (n.type == "file" and n.size == 0) or (
            n.type == "dir" and all(c in ignored for c in children)
        ):
            ignored.add(p)
    for fs, other in ((a, b), (b, a)):
        parents = {posixpath.dirname(p) for p in ignored}
        while parents - {""}:
            nxt = set()
            for d in parents - {""}:
                if d in fs.paths and d not in other.paths and fs.node(d).type == "dir":
                    children = [c for c in fs.paths if c.startswith(d + "/")]
                    if all(c in ignored for c in children):
                        ignored.add(d)
                        nxt.add(posixpath.dirname(d))
            parents = nxt
    return ignored


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return json.dumps(v, sort_keys=True)


def diff_fs(ours: Filesystem, theirs: Filesystem, *, ignore: Iterable[str] = (),
            mount_targets: Iterable[str] = ()) -> list[str]:
    skip = _stub_paths(ours, theirs, mount_targets) | {_norm(p) for p in ignore}
    out: list[str] = []
    for p in sorted(set(ours.paths) | set(theirs.paths)):
        if p in skip or any(p.startswith(s + "/") for s in skip if s):
            continue
        if p not in theirs.paths:
            out.append(f"/{p}: only in xarch ({ours.node(p).type})")
            continue
        if p not in ours.paths:
            out.append(f"/{p}: missing in xarch (docker has a {theirs.node(p).type})")
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
                out.append(f"/{p}: {f}: xarch={_fmt(va)} docker={_fmt(vb)}")
        la, lb = ours.links(p), theirs.links(p)
        if la != lb:
            out.append(f"/{p}: hardlinks: xarch={list(la)} docker={list(lb)}")
    return out


def diff_config(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    a = normalize_config(ours.get("config") or {})
    b = normalize_config(theirs.get("config") or {})
    for k in CONFIG_KEYS:
        if a.get(k) != b.get(k):
            out.append(f"config.{k}: xarch={_fmt(a.get(k))} docker={_fmt(b.get(k))}")
    for k in PLATFORM_KEYS:
        va, vb = ours.get(k), theirs.get(k)
        if _empty(va) and _empty(vb):
            continue
        if va != vb:
            out.append(f"{k}: xarch={_fmt(va)} docker={_fmt(vb)}")
    return out


def diff_history(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    a, b = history_shape(ours), history_shape(theirs)
    out: list[str] = []
    if len(a) != len(b):
        out.append(f"history: {len(a)} entries in xarch, {len(b)} in docker")
    for i in range(max(len(a), len(b))):
        ea = a[i] if i < len(a) else None
        eb = b[i] if i < len(b) else None
        if ea != eb:
            fa = f"{ea[0]!r} empty_layer={ea[1]}" if ea else "-"
            fb = f"{eb[0]!r} empty_layer={eb[1]}" if eb else "-"
            out.append(f"history[{i}]: xarch={fa} docker={fb}")
    return out


def diff_images(ours: ImageView, theirs: ImageView, *, history: bool = True,
                ignore_paths: Iterable[str] = (), mount_targets: Iterable[str] = ()) -> list[str]:
    out = diff_config(ours.config, theirs.config)
    if history:
        out += diff_history(ours.history, theirs.history)
    out += diff_fs(ours.fs, theirs.fs, ignore=ignore_paths, mount_targets=mount_targets)
    return out


# -- hand-written expectations (features Docker 20.10 cannot build) ---------------------------


def check_expectations(view: ImageView, expect: Mapping[str, Any]) -> list[str]:
    """``expect`` from case.toml: ``config`` (subset of the config's ``config``), ``platform``
    keys, ``history`` (created_by list, ``# buildkit`` removed, base entries excluded: compared
    against the tail), ``files`` (path -> type/content/mode/uid/gid/target/links), ``absent``."""
    out: list[str] = []
    cfg = normalize_config(view.cfg)
    for k, v in (expect.get("config") or {}).items():
        got = cfg.get(k)
        if _empty(v) and got is None:
            continue
        if got != v:
            out.append(f"config.{k}: xarch={_fmt(got)} expected={_fmt(v)}")
    if "history" in expect:
        want = list(expect["history"])
        got_h = [normalize_created_by(h.get("created_by", "")) for h in view.history][-len(want):]
        if got_h != want:
            out.append(f"history tail: xarch={got_h} expected={want}")
    fs = view.fs
    for path, spec in (expect.get("files") or {}).items():
        p = _norm(path)
        if p not in fs.paths:
            out.append(f"{path}: missing in xarch (expected {spec.get('type', 'file')})")
            continue
        n = fs.node(p)
        if n.type != spec.get("type", "file"):
            out.append(f"{path}: type: xarch={n.type} expected={spec.get('type', 'file')}")
        if "mode" in spec and n.mode != int(str(spec["mode"]), 8):
            out.append(f"{path}: mode: xarch={oct(n.mode)} expected=0o{spec['mode']}")
        for k in ("uid", "gid", "target"):
            if k in spec and getattr(n, k) != spec[k]:
                out.append(f"{path}: {k}: xarch={getattr(n, k)!r} expected={spec[k]!r}")
        if "content" in spec:
            want_b = spec["content"].encode()
            got_b = fs.blobs.get(n.sha256) if n.type == "file" else None
            if got_b != want_b:
                out.append(f"{path}: content: xarch={got_b!r} expected={want_b!r}")
        if "links" in spec:
            want_l = tuple(sorted(_norm(x) for x in spec["links"]))
            if fs.links(p) != want_l:
                out.append(f"{path}: hardlinks: xarch={list(fs.links(p))} expected={list(want_l)}")
    for path in expect.get("absent") or ():
        if _norm(path) in fs.paths:
            out.append(f"{path}: present in xarch, expected absent")
    return out
