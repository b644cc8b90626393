"""Small builders for hand-crafted (possibly malicious) tar streams."""

from __future__ import annotations

import io
import tarfile
from typing import Any


def make_tar(*members: tuple[Any, ...]) -> bytes:
    """members: (kind, name, payload[, mode[, uid]]) with kind in
    file|dir|symlink|hardlink|chr|fifo; uid also sets the gid."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, payload, *rest in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            data = b""
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
                ti.mode = 0o644
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = str(payload)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = str(payload)
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            else:
                raise ValueError(kind)
            if rest:
                ti.mode = rest[0]
            if len(rest) > 1:
                ti.uid = ti.gid = rest[1]
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()
