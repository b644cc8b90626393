"""The build graph: the contract between the frontend and the solver.

A ``Vertex`` is one filesystem-producing operation (an op) over input vertices. Ops are
frozen dataclasses with a canonical JSON form, so a vertex digest is stable across runs and
processes: the digest of the op's JSON plus its inputs' digests. Identical vertices built for
different target platforms have identical digests, which is how the solver runs a
``FROM --platform=$BUILDPLATFORM`` stage once for every target.

Nothing here does I/O. Image metadata (env, cmd, history…) is not part of the graph: the
frontend computes it alongside, as BuildKit's dockerfile2llb does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

from xarch.oci.platform import Platform


def _jsonable(v: Any) -> Any:
    if isinstance(v, Platform):
        return str(v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(v[k]) for k in sorted(v)}
    if hasattr(v, "__dataclass_fields__"):
        return {f.name: _jsonable(getattr(v, f.name)) for f in fields(v) if f.metadata.get("key", True)}
    return v


class Op:
    """Base of every op. ``kind`` names it in the canonical JSON."""

    kind: ClassVar[str] = "op"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **_jsonable(self)}


@dataclass(frozen=True)
class ScratchOp(Op):
    """The empty filesystem."""

    kind: ClassVar[str] = "scratch"


@dataclass(frozen=True)
class ImageOp(Op):
    """A base image's root filesystem, pinned by manifest digest for one platform."""

    kind: ClassVar[str] = "image"
    ref: str
    manifest_digest: str
    platform: Platform


@dataclass(frozen=True)
class ContextOp(Op):
    """A named local directory (the build context, or a named --build-context).

    Its contents are not part of the digest: consumers' cache keys add the checksum of the
    files they read, so an unrelated change in the context does not bust the cache.
    """

    kind: ClassVar[str] = "context"
    name: str = "context"


@dataclass(frozen=True)
class MountSpec:
    """One RUN --mount. ``input`` indexes the vertex inputs (None: no filesystem input)."""

    type: str  # bind | cache | tmpfs | secret | ssh
    target: str
    input: int | None = None
    source: str = "/"
    readonly: bool = True
    cache_id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    secret_id: str = ""
    required: bool = False
    env: str = ""  # secret exposed as an env var instead of (or beside) a file
    size: int = 0  # tmpfs size in bytes, 0 = default


@dataclass(frozen=True)
class ExecOp(Op):
    """RUN: execute ``args`` on inputs[0] as root filesystem; the diff is the result."""

    kind: ClassVar[str] = "exec"
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    platform: Platform
    network: str = "default"  # default | none | host
    security: str = "sandbox"  # sandbox | insecure
    mounts: tuple[MountSpec, ...] = ()
    hostname: str = field(default="buildkitsandbox")
    # Files written under /dev/pipes for heredoc scripts with a shebang (name -> data).
    inline_files: tuple[tuple[str, str], ...] = ()
    # Proxy args are passed to the process but, like BuildKit, not part of the cache key.
    proxy_env: tuple[str, ...] = field(default=(), metadata={"key": False})


@dataclass(frozen=True)
class CopyOp(Op):
    """COPY/ADD: copy from inputs[1] (context, stage or image) onto inputs[0].

    With ``link`` the copied files form a layer independent of the destination (BuildKit's
    COPY --link): the solver builds it on scratch and stacks it.
    """

    kind: ClassVar[str] = "copy"
    sources: tuple[str, ...]
    dest: str
    cwd: str = "/"
    chown: str = ""
    chmod: str = ""
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    is_add: bool = False
    unpack: bool | None = None  # ADD: None = default (unpack local archives)
    checksum: str = ""
    keep_git_dir: bool = False
    # Heredoc files to create instead of copying from a source (name, data).
    inline_files: tuple[tuple[str, str], ...] = ()
    # The user the WORKDIR-style operations run as (for chown of created parents).
    user: str = ""
    platform: Platform | None = None
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class MkdirOp(Op):
    """WORKDIR: create ``path`` with parents, owned by ``user`` (as BuildKit's llb.Mkdir)."""

    kind: ClassVar[str] = "mkdir"
    path: str
    mode: int = 0o755
    user: str = ""
    platform: Platform | None = None
    source_date_epoch: int | None = None


@dataclass(frozen=True, eq=False)
class Vertex:
    """An op applied to input vertices. Equality and hashing are by digest."""

    op: Op
    inputs: tuple[Vertex, ...] = ()
    # Human label for progress ("[linux/arm64 build 2/5] RUN make"); not part of the digest.
    name: str = field(default="", compare=False)
    # Dockerfile location (start, end line) for error messages; not part of the digest.
    location: tuple[int, int] | None = field(default=None, compare=False)

    @cached_property
    def digest(self) -> str:
        doc = {"op": self.op.to_json(), "inputs": [i.digest for i in self.inputs]}
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vertex) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def walk(self) -> list[Vertex]:
        """Every vertex reachable from here, inputs before users, each once."""
        seen: dict[str, Vertex] = {}
        order: list[Vertex] = []
        stack: list[tuple[Vertex, bool]] = [(self, False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                if v.digest not in seen:
                    seen[v.digest] = v
                    order.append(v)
                continue
            if v.digest in seen:
                continue
            stack.append((v, True))
            for i in reversed(v.inputs):
                if i.digest not in seen:
                    stack.append((i, False))
        return order


SCRATCH = Vertex(ScratchOp())
