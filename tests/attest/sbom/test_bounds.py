"""Issue 11: ``xarch sbom`` grew to 3 GB for a 3 MB blob. What the SBOM generator keeps in
memory is bounded, whatever a layer claims.

The end-to-end cases craft a single-layer OCI layout whose blob is a few MB of gzip and run the
real CLI in a subprocess limited to 1 GiB of address space (RLIMIT_AS): before the fix each of
them needed 1.5-3 GB (MemoryError under the limit); now they stay far below it. Peak RSS is
measured with ``wait4``.

Measured on the dev VM (peak RSS of ``xarch sbom``, before -> after):
  40 x 60 MiB copyright files (8.5 MB blob)       2496 MiB -> 339 MiB (refused with a clear error)
  3000 "Go binaries" with 1 MiB after the magic   3047 MiB ->  75 MiB (all listed)
  60 MiB dpkg status of tiny paragraphs (214 KB)  2254 MiB, 178 s -> 202 MiB, 4 s (100 000 listed)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from attest.sbom._fixtures import (
    DEP5,
    GO_MODINFO,
    F,
    dpkg_para,
    dpkg_status,
    fake_elf,
    go_buildinfo,
    make_image,
    rpm_header,
    rpmdb_sqlite,
)
from xarch.attest.sbom._tar import ContentBudget, ContentLimitError, TarReader
from xarch.attest.sbom.api import catalog_image
from xarch.attest.sbom.catalogers import MAX_PACKAGES, Context, iter_lines, parse_paragraphs
from xarch.attest.sbom.catalogers import dpkg as dpkg_mod
from xarch.attest.sbom.catalogers.dpkg import MAX_LICENSES, copyright_licenses
from xarch.attest.sbom.catalogers.golang import GoBinaryCataloger, GoBuildInfoScanner
from xarch.attest.sbom.catalogers.rpm import read_sqlite_rpmdb
from xarch.content.store import REF_NAME, ContentStore
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig
from xarch.oci.descriptor import Descriptor
from xarch.oci.manifest import Manifest

MiB = 1 << 20
AS_LIMIT = 1 << 30
REPO = Path(__file__).resolve().parents[3]

# -- crafted layers: tar pieces as gzip members, so a GB-sized tar costs no time to make --------

_ZERO_MEMBER = gzip.compress(bytes(MiB), 1, mtime=0)  # ~4.5 KB; well under 1000:1


def _header(name: str, size: int, mode: int = 0o644) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, mode, 0
    return ti.tobuf(tarfile.USTAR_FORMAT)


class _Layer:
    """A gzip layer assembled from members, with its diffID computed alongside."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.tar = hashlib.sha256()
        self._zero_mib = hashlib.sha256()

    def raw(self, data: bytes) -> None:
        self.parts.append(gzip.compress(data, 6, mtime=0))
        self.tar.update(data)

    def zeros(self, mib: int) -> None:
        z = bytes(MiB)
        for _ in range(mib):
            self.parts.append(_ZERO_MEMBER)
            self.tar.update(z)

    def file(self, name: str, data: bytes = b"", zero_mib: int = 0, mode: int = 0o644) -> None:
        """A member: ``data`` then ``zero_mib`` MiB of zeros (``data`` padded to 512)."""
        size = len(data) + zero_mib * MiB
        body = data + bytes(-len(data) % 512) if zero_mib else data + bytes(-size % 512)
        self.raw(_header(name, size, mode) + body)
        self.zeros(zero_mib)

    def close(self) -> tuple[bytes, str]:
        self.raw(bytes(1024))
        return b"".join(self.parts), "sha256:" + self.tar.hexdigest()


def _layout(root: Path, blob: bytes, diff_id: str) -> str:
    cs = ContentStore(root)
    cs.init()
    layer = Descriptor.of(mt.OCI_LAYER_GZIP, blob)
    cs.ingest_bytes(blob, layer)
    cfg = ImageConfig.build({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}})  # fmt: skip
    cs.ingest_bytes(cfg.raw)
    m = Manifest.build(cfg.descriptor(), [layer])
    cs.ingest_bytes(m.raw)
    top = Descriptor(mt.OCI_MANIFEST, m.digest, len(m.raw), annotations={REF_NAME: "t"})
    cs.update_index(lambda _old: [top])
    return f"oci:{root}:t"


