from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from xarch.content.store import ContentStore
from xarch.errors import IntegrityError, NotFoundError
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import Index, Manifest


def _snapshot(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in (".lock", ".gc.lock"):
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_ingest_and_read(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = b"hello world" * 1000
    d = Descriptor.of("application/octet-stream", data)
    path = cs.ingest(d, [data[:5], data[5:]])
    assert path == tmp_path / "blobs" / "sha256" / d.digest.hex
    assert cs.has(d) and cs.has(d.digest)
    assert cs.read_bytes(d) == data
    assert b"".join(cs.iter_chunks(d, 7)) == data
    assert cs.size(d) == len(data)
    assert list(cs.walk()) == [(d.digest, len(data))]
    # no temp files left behind
    assert not any((tmp_path / "ingest").iterdir())
    # blobs are world-readable like files written by other tools (not mkstemp's 0600)
    from xarch.content.store import FILE_MODE

    assert path.stat().st_mode & 0o777 == FILE_MODE


def test_digest_mismatch_leaves_store_unchanged(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    cs.init()
    cs.ingest_bytes(b"existing")
    before = _snapshot(tmp_path)
    good = Descriptor.of("application/octet-stream", b"expected content")
    with pytest.raises(IntegrityError, match="digest mismatch"):
        cs.ingest(good, [b"expected contenT"])
    assert _snapshot(tmp_path) == before
    assert not cs.has(good)


def test_truncated_input_rejected(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = b"x" * 100
    d = Descriptor.of("application/octet-stream", data)
    with pytest.raises(IntegrityError, match="truncated"):
        cs.ingest(d, [data[:60]])
    with pytest.raises(IntegrityError, match="more than"):
        cs.ingest(d, [data, b"extra"])
    assert not cs.has(d)
    assert list(cs.walk()) == []


def test_interrupted_stream_leaves_nothing(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = b"abc" * 10

    def chunks():
        yield data[:10]
        raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        cs.ingest(Digest.from_bytes(data), chunks())
    assert list(cs.walk()) == []
    assert not any((tmp_path / "ingest").iterdir())


def test_bare_digest_ingest_without_size(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = b"some data"
    cs.ingest(Digest.from_bytes(data), iter([data]))
    assert cs.read_bytes(Digest.from_bytes(data)) == data


def test_sha512(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = b"512"
    d = Digest.from_bytes(data, "sha512")
    cs.ingest(d, [data])
    assert (tmp_path / "blobs" / "sha512" / d.hex).read_bytes() == data
    assert list(cs.walk()) == [(d, 3)]


def test_missing_blob_errors(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    d = Digest.from_bytes(b"nope")
    assert not cs.has(d)
    with pytest.raises(NotFoundError):
        cs.read_bytes(d)
    with pytest.raises(NotFoundError):
        cs.size(d)
    assert cs.delete(d) is False


def test_read_bytes_detects_corruption(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    d = Digest.from_bytes(b"good")
    cs.ingest(d, [b"good"])
    cs.path(d).write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="corrupt"):
        cs.read_bytes(d)
    assert cs.read_bytes(d, verify=False) == b"evil"


def test_delete_and_walk_ignores_strays(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    d = Digest.from_bytes(b"a")
    cs.ingest(d, [b"a"])
    (tmp_path / "blobs" / "sha256" / "not-a-digest").write_bytes(b"x")
    (tmp_path / "blobs" / "md5").mkdir()
    assert [x for x, _ in cs.walk()] == [d]
    assert cs.delete(d)
    assert list(cs.walk()) == []


def test_init_writes_layout(tmp_path: Path) -> None:
    from oci.schema_check import assert_valid_oci

    cs = ContentStore(tmp_path / "new")
    cs.init()
    cs.init()  # idempotent
    assert (tmp_path / "new" / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert_valid_oci(mt.OCI_LAYOUT_HEADER, (tmp_path / "new" / "oci-layout").read_bytes())
    assert_valid_oci(mt.OCI_INDEX, (tmp_path / "new" / "index.json").read_bytes())
    assert cs.read_index() == []


def _image(cs: ContentStore, tag: str) -> Descriptor:
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    cs.ingest_bytes(cfg)
    layer = tag.encode()
    cs.ingest_bytes(layer)
    m = Manifest.build(Descriptor.of(mt.OCI_CONFIG, cfg), [Descriptor.of(mt.OCI_LAYER, layer)])
    cs.ingest_bytes(m.raw)
    return m.descriptor


def test_verify_all(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    desc = _image(cs, "one")
    idx = Index.build([desc])
    cs.ingest_bytes(idx.raw)
    cs.update_index(lambda es: [*es, idx.descriptor])
    assert cs.verify_all() == []
    # corrupt a layer
    layer = Digest.from_bytes(b"one")
    cs.path(layer).write_bytes(b"ONE")
    problems = cs.verify_all()
    assert any("content hashes to" in p for p in problems)
    # delete a config: missing child reported
    cs.path(layer).write_bytes(b"one")
    m = Manifest.parse(cs.read_bytes(desc))
    cs.delete(m.config)
    problems = cs.verify_all()
    assert problems and "missing" in problems[0]
    # an index.json entry pointing at nothing
    cs.update_index(lambda es: [*es, Descriptor.of(mt.OCI_MANIFEST, b"{}")])
    assert len(cs.verify_all()) == 2


def test_corrupt_index_json_is_store_error(tmp_path: Path) -> None:
    from xarch.errors import StoreError

    cs = ContentStore(tmp_path)
    cs.init()
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt"):
        cs.read_index()
    assert any("corrupt" in p for p in cs.verify_all())


def test_cleanup_ingest(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    cs.init()
    (tmp_path / "ingest").mkdir(exist_ok=True)
    stale = tmp_path / "ingest" / "abc.part"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = tmp_path / "ingest" / "def.part"
    fresh.write_bytes(b"in progress")
    assert cs.cleanup_ingest() == 1
    assert not stale.exists() and fresh.exists()


# -- concurrency ------------------------------------------------------------------------------

BIG = os.urandom(1 << 20) * 3


def _writer(root: str, n: int) -> None:
    cs = ContentStore(Path(root))
    for _ in range(3):
        cs.ingest(
            Descriptor.of("application/octet-stream", BIG),
            [BIG[i : i + 65536] for i in range(0, len(BIG), 65536)],
        )
    own = f"blob-{n}".encode()
    cs.ingest_bytes(own)
    d = Descriptor.of("application/vnd.example+json", own, annotations={"n": str(n)})
    for _ in range(5):
        cs.update_index(lambda es, d=d: [*es, d])


def test_concurrent_processes_same_blob_and_index(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cs = ContentStore(tmp_path)
    assert cs.read_bytes(Digest.from_bytes(BIG)) == BIG
    entries = cs.read_index()
    # every read-modify-write survived: 4 writers × 5 appends
    assert len(entries) == 20
    assert sorted({e.annotations["n"] for e in entries}) == ["0", "1", "2", "3"]
    assert cs.verify_all() == []
    assert not any((tmp_path / "ingest").iterdir())
