"""History times as BuildKit's exporter fills them (normalizeLayersAndHistory + patchImageConfig)."""

from __future__ import annotations

from typing import Any

from xarch.builder.api import _history_times

BASE = "2020-01-01T00:00:00Z"
L1 = "2026-12-01T10:00:00.123456Z"
L2 = "2026-12-01T11:00:00Z"


def _h(*times: str | None) -> list[dict[str, Any]]:
    return [{"created_by": str(i), **({"created": t} if t else {})} for i, t in enumerate(times)]


def test_metadata_steps_take_the_first_new_layer_time_then_the_previous_one() -> None:
    h = _h(BASE, None, L1, None, L2, None)
    created = _history_times(h, None)
    assert [e["created"] for e in h] == [BASE, L1, L1, L1, L2, L2]
    assert created == L2


def test_no_new_layer_keeps_the_base_time() -> None:
    h = _h(BASE, None, None)
    assert _history_times(h, None) == BASE
    assert [e["created"] for e in h] == [BASE, BASE, BASE]


def test_epoch_clamps_later_times_and_names_the_image() -> None:
    h = _h(BASE, L1, None)
    assert _history_times(h, 1700000000) == "2023-11-14T22:13:20Z"
    assert [e["created"] for e in h] == [BASE, "2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z"]


def test_go_nanosecond_times_compare_correctly() -> None:
    h = _h("2023-11-14T22:13:19.999999999Z", "2023-11-14T22:13:20.5Z")
    _history_times(h, 1700000000)
    assert h[0]["created"] == "2023-11-14T22:13:19.999999999Z"  # earlier: kept as it was
    assert h[1]["created"] == "2023-11-14T22:13:20Z"


def test_empty_history_has_no_time() -> None:
    assert _history_times([], None) is None
