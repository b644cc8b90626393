"""In-memory layers and images for the SBOM tests (deterministic: fixed metadata, gzip mtime 0)."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from xarch.attest.sbom.model import ImageInfo
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Manifest
from xarch.oci.platform import Platform


@dataclass(frozen=True)
class E:
    """One tar entry: kind is 'file', 'dir', 'symlink', 'hardlink'; ``.wh.`` names are plain
    (empty) files, as in real layers."""

    path: str
    data: bytes = b""
    kind: str = "file"
    link: str = ""
    mode: int = 0o644


def F(path: str, data: bytes | str = b"", mode: int = 0o644) -> E:
    return E(path, data.encode() if isinstance(data, str) else data, "file", mode=mode)


def D(path: str) -> E:
    return E(path, kind="dir", mode=0o755)


def L(path: str, target: str) -> E:
    return E(path, kind="symlink", link=target, mode=0o777)


def H(path: str, target: str) -> E:
    return E(path, kind="hardlink", link=target)


def WH(path: str) -> E:
    parent, _, name = path.rpartition("/")
    return E(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"", "file", mode=0)


def OPQ(dir_path: str) -> E:
    return E(f"{dir_path}/.wh..wh..opq", b"", "file", mode=0)


def layer_tar(entries: Sequence[E]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.path)
            ti.mtime = 0
            ti.mode = e.mode
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif e.kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e.link
                tf.addfile(ti)
            elif e.kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e.link
                tf.addfile(ti)
            else:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


def compress(tar: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(tar, mtime=0), mt.OCI_LAYER_GZIP
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(tar), mt.OCI_LAYER_ZSTD
    return tar, mt.OCI_LAYER


@dataclass
class FakeImage:
    """An image held in memory: an ImageReader and the ImageInfo describing it."""

    manifest: Manifest
    config: ImageConfig
    blobs: dict[Digest, bytes]
    platform: Platform

    def layers(self) -> list[tuple[Descriptor, Digest]]:
        return list(zip(self.manifest.layers, self.config.diff_ids))

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return io.BytesIO(self.blobs[desc.digest])

    def info(self, name: str = "example.com/test/app") -> ImageInfo:
        created = self.config.data.get("created")
        return ImageInfo(
            name=name,
            digest=self.manifest.digest,
            platform=self.platform,
            config_digest=self.config.digest,
            created=created if isinstance(created, str) else None,
            reference=None,
        )


def make_image(
    layers: Sequence[Sequence[E]],
    *,
    platform: str = "linux/amd64",
    compression: str | Sequence[str] = "gzip",
    created: str = "2024-05-06T07:08:09Z",
) -> FakeImage:
    plat = Platform.parse(platform)
    comps = [compression] * len(layers) if isinstance(compression, str) else list(compression)
    blobs: dict[Digest, bytes] = {}
    descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for entries, how in zip(layers, comps):
        tar = layer_tar(entries)
        blob, media = compress(tar, how)
        d = Descriptor.of(media, blob)
        descs.append(d)
        blobs[d.digest] = blob
        diff_ids.append(str(Digest.from_bytes(tar)))
    cfg_doc: dict[str, object] = {
        "created": created,
        "architecture": plat.architecture,
        "os": plat.os,
    }
    if plat.variant:
        cfg_doc["variant"] = plat.variant
    cfg_doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    cfg = ImageConfig.build(cfg_doc)
    blobs[cfg.digest] = cfg.raw
    m = Manifest.build(cfg.descriptor(), descs)
    return FakeImage(m, cfg, blobs, plat)


# -- package database builders --------------------------------------------------------------


def dpkg_para(name: str, version: str, arch: str = "amd64", *, source: str = "",
              status: str = "install ok installed") -> str:  # fmt: skip
    lines = [f"Package: {name}", f"Status: {status}", "Priority: optional"]
    if source:
        lines.append(f"Source: {source}")
    lines += [
        f"Version: {version}",
        f"Architecture: {arch}",
        "Maintainer: Someone <someone@example.org>",
        f"Description: the {name} package",
        " A longer description line.",
        " .",
        " Another paragraph.",
    ]
    return "\n".join(lines) + "\n"


def dpkg_status(*paras: str) -> bytes:
    return "\n".join(paras).encode()


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: {name}

Files: *
Copyright: 2020 Someone
License: {lic}

Files: debian/*
Copyright: 2021 Debian
License: GPL-2+

License: {lic}
 The text of the licence.
"""


