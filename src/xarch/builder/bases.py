"""Base images (``FROM``) resolved as BuildKit resolves them.

For every build, each base reference is resolved once, for all platforms of the build:

* a name the user put in the local store (``build -t``, ``tag``, ``copy`` into the store) is
  used as it is, like Docker's image store;
* ``name@sha256:…`` is content-addressed: once its content is in the store it never needs the
  network again;
* ``name:tag`` is asked of its registry on every build (one manifest request, shared by every
  platform), so a tag that moved is seen at once; the answer is recorded in the store's pull
  cache (``LocalStore.record_pull``), never under the user's names. With the registry
  unreachable, the last recorded resolution is used, with a one-line warning that says so.
  ``pull=True`` (``--pull``) always asks the registry and refetches what it names.

Only the platform a stage runs on is fetched (a ``--platform=$BUILDPLATFORM`` stage asks for
the build platform only), through ``xarch.image``'s one platform selector; a single-platform
base must declare the platform asked for, or the build fails naming both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xarch.errors import NetworkError, NotFoundError
from xarch.frontend.dockerfile.to_graph import ResolvedImage
from xarch.image.view import (
    ImageView,
    RootView,
    open_manifest,
    open_platform,
    open_root,
    platform_descriptor,
)
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform
from xarch.oci.reference import Reference
from xarch.transports.base import ImageSource
from xarch.transports.copy import copy_image
from xarch.transports.resolve import open_source, parse_location
from xarch.transports.store import (
    ContentSink,
    ContentSource,
    LocalStore,
    StoreSource,
    normalize_name,
)


@dataclass(frozen=True)
class _Root:
    view: RootView
    remote: str | None  # the reference to fetch missing platforms from (None: local only)
    stored: bool = False  # a name in the user's local store


class BaseResolver:
    """The build's ``ImageResolver``: see the module docstring. Thread-safe."""

    def __init__(
        self,
        store: LocalStore,
        *,
        registry_options: Any = None,
        pull: bool = False,
        info: Callable[[str], None] = lambda _m: None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.registry_options = registry_options
        self.pull = pull
        self.info = info
        self.warn = warn or info
        self._lock = threading.Lock()
        self._roots: dict[str, _Root] = {}

    def resolve(self, ref: str, platform: Platform) -> ResolvedImage:
        name = normalize_name(ref)
        with self._lock:
            root = self._roots.get(name)
            if root is None:
                root = self._roots[name] = self._root(ref, name)
            try:
                view = self._platform(name, root, platform)
            except NotFoundError as e:
                if not root.stored or e.hint is None or "xarch rm" in e.hint:
                    raise
                # e.g. a partial copy an older xarch stored under the base's own name
                raise NotFoundError(e.message, hint=(
                    f"{name} is an image in your local store (xarch ls), used as it is; "
                    f"`xarch rm {name}` to build from its registry instead")) from None
        cfg = view.config.platform
        if (cfg.os, cfg.normalize().architecture) != (platform.os, platform.architecture):
            # an index entry that lies about its image: never build on another architecture
            raise NotFoundError(
                f"base image {name}: the index lists {view.descriptor.digest} as {platform}, "
                f"but its config is for {cfg.normalize()}",
                hint="fix the base image's index",
            )
        return ResolvedImage(ref=name, manifest_digest=str(view.descriptor.digest),
                             platform=cfg, config=json.loads(view.config.raw))

    # -- roots ---------------------------------------------------------------------------------
    def _root(self, ref: str, name: str) -> _Root:
        stored = self.store.find_name(name)
        if stored is not None:
            return _Root(open_root(StoreSource(self.store, name), stored), None, stored=True)
        pinned = Reference.parse(name).digest
        if pinned is not None and not self.pull and self.store.content.has(pinned):
            desc = self.store.resolve(name)
            return _Root(open_root(ContentSource(self.store, name, desc), desc), name)
        try:
            return self._remote_root(name)
        except NetworkError as e:
            rec = None if self.pull else self.store.pulled(name)
            if rec is None or not self.store.content.has(rec.descriptor):
                raise NotFoundError(
                    f"base image {ref} is not in the local store and its registry is "
                    f"unreachable: {e.message}",
                    hint="check the name and the network, or create it locally (xarch bootstrap)",
                ) from None
            when = rec.resolved.strftime("%Y-%m-%dT%H:%M:%SZ") if rec.resolved else "earlier"
            self.warn(
                f"warning: registry of {name} is unreachable ({e.message}); using the cached "
                f"{rec.descriptor.digest} resolved {when}"
            )
            return _Root(open_root(ContentSource(self.store, name, rec.descriptor), rec.descriptor),
                         None)
        except NotFoundError as e:
            raise NotFoundError(
                f"base image {ref} not found: not in the local store, and the registry says: "
                f"{e.message}",
                hint="check the name, or create it locally (e.g. xarch bootstrap)",
            ) from None

    def _remote_root(self, name: str) -> _Root:
        src = self._open(name)
        try:
            desc = src.resolve()  # the one manifest request (HEAD) for this base and build
            if self.store.content.has(desc) and not self.pull:
                view = open_root(ContentSource(self.store, name, desc), desc)
            else:
                view = open_root(src, desc)
            self.store.record_pull(name, view.descriptor, view.raw)
        finally:
            src.close()
        self.info(f"resolved {name} to {view.descriptor.digest}")
        return _Root(view, name)

    def _open(self, name: str) -> ImageSource:
        return open_source(parse_location("docker://" + name, registry_options=self.registry_options))

    # -- platforms -----------------------------------------------------------------------------
    def _platform(self, name: str, root: _Root, platform: Platform) -> ImageView:
        child = platform_descriptor(root.view, platform)  # the index must list the platform
        view = self._local(name, root, child, platform)
        if view is not None:
            return view
        if root.remote is None:
            raise NotFoundError(
                f"base image {name}: its {platform} image is not in the local store, and it "
                "cannot be fetched (local image, or registry unreachable)",
                hint="retry when the registry is reachable, or pull the image again",
            )
        repo = Reference.parse(root.remote).context()
        what = f"{repo}@{child.digest}" if child is not None else root.remote
        self.info(f"pulling {name} for {platform}")
        src = self._open(what)
        sink = ContentSink(self.store, name)
        try:
            # a lone manifest is checked against the platform (its config) before any layer
            copy_image(src, sink, platforms=None if child is not None else [platform])
        finally:
            sink.close()
            src.close()
        got = self._local(name, root, child, platform)
        if got is None:
            raise NotFoundError(f"base image {name}: {platform} content vanished while pulling")
        return got

    def _local(self, name: str, root: _Root, child: Descriptor | None,
               platform: Platform) -> ImageView | None:
        """``platform``'s image when all of it is in the store, else None (fetch it)."""
        content = self.store.content
        if child is not None:
            if not content.has(child):
                return None
            man = Manifest.parse(content.read_bytes(child), child.media_type)
        else:
            assert isinstance(root.view.doc, Manifest)
            man = root.view.doc
        if not content.has(man.config) or not all(content.has(layer) for layer in man.layers):
            return None
        local = ContentSource(self.store, name, root.view.descriptor)
        if child is not None:
            return open_manifest(local, child, name)
        return open_platform(local, root.view, platform)
