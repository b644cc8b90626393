"""ChainIDs: the identity of a layer *stack*, as containerd names its snapshots.

A layer's extracted directory depends on the layers below it (archive.apply: each layer is
applied on top of its parents' merged view, so ``lib/x/f`` over a lower ``lib -> usr/lib``
lands at ``usr/lib/x/f``), so a cache of extracted layers must be keyed by the chain, not by
the diffID. OCI image-spec: ``ChainID(L0) = DiffID(L0)``,
``ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))``.
"""

from __future__ import annotations

from collections.abc import Iterable

from xarch.oci.digest import Digest


def chain_id(parent: Digest | None, diff_id: Digest) -> Digest:
    """The ChainID of ``diff_id`` stacked on the chain ``parent`` (None: the bottom layer)."""
    if parent is None:
        return Digest(diff_id)
    return Digest.from_bytes(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """The ChainID of every prefix of ``diff_ids`` (bottom layer first)."""
    out: list[Digest] = []
    for d in diff_ids:
        out.append(chain_id(out[-1] if out else None, d))
    return out
