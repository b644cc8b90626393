"""A layer written under a directory that is a symlink in a lower layer (issue 11, item 4):
the Debian ``lib -> usr/lib`` case. RUN steps, ``COPY --from``, ``xarch run`` and the exported
image must all see the file through the symlink and at its target, with ``/lib`` still a
symlink (before the fix RUN saw a new real ``/lib`` holding only the new file)."""

from __future__ import annotations

import gzip
import types
import uuid
from pathlib import Path

import pytest
from tests.archive.symlinked_parents import tar
from tests.builder.conftest import BuildEnv

from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPLETS = ("sh", "cat", "ls", "readlink", "echo", "mkdir", "test")


def _busybox(benv: BuildEnv, tmp: Path) -> bytes:
    """The static busybox of the session base (amd64)."""
    fs = benv.rootfs(types.SimpleNamespace(root=benv.store.resolve(benv.base)), tmp / "bb")
    for rel in ("bin/busybox", "usr/bin/busybox"):
        p = fs / rel
        if p.is_file():
            return p.read_bytes()
    raise AssertionError("no busybox in the base")


def _merged_usr_image(benv: BuildEnv, tmp: Path, marker: str) -> str:
    """A usr-merged image (``bin``/``lib`` symlinks into ``usr``) whose second layer names
    ``lib/x/file`` with no ``lib/`` entry, as a pulled Debian image's layers may; returns
    its name in the store."""
    base = [
        ("dir", "usr/", ""),
        ("dir", "usr/bin/", ""),
        ("dir", "usr/lib/", ""),
        ("file", "usr/bin/busybox", _busybox(benv, tmp), 0o755),
        *[("symlink", f"usr/bin/{a}", "busybox") for a in APPLETS],
        ("file", "usr/lib/libc.so.6", "libc"),
        ("symlink", "bin", "usr/bin"),
        ("symlink", "lib", "usr/lib"),
        ("dir", "etc/", ""),
    ]
    writer = [("dir", "lib/x/", ""), ("file", "lib/x/file", marker + "\n")]
    layers, diff_ids = [], []
    for layer in (base, writer):
        raw = tar(layer)
        blob = gzip.compress(raw, mtime=0)
        benv.store.content.ingest_bytes(blob)
        layers.append(Descriptor.of(mt.OCI_LAYER_GZIP, blob))
        diff_ids.append(str(Digest.from_bytes(raw)))
    cfg = ImageConfig.build(
        {
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "test"}] * 2,
        }
    )
    benv.store.content.ingest_bytes(cfg.raw)
    man = Manifest.build(cfg.descriptor(mt.OCI_CONFIG), layers)
    benv.store.content.ingest_bytes(man.raw)
    name = f"xarch-test/merged-usr-{marker}:latest"
    benv.store.set_name(name, Descriptor.of(mt.OCI_MANIFEST, man.raw))
    return name


def test_layer_under_lower_symlink_everywhere(benv: BuildEnv, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:12]  # unique content: a chain nobody extracted before
    img = _merged_usr_image(benv, tmp_path, marker)
    df = f"""FROM {img} AS a
RUN test -L /lib && echo r > /lib/x/run && mkdir -p /lib/y && echo y > /lib/y/f
FROM a
COPY --from=a /lib/x/file /copied-via-link
COPY --from=a /usr/lib/x/ /copied-dir/
RUN set -e; test -L /lib; readlink /lib > /seen; \\
    for p in /lib/x/file /usr/lib/x/file /lib/x/run /usr/lib/x/run /lib/y/f /usr/lib/y/f; \\
    do cat $p >> /seen; done; ls /lib/x > /ls-link; ls /usr/lib/x > /ls-target; ls /lib > /ls-lib
"""
    r = benv.build(tmp_path, df)
    fs = benv.rootfs(r, tmp_path / "fs")
    seen = (fs / "seen").read_text().split()
    assert seen == ["usr/lib", marker, marker, "r", "r", "y", "y"]
    assert (fs / "ls-link").read_text() == (fs / "ls-target").read_text() == "file\nrun\n"
    # the exported rootfs is what RUN saw
    assert (fs / "lib").is_symlink() and str((fs / "lib").readlink()) == "usr/lib"
    assert sorted((fs / "ls-lib").read_text().split()) == sorted(
        p.name for p in (fs / "usr/lib").iterdir()
    )
    assert "libc.so.6" in (fs / "ls-lib").read_text().split()
    assert sorted(p.name for p in (fs / "usr/lib/x").iterdir()) == ["file", "run"]
    assert (fs / "copied-via-link").read_text() == marker + "\n"
    assert sorted(p.name for p in (fs / "copied-dir").iterdir()) == ["file", "run"]


def test_xarch_run_sees_the_layer_through_the_symlink(benv: BuildEnv, tmp_path: Path) -> None:
    from xarch.builder.run import ensure_local, run_image

    marker = uuid.uuid4().hex[:12]
    img = _merged_usr_image(benv, tmp_path, marker)
    out = run_image(
        benv.store,
        ensure_local(benv.store, img),
        entrypoint=["/bin/sh", "-c"],
        args=["test -L /lib && cat /lib/x/file && ls /lib"],
        network="none",
    )
    assert out.exit_code == 0, out.output
    lines = out.output.split()
    assert lines[0] == marker and "libc.so.6" in lines and "x" in lines
