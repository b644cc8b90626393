"""Snapshots for build steps: overlayfs with a copy fallback (containerd-style lifecycle)."""

from xarch.snapshot.overlay import Committed, Mountable, Snapshotter, flatten, overlay_supported

__all__ = ["Committed", "Mountable", "Snapshotter", "flatten", "overlay_supported"]
