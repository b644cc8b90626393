"""Vertex digests are stable, content-addressed and independent of labels."""

from __future__ import annotations

from xarch.graph.ops import SCRATCH, ExecOp, MountSpec, Vertex
from xarch.oci.platform import Platform


def _exec(cmd: str, platform: str = "linux/amd64", **kw: object) -> Vertex:
    op = ExecOp(args=("sh", "-c", cmd), env=("A=1",), cwd="/", user="", platform=Platform.parse(platform), **kw)  # type: ignore[arg-type]
    return Vertex(op, (SCRATCH,), name=f"label {cmd}")


def test_digest_ignores_name_and_location() -> None:
    a = _exec("x")
    b = Vertex(a.op, a.inputs, name="other", location=(1, 2))
    assert a == b and a.digest == b.digest and hash(a) == hash(b)


def test_digest_covers_op_fields_and_inputs() -> None:
    base = _exec("x")
    assert _exec("y").digest != base.digest
    assert _exec("x", "linux/arm64").digest != base.digest
    assert _exec("x", mounts=(MountSpec("cache", "/c", cache_id="c"),)).digest != base.digest
    assert Vertex(base.op, (base,)).digest != base.digest


def test_proxy_env_is_not_part_of_the_key() -> None:
    assert _exec("x", proxy_env=("HTTP_PROXY=http://p",)).digest == _exec("x").digest


def test_walk_orders_inputs_first_once() -> None:
    a = _exec("a")
    b = Vertex(_exec("b").op, (a,))
    c = Vertex(_exec("c").op, (a, b))
    order = [v.digest for v in c.walk()]
    assert order.index(a.digest) < order.index(b.digest) < order.index(c.digest)
    assert len(order) == len(set(order)) == 4  # scratch, a, b, c
