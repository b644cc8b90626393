"""The share of layers whose uncompressed digest (diffID) equals BuildKit's.

Run the tier with both builders clamping every time to one epoch (``XARCH_TIER_EPOCH``:
xarch's ``SOURCE_DATE_EPOCH``; BuildKit's ``build-arg:SOURCE_DATE_EPOCH`` and the OCI
exporter's ``rewrite-timestamp=true``) and ``XARCH_DIFFID_REPORT=FILE``: at the end of the
session the report below is written there (docs/compat.md quotes it). Layers are paired in
order with their history entries (the ones without ``empty_layer``), and classified by the
instruction that made them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_V = TypeVar("_V")

EPOCH_ENV = "XARCH_TIER_EPOCH"
_INSTRUCTIONS = frozenset(["ADD", "COPY", "RUN", "WORKDIR", "ENV", "ARG", "LABEL", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"])
REPORT_ENV = "XARCH_DIFFID_REPORT"


@dataclass(frozen=True)
class LayerPair:
    case: str
    platform: str
    instruction: str  # COPY, ADD, RUN, WORKDIR, ... (from the history's created_by)
    created_by: str
    equal: bool


def _instruction(created_by: str) -> str:
    text = created_by.strip()
    if text.startswith("/bin/sh -c #(nop) "):
        text = text[len("/bin/sh -c #(nop) ") :]
    if text.startswith("|"):  # BuildKit's "|N ARG=v ... " prefix of RUN with build args
        text = "RUN"
    word = text.split(" ", 1)[0].upper() if text else "?"
    if not word.isalpha():
        return "RUN"
    # what the base image's own history says (``xarch bootstrap …``) is not a Dockerfile step
    return word if word in _INSTRUCTIONS else "base image"


def _layer_history(cfg: Mapping[str, Any]) -> list[str]:
    return [str(h.get("created_by", "")) for h in cfg.get("history") or []
            if not h.get("empty_layer")]


def pair_layers(case: str, platform: str, ours: Mapping[str, Any],
                theirs: Mapping[str, Any]) -> list[LayerPair]:
    """Layer by layer; when the counts differ, the extra layers count as unequal."""
    a = list((ours.get("rootfs") or {}).get("diff_ids") or [])
    b = list((theirs.get("rootfs") or {}).get("diff_ids") or [])
    hist = _layer_history(theirs)
    out = []
    for i in range(max(len(a), len(b))):
        created = hist[i] if i < len(hist) else "?"
        equal = i < len(a) and i < len(b) and a[i] == b[i]
        out.append(LayerPair(case, platform, _instruction(created), created, equal))
    return out


def _norm(platform: str) -> str:
    return platform.removesuffix("/v8") if platform.startswith("linux/arm64") else platform


def by_platform(ours: Mapping[str, _V], theirs: Mapping[str, _V]) -> list[tuple[str, _V, _V]]:
    """The platforms both builders made, paired (``linux/arm64`` is ``linux/arm64/v8``)."""
    mine = {_norm(k): v for k, v in ours.items()}
    return [(p, mine[p], v) for p, v in sorted((_norm(k), v) for k, v in theirs.items())
            if p in mine]


def report(pairs: Iterable[LayerPair]) -> str:
    """Markdown: the share overall and per instruction, then every layer that differs."""
    ps = list(pairs)
    if not ps:
        return "no layers compared\n"
    total, same = Counter[str](), Counter[str]()
    for p in ps:
        total[p.instruction] += 1
        same[p.instruction] += p.equal
    n_same = sum(same.values())
    lines = [f"diffID equal to BuildKit v0.32's: {n_same} of {len(ps)} layers "
             f"({100 * n_same / len(ps):.0f} %)", "",
             "| instruction | equal | layers | share |", "|---|---:|---:|---:|"]
    for ins in sorted(total, key=lambda k: (-total[k], k)):
        lines.append(f"| {ins} | {same[ins]} | {total[ins]} | {100 * same[ins] / total[ins]:.0f} % |")
    differing = [p for p in ps if not p.equal]
    if differing:
        lines += ["", "Layers that differ:", ""]
        for p in differing:
            shown = p.created_by if len(p.created_by) <= 120 else p.created_by[:117] + "..."
            lines.append(f"- `{p.case}` [{p.platform}] {p.instruction}: `{shown}`")
    return "\n".join(lines) + "\n"
