"""Synthetic layer stacks where a layer writes under a directory that is a symlink in a lower
layer (issue 11, item 4), and the three ways of looking at them that must agree: the layer
tars flattened into one root (export, sbom), the per-layer overlay-form dirs (each extracted
over its parents) copied together by ``snapshot.flatten``, and the same dirs overlay-mounted.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from tests.archive.helpers import make_tar

from xarch.archive.apply import apply_layer

# (kind, name, payload[, mode[, uid]]): kind is file|dir|symlink|hardlink
Entry = tuple
Layer = Sequence[Entry]

# host paths the "outside" cases point at: they must never appear
OUTSIDE_ABS = "/xarch-test-outside-root-3f9c/lib"


def tar(layer: Layer) -> bytes:
    return make_tar(*layer)


DEBIAN = [("dir", "usr/", ""), ("dir", "usr/lib/", ""), ("file", "usr/lib/libc.so", "c")]

# name -> (layers bottom first, {path: expected (kind, payload)} in the flattened view)
CASES: dict[str, tuple[list[Layer], dict[str, tuple[str, str] | None]]] = {
    "relative": (
        [
            [*DEBIAN, ("symlink", "lib", "usr/lib")],
            [("dir", "lib/x/", ""), ("file", "lib/x/f", "1")],
        ],
        {
            "lib": ("link", "usr/lib"),
            "usr/lib/x/f": ("file", "1"),
            "usr/lib/libc.so": ("file", "c"),
        },
    ),
    "absolute": (
        [[*DEBIAN, ("symlink", "lib", "/usr/lib")], [("file", "lib/x/f", "1")]],
        {"lib": ("link", "/usr/lib"), "usr/lib/x/f": ("file", "1")},
    ),
    "nested": (
        [
            [("dir", "usr/", ""), ("dir", "usr/lib64/", ""), ("file", "usr/lib64/ld.so", "ld")],
            [("symlink", "usr/lib", "lib64")],
            [("symlink", "lib", "usr/lib")],
            [("dir", "lib/x/", ""), ("file", "lib/x/f", "1"), ("file", "lib/ld2.so", "2")],
        ],
        {
            "lib": ("link", "usr/lib"),
            "usr/lib": ("link", "lib64"),
            "usr/lib64/x/f": ("file", "1"),
            "usr/lib64/ld2.so": ("file", "2"),
            "usr/lib64/ld.so": ("file", "ld"),
        },
    ),
    "whiteout": (
        [
            [*DEBIAN, ("file", "usr/lib/old", "o"), ("symlink", "lib", "usr/lib")],
            [("file", "lib/.wh.old", "")],
        ],
        {"lib": ("link", "usr/lib"), "usr/lib/old": None, "usr/lib/libc.so": ("file", "c")},
    ),
    "opaque": (
        [
            [
                *DEBIAN,
                ("dir", "usr/lib/x/", ""),
                ("file", "usr/lib/x/a", "a"),
                ("symlink", "lib", "usr/lib"),
            ],
            [("file", "lib/x/.wh..wh..opq", ""), ("file", "lib/x/b", "b")],
        ],
        {
            "lib": ("link", "usr/lib"),
            "usr/lib/x/a": None,
            "usr/lib/x/b": ("file", "b"),
            "usr/lib/libc.so": ("file", "c"),
        },
    ),
    "outside-relative": (
        [[*DEBIAN, ("symlink", "lib", "../../../../../../usr/lib")], [("file", "lib/x/f", "1")]],
        {"usr/lib/x/f": ("file", "1")},
    ),
    "outside-absolute": (
        [[("symlink", "lib", OUTSIDE_ABS)], [("file", "lib/x/f", "1")]],
        {OUTSIDE_ABS.lstrip("/") + "/x/f": ("file", "1"), "lib": ("link", OUTSIDE_ABS)},
    ),
    "replaced-by-dir": (
        [
            [*DEBIAN, ("symlink", "lib", "usr/lib")],
            [("dir", "lib/", ""), ("file", "lib/y", "y")],
            [("file", "lib/z", "z")],
        ],
        {
            "lib": ("dir", ""),
            "lib/y": ("file", "y"),
            "lib/z": ("file", "z"),
            "usr/lib/y": None,
            "usr/lib/z": None,
            "usr/lib/libc.so": ("file", "c"),
        },
    ),
    "whiteout-of-link-then-dir": (
        [
            [*DEBIAN, ("symlink", "lib", "usr/lib")],
            [("file", ".wh.lib", ""), ("file", "lib/x/f", "1")],
        ],
        {
            "lib": ("dir", ""),
            "lib/x/f": ("file", "1"),
            "lib/libc.so": None,
            "usr/lib/libc.so": ("file", "c"),
        },
    ),
    "lower-dir-metadata": (
        [
            [("dir", "usr/", ""), ("dir", "usr/lib/", "", 0o750, 7), ("symlink", "lib", "usr/lib")],
            [("file", "lib/f", "1")],
        ],
        {"usr/lib/f": ("file", "1")},
    ),
    "hardlink-to-lower": (
        [[*DEBIAN, ("symlink", "lib", "usr/lib")], [("hardlink", "lib/libc.so.6", "lib/libc.so")]],
        {"usr/lib/libc.so.6": ("file", "c"), "usr/lib/libc.so": ("file", "c")},
    ),
    "link-in-same-layer": (
        [DEBIAN, [("symlink", "lib", "usr/lib"), ("file", "lib/x/f", "1")]],
        {"lib": ("link", "usr/lib"), "usr/lib/x/f": ("file", "1")},
    ),
}


def flatten_tars(layers: Sequence[Layer], dest: Path) -> Path:
    """The reference: every layer tar applied in turn onto one root (what export does)."""
    dest.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        apply_layer(io.BytesIO(tar(layer)), dest, mode="flatten")
    return dest


def extract_layers(layers: Sequence[Layer], base: Path) -> list[Path]:
    """Per-layer overlay-form dirs, each extracted over the ones below; topmost first."""
    dirs: list[Path] = []
    for i, layer in enumerate(layers):
        d = base / f"layer{i}"
        d.mkdir(parents=True)
        apply_layer(io.BytesIO(tar(layer)), d, mode="overlay", parents=list(dirs))
        dirs.insert(0, d)
    return dirs


def tree(root: Path) -> dict[str, tuple[str, str, int, int]]:
    """rel -> (kind, payload, mode, uid); never follows a symlink."""
    out: dict[str, tuple[str, str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), 0, st.st_uid)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", "", mode, st.st_uid)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_text(), mode, st.st_uid)
            else:
                out[rel] = ("other", f"{st.st_mode:o}:{st.st_rdev}", mode, st.st_uid)
    return out


def check_expected(
    view: dict[str, tuple[str, str, int, int]], expected: dict[str, tuple[str, str] | None]
) -> None:
    for rel, want in expected.items():
        if want is None:
            assert rel not in view, f"{rel} should be gone: {view.get(rel)}"
        else:
            assert rel in view, f"{rel} missing from {sorted(view)}"
            assert view[rel][:2] == want, (rel, view[rel])
