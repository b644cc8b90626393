"""The acceptance's bad inputs, offline: one ``error:`` line, non-zero exit, store consistent.

(Wrong password and registry-side digest mismatch need a real registry: see
tests/integration/test_foundation_acceptance.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.images import ImageSet
from helpers.registry import free_port

from .conftest import Runner, assert_one_error, assert_store_ok


@pytest.fixture
def seeded(xarch: Runner, multi: tuple[Path, ImageSet]) -> tuple[Path, ImageSet]:
    """A store that already holds one image, so 'consistent afterwards' means something."""
    src, img = multi
    assert xarch("--progress", "quiet", "copy", f"oci:{src}:v1", "app:1").code == 0
    return src, img


def _bad_cases(src: Path, tmp_path: Path) -> dict[str, tuple[str, ...]]:
    down = f"127.0.0.1:{free_port()}"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return {
        "bad reference": ("copy", "a//b:1", "app:2"),
        "bad reference upper": ("copy", f"oci:{src}:v1", "docker://Bad/Ref:1"),
        "bad tag chars": ("inspect", f"oci:{src}:v1@@"),
        "unknown store tag": ("copy", "app:nope", f"oci:{tmp_path / 'o'}:v"),
        "unknown layout tag": ("copy", f"oci:{src}:nope", "app:2"),
        "not a layout": ("inspect", f"oci:{tmp_path}"),
        "registry down": ("copy", f"{down}/x/y:1", "app:2"),
        "registry down push": ("copy", "app:1", f"{down}/x/y:1"),
        "not writable": ("copy", "app:1", f"oci:{blocker}/sub:v"),
        "missing archive": ("copy", f"docker-archive:{tmp_path / 'none.tar'}", "app:2"),
        "bad platform": ("inspect", "--platform", "linux/", "app:1"),
        "unknown transport": ("copy", "dir:/tmp/x", "app:2"),
        "rm unknown": ("rm", "nosuch:1"),
        "tag unknown": ("tag", "nosuch:1", "other:1"),
    }


CASES = [
    "bad reference",
    "bad reference upper",
    "bad tag chars",
    "unknown store tag",
    "unknown layout tag",
    "not a layout",
    "registry down",
    "registry down push",
    "not writable",
    "missing archive",
    "bad platform",
    "unknown transport",
    "rm unknown",
    "tag unknown",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_store_stays_consistent(
    case: str, xarch: Runner, seeded: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    src, _ = seeded
    cases = _bad_cases(src, tmp_path)
    assert sorted(cases) == sorted(CASES)
    args = cases[case]
    r = xarch(*args)
    assert_one_error(r)
    assert_store_ok(xarch)
    assert xarch("ls", "-q").out.split() == ["docker.io/library/app:1"]


def test_digest_mismatch_in_source_stores_nothing(
    xarch: Runner, multi: tuple[Path, ImageSet]
) -> None:
    src, img = multi
    layer = next(d for d, b in img.blobs.items() if b[:2] == b"\x1f\x8b")
    p = src / "blobs" / "sha256" / layer.hex
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(data))
    r = xarch("copy", f"oci:{src}:v1", "app:1")
    assert_one_error(r)
    assert layer.hex in r.err or "digest" in r.err
    assert_store_ok(xarch)
    assert xarch("ls", "-q").out.strip() == ""


def test_internal_errors_stay_one_line_without_debug(
    xarch: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xarch import api

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("kaputt")

    monkeypatch.setattr(api, "list_images", boom)
    r = xarch("ls")
    assert r.code == 1
    assert r.err_lines == ["internal error: RuntimeError: kaputt (re-run with --debug for details)"]
    d = xarch("--debug", "ls")
    assert "Traceback" in d.err


def test_usage_errors_exit_2(xarch: Runner) -> None:
    assert xarch("copy").code == 2
    assert xarch("inspect", "--format", "yaml", "x:1").code == 2
    assert xarch("nosuchcommand").code == 2
