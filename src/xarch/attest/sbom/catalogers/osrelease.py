"""The distribution, from os-release(5): ``/etc/os-release``, else ``/usr/lib/os-release``."""

from __future__ import annotations

from xarch.attest.sbom.model import OSInfo
from xarch.attest.sbom.walker import FileRequest, FileSystemView

REQUEST = FileRequest(("etc/os-release", "usr/lib/os-release"))
_ESCAPES = {'\\"': '"', "\\\\": "\\", "\\$": "$", "\\`": "`"}


def parse_os_release(text: str) -> dict[str, str]:
    """os-release is a shell-compatible KEY=value list; values may be single/double quoted."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, val = line.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            quote, val = val[0], val[1:-1]
            if quote == '"':
                for k, v in _ESCAPES.items():
                    val = val.replace(k, v)
        out[key] = val
    return out


def detect_os(fs: FileSystemView) -> OSInfo | None:
    # /etc/os-release wins even as a symlink (Debian links it to ../usr/lib/os-release).
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        rec = fs.get(path)
        if rec is None:
            continue
        kv = parse_os_release(rec.data.decode("utf-8", "replace"))
        os_id = kv.get("ID", "").strip().lower() or "linux"  # os-release(5): ID defaults to linux
        return OSInfo(
            id=os_id,
            version_id=kv.get("VERSION_ID", ""),
            pretty_name=kv.get("PRETTY_NAME", ""),
            version_codename=kv.get("VERSION_CODENAME", ""),
            id_like=tuple(kv.get("ID_LIKE", "").split()),
            name=kv.get("NAME", ""),
            path=rec.path,
            layer=rec.layer,
        )
    return None