def _sbom_bounded(location: str, out: Path) -> tuple[int, str, int]:
    """Run ``xarch sbom`` in a child limited to AS_LIMIT: (exit code, stderr, peak RSS)."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT}, {AS_LIMIT}))\n"
        f"sys.argv = ['xarch', 'sbom', {location!r}, '--format', 'cyclonedx-json', "
        f"'-o', {str(out)!r}]\n"
        "from xarch.cli.main import main\n"
        "main()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, usage.ru_maxrss << 10


def _components(out: Path) -> list[dict[str, object]]:
    doc = json.loads(out.read_bytes())
    comps: Iterable[dict[str, object]] = doc.get("components", [])
    return list(comps)


def test_many_metadata_files_under_the_per_file_cap_are_refused(tmp_path: Path) -> None:
    """24 copyright files of 60 MiB each (each under the walker's 64 MiB per-file cap): before,
    every one was kept (1.5 GB); now the image's metadata budget (256 MiB) refuses it."""
    lay = _Layer()
    for i in range(24):
        lay.file(f"usr/share/doc/p{i}/copyright", zero_mib=60)
    blob, diff = lay.close()
    assert len(blob) < 8 * MiB  # 1.4 GiB of tar
    t0 = time.monotonic()
    rc, err, rss = _sbom_bounded(_layout(tmp_path / "img", blob, diff), tmp_path / "sbom.json")
    assert rc == 1, err
    assert "refusing" in err and "copyright" in err and "MemoryError" not in err, err
    assert rss < 700 * MiB, f"peak RSS {rss >> 20} MiB"
    assert time.monotonic() - t0 < 60


def test_thousands_of_go_binaries_keep_only_their_build_info(tmp_path: Path) -> None:
    """1500 "Go executables" of 1 MiB: before, 1 MiB after each magic was kept (1.5 GB); now
    only the build info itself, and every binary is still listed."""
    elf = fake_elf(go_buildinfo("go1.22.1", GO_MODINFO), pad=64)
    lay = _Layer()
    for i in range(1500):
        lay.file(f"usr/bin/tool{i}", elf, zero_mib=1, mode=0o755)
    blob, diff = lay.close()
    out = tmp_path / "sbom.json"
    rc, err, rss = _sbom_bounded(_layout(tmp_path / "img", blob, diff), out)
    assert rc == 0, err
    assert rss < 400 * MiB, f"peak RSS {rss >> 20} MiB"
    comps = _components(out)
    stdlib = [c for c in comps if c.get("name") == "stdlib"]
    assert len(stdlib) == 1500


def test_a_huge_package_database_is_cut_off_with_a_note(tmp_path: Path) -> None:
    """A 50 MiB dpkg status of tiny paragraphs (2 M "packages", a few MB of gzip): before,
    every one was parsed, kept and rendered (1.5 GB, minutes); now listing stops at
    MAX_PACKAGES with a note."""
    data = b"".join(b"Package: p%d\nVersion: 1\n\n" % i for i in range(2_000_000))
    lay = _Layer()
    lay.file("var/lib/dpkg/status", data)
    blob, diff = lay.close()
    assert len(blob) < 8 * MiB
    out = tmp_path / "sbom.json"
    t0 = time.monotonic()
    rc, err, rss = _sbom_bounded(_layout(tmp_path / "img", blob, diff), out)
    assert rc == 0, err
    assert rss < 700 * MiB, f"peak RSS {rss >> 20} MiB"
    assert time.monotonic() - t0 < 60
    doc = json.loads(out.read_bytes())
    assert len(doc["components"]) == MAX_PACKAGES
    notes = [p["value"] for p in doc["metadata"].get("properties", []) if p["name"] == "xarch:note"]
    assert any(f"more than {MAX_PACKAGES} packages" in n for n in notes), notes


# -- the pieces -----------------------------------------------------------------------------


def test_go_scanner_keeps_the_build_info_not_what_follows() -> None:
    info = go_buildinfo("go1.22.1", GO_MODINFO)
    elf = fake_elf(info, pad=64) + b"\xcc" * (2 * MiB)
    got = GoBuildInfoScanner().scan(io.BytesIO(elf), len(elf))  # type: ignore[arg-type]
    assert got == info


def test_go_scanner_budget_is_per_walk_and_noted() -> None:
    info = go_buildinfo("go1.22.1", GO_MODINFO)
    elf = fake_elf(info, pad=64)
    entries = [F(f"bin/t{i}", elf, 0o755) for i in range(10)]
    img = make_image([entries])
    cat = GoBinaryCataloger(max_kept=3 * len(info))
    res = catalog_image(img, img.info(), [cat])
    assert len([p for p in res.packages if p.name == "stdlib"]) == 3
    assert any("build info of 7 executable(s) was not read" in n for n in res.notes), res.notes
    # a new cataloger (a new walk) has its own budget
    fresh = catalog_image(img, img.info(), [GoBinaryCataloger()])
    assert len([p for p in fresh.packages if p.name == "stdlib"]) == 10


def test_history_keys_are_parsed_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """introduced_in asked every package about every earlier status version: P x H parses of
    a database (quadratic; a CPU bomb with a few hundred layers). Now one per version."""
    paras = [dpkg_para(f"pkg{i}", "1.0") for i in range(60)]
    layers = [[F("var/lib/dpkg/status", dpkg_status(*paras[: 20 * (n + 1)]))] for n in range(3)]
    calls: list[int] = []
    real = dpkg_mod._keys

    def counting(data: bytes) -> set[object]:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(dpkg_mod, "_keys", counting)
    img = make_image(layers)
    cat = catalog_image(img, img.info(), [dpkg_mod.DpkgCataloger()])
    assert len(cat.packages) == 60
    by_name = {p.name: p.layer.index for p in cat.packages}
    assert by_name["pkg0"] == 0 and by_name["pkg25"] == 1 and by_name["pkg59"] == 2
    assert len(calls) <= 2, f"{len(calls)} parses of 2 earlier versions"


def test_copyright_licences_are_unique_and_capped() -> None:
    head = DEP5.format(name="x", lic="MIT")
    many = "".join(f"\nLicense: L{i}\n text\n" for i in range(5 * MAX_LICENSES))
    got = copyright_licenses(head + many)
    assert got[:2] == ["MIT", "GPL-2+"] and len(got) == MAX_LICENSES


def test_package_budget_is_shared_and_noted_once() -> None:
    ctx = Context(packages_left=2)
    assert [ctx.take("dpkg") for _ in range(4)] == [True, True, False, False]
    assert len(ctx.notes) == 1 and "more than" in ctx.notes[0]


def test_notes_are_capped() -> None:
    ctx = Context(max_notes=3)
    for i in range(10):
        ctx.note(f"n{i}")
    assert ctx.notes == ["n0", "n1", "n2"]


def test_rpmdb_rows_are_limited() -> None:
    db = rpmdb_sqlite([rpm_header({1000: f"p{i}", 1001: "1"}) for i in range(5)])
    assert len(read_sqlite_rpmdb(db, limit=2)) == 2
    assert len(read_sqlite_rpmdb(db)) == 5


def test_tar_content_budget_is_shared_between_readers() -> None:
    def tar(*files: tuple[str, int]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for name, size in files:
                ti = tarfile.TarInfo(name)
                ti.size = size
                tf.addfile(ti, io.BytesIO(bytes(size)))
        return buf.getvalue()

    budget = ContentBudget(limit=3000)
    first = TarReader(io.BytesIO(tar(("a", 1000), ("b", 1000))), budget)  # type: ignore[arg-type]
    for _ in first:
        assert len(first.read_content()) == 1000
    second = TarReader(io.BytesIO(tar(("c", 1000), ("d", 1000))), budget)  # type: ignore[arg-type]
    it = iter(second)
    next(it)
    second.read_content()
    next(it)
    with pytest.raises(ContentLimitError, match=r"reading d .*3000 bytes: refusing"):
        second.read_content()


def test_lines_and_paragraphs_without_splitlines() -> None:
    assert list(iter_lines("a\r\nb\n\nc")) == ["a", "b", "", "c"]
    assert list(iter_lines("a\n")) == ["a"]
    assert parse_paragraphs("A: 1\r\n\r\nB: 2\r\n") == [{"A": "1"}, {"B": "2"}]


def test_the_walker_refuses_a_decompression_bomb_by_default() -> None:
    """The SBOM walker decompresses through the bounded reader: a 77 KB zstd layer holding a
    1.5 GiB file of zeros stops after 1 GiB instead of being read to the end."""
    import zstandard

    from xarch.archive.compress import ExpansionError
    from xarch.attest.sbom.walker import walk_layers

    z = zstandard.ZstdCompressor(level=1)
    bomb = z.compress(_header("big", 1536 * MiB)) + z.compress(bytes(MiB)) * 1536
    bomb += z.compress(bytes(1024))
    img = make_image([[F("etc/os-release", "ID=x\n")]], compression="zstd")
    layer = Descriptor.of(mt.OCI_LAYER_ZSTD, bomb)
    img.blobs[layer.digest] = bomb
    img.manifest = Manifest.build(img.config.descriptor(), [layer])
    with pytest.raises(ExpansionError, match="expands past 1000:1"):
        walk_layers(img, [], workers=1)
