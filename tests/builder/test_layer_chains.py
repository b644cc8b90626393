"""The worker's extracted-layer cache (issue 11, item 4): a layer is extracted over its
parents, so the cache is keyed by ChainID, and diffID-keyed dirs of older versions are never
used. No runtime needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.archive.symlinked_parents import DEBIAN, tar

from xarch.builder.worker import BuildWorker, WorkerOptions
from xarch.content.store import ContentStore
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.snapshot.chain import chain_id, chain_ids
from xarch.solver.solver import LayerRef

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay-form layers need root (mknod)")

LINK_BASE = [*DEBIAN, ("symlink", "lib", "usr/lib")]
DIR_BASE = [*DEBIAN, ("dir", "lib/", "")]
WRITER = [("dir", "lib/x/", ""), ("file", "lib/x/f", "1")]


def _ref(store: ContentStore, layer: list[tuple]) -> LayerRef:
    data = tar(layer)
    d = Digest.from_bytes(data)
    store.ingest_bytes(data)
    return LayerRef(Descriptor("application/vnd.oci.image.layer.v1.tar", d, len(data)), d)


@pytest.fixture
def worker(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = ContentStore(tmp_path / "store")
    store.init()
    w = BuildWorker(
        store,
        tmp_path / "home",
        lambda: None,  # type: ignore[arg-type,return-value]
        WorkerOptions(context_dir=tmp_path),
    )
    yield w
    w.close()


def test_chain_ids_follow_the_image_spec() -> None:
    a, b = Digest("sha256:" + "a" * 64), Digest("sha256:" + "b" * 64)
    assert chain_id(None, a) == a
    assert chain_id(a, b) == Digest.from_bytes(f"{a} {b}".encode())
    assert chain_ids([a, b]) == [a, chain_id(a, b)]


def test_layer_is_extracted_over_its_parents(worker: BuildWorker) -> None:
    base, top = _ref(worker.store, LINK_BASE), _ref(worker.store, WRITER)
    top_dir, base_dir = worker._lowers([base, top])
    assert (top_dir / "usr/lib/x/f").read_text() == "1"
    assert not os.path.lexists(top_dir / "lib")
    assert top_dir.name == chain_id(base.diff_id, top.diff_id).hex
    assert base_dir.name == base.diff_id.hex


def test_same_layer_over_other_parents_is_another_dir(worker: BuildWorker) -> None:
    writer = _ref(worker.store, WRITER)
    over_link = worker._lowers([_ref(worker.store, LINK_BASE), writer])[0]
    over_dir = worker._lowers([_ref(worker.store, DIR_BASE), writer])[0]
    assert over_link != over_dir
    assert (over_dir / "lib/x/f").read_text() == "1"
    assert (over_link / "usr/lib/x/f").read_text() == "1"


def test_diffid_keyed_dirs_of_older_versions_are_not_used(worker: BuildWorker) -> None:
    base, top = _ref(worker.store, LINK_BASE), _ref(worker.store, WRITER)
    old = worker.home / "layers"  # what an older xarch left: extracted without parents
    for ref in (base, top):
        (old / ref.diff_id.hex / "lib/x").mkdir(parents=True, exist_ok=True)
        (old / ref.diff_id.hex / "lib/x/f").write_text("stale")
        (old / f"{ref.diff_id.hex}.complete").touch()
    top_dir, base_dir = worker._lowers([base, top])
    assert old not in top_dir.parents and old not in base_dir.parents
    assert (base_dir / "lib").is_symlink()
    assert (top_dir / "usr/lib/x/f").read_text() == "1"


def test_adopted_upper_is_keyed_by_its_chain(worker: BuildWorker, tmp_path: Path) -> None:
    base = _ref(worker.store, LINK_BASE)
    diff = Digest("sha256:" + "cd" * 32)
    upper = tmp_path / "upper"
    (upper / "usr/lib").mkdir(parents=True)
    (upper / "usr/lib/new").write_text("n")
    worker._adopt_upper(upper, chain_id(base.diff_id, diff))
    assert (worker.layers_dir / chain_id(base.diff_id, diff).hex / "usr/lib/new").exists()
    assert not (worker.layers_dir / diff.hex).exists()