def apk_record(name: str, version: str, *, arch: str = "x86_64", lic: str = "MIT",
               origin: str = "") -> str:  # fmt: skip
    lines = [
        "C:Q1abcdefghijklmnopqrstuvwxyz0123=",
        f"P:{name}",
        f"V:{version}",
        f"A:{arch}",
        "S:12345",
        "I:45678",
        f"T:the {name} package",
        "U:https://example.org",
        f"L:{lic}",
        f"o:{origin or name}",
        "F:usr/bin",
        f"R:{name}",
        "Z:Q1abcdefghijklmnopqrstuvwxyz0123=",
    ]
    return "\n".join(lines) + "\n"


OS_RELEASE_DEBIAN = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)
OS_RELEASE_ALPINE = (
    'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
)
OS_RELEASE_FEDORA = 'NAME="Fedora Linux"\nVERSION="39"\nID=fedora\nVERSION_ID=39\n'


# -- RPM headers ----------------------------------------------------------------------------


def rpm_header(tags: dict[int, str | int]) -> bytes:
    """An RPM header blob (as rpmdb.sqlite stores it) with STRING and INT32 tags."""
    index = b""
    data = bytearray()
    for tag, val in sorted(tags.items()):
        if isinstance(val, int):
            while len(data) % 4:
                data.append(0)
            off = len(data)
            data += struct.pack(">i", val)
            index += struct.pack(">iIiI", tag, 4, off, 1)
        else:
            off = len(data)
            data += val.encode() + b"\x00"
            index += struct.pack(">iIiI", tag, 6, off, 1)
    return struct.pack(">II", len(tags), len(data)) + index + bytes(data)


def rpmdb_sqlite(headers: Sequence[bytes]) -> bytes:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    )
    for h in headers:
        conn.execute("INSERT INTO Packages (blob) VALUES (?)", (h,))
    conn.commit()
    data = conn.serialize()
    conn.close()
    return bytes(data)


# -- Go build info --------------------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


SENTINEL_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
SENTINEL_END = bytes.fromhex("f932433186182072008242104116d8f2")


def go_buildinfo(go_version: str, modinfo: str, *, pointer_free: bool = True) -> bytes:
    """A ``.go.buildinfo`` blob in the Go ≥ 1.18 inline format (or the old flag, for tests)."""
    header = b"\xff Go buildinf:" + bytes([8, 2 if pointer_free else 0])
    header += b"\x00" * (32 - len(header))
    mod = SENTINEL_START + modinfo.encode() + SENTINEL_END
    return header + _uvarint(len(go_version)) + go_version.encode() + _uvarint(len(mod)) + mod


def fake_elf(buildinfo: bytes, *, pad: int = 4096, decoy: bool = True) -> bytes:
    """An 'executable': ELF magic, filler, optionally a misaligned decoy copy of the magic (as
    in the Go toolchain's rodata), then the build info at a 16-byte aligned offset."""
    body = bytearray(b"\x7fELF\x02\x01\x01" + b"\x00" * 9)
    body += b"\x90" * pad
    if decoy:
        body += b"\x00" * 3 + b"\xff Go buildinf:" + b"xx"
    while len(body) % 16:
        body.append(0)
    body += buildinfo
    body += b"\x00" * 512
    return bytes(body)


GO_MODINFO = (
    "path\texample.com/hello/cmd/hello\n"
    "mod\texample.com/hello\tv1.2.3\th1:abc=\n"
    "dep\tgithub.com/pkg/errors\tv0.9.1\th1:def=\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:ghi=\n"
    "=>\tgolang.org/x/sys\tv0.2.0\th1:jkl=\n"
    "build\t-compiler=gc\n"
    "build\tGOARCH=amd64\n"
    "build\tGOOS=linux\n"
)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
