"""``check_image`` (``xarch test``): a platform whose ``uname -m`` is not its own fails by
default; ``expect_machine=False`` (``--no-expect-machine``) opts out. Containers are faked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from xarch.builder import run as xrun
from xarch.builder.run import CheckRow, ImageRef, RunOutcome, check_image, expected_machines
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform

NO_STORE: Any = None  # the fake runs never read the store
AMD64, ARM64, ARMV6 = (Platform.parse(p) for p in ("linux/amd64", "linux/arm64", "linux/arm/v6"))


def _ref(*platforms: Platform) -> ImageRef:
    d = Descriptor("application/vnd.oci.image.manifest.v1+json", Digest.from_bytes(b"m"), 1)
    return ImageRef("img:1", d, tuple((p, d) for p in platforms))


class FakeRuns:
    """run_image stand-in: ``machine`` is what `uname -m` prints per platform."""

    def __init__(self, machine: dict[str, str], output: str = "hello\n") -> None:
        self.machine = machine
        self.output = output
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, store: Any, ref: ImageRef, *, platform: Platform,
                 entrypoint: Sequence[str] | None = None, args: Sequence[str] = (),
                 **kw: Any) -> RunOutcome:
        argv = (*(entrypoint or ()), *args)
        self.calls.append((str(platform), argv))
        if argv in (("uname", "-m"), ("/bin/sh", "-c", "uname -m")):
            m = self.machine.get(str(platform))
            return RunOutcome(platform, 0 if m else 127, (m + "\n") if m else "", "fake")
        return RunOutcome(platform, 0, self.output, "fake")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    runs = FakeRuns({"linux/amd64": "x86_64", "linux/arm64": "x86_64"})  # arm64 holds amd64 code
    monkeypatch.setattr(xrun, "run_image", runs)
    return runs


def _by_platform(rows: list[CheckRow]) -> dict[str, CheckRow]:
    return {str(r.platform): r for r in rows}


def test_wrong_machine_fails_by_default(fake: FakeRuns, tmp_path: Path) -> None:
    rows = _by_platform(check_image(NO_STORE, _ref(AMD64, ARM64), cmd="echo hello"))
    assert rows["linux/amd64"].ok and rows["linux/amd64"].reason == "ok"
    assert not rows["linux/arm64"].ok
    assert rows["linux/arm64"].reason == "uname -m says x86_64, expected aarch64"
    assert rows["linux/arm64"].output == "hello\n"  # the row shows the command's own output


def test_no_expect_machine_opts_out(fake: FakeRuns) -> None:
    rows = check_image(NO_STORE, _ref(AMD64, ARM64), cmd="echo hello", expect_machine=False)
    assert all(r.ok for r in rows)
    assert [argv for _, argv in fake.calls] == [("/bin/sh", "-c", "echo hello")] * 2


def test_uname_command_is_its_own_check(fake: FakeRuns) -> None:
    rows = _by_platform(check_image(NO_STORE, _ref(AMD64, ARM64), cmd="uname -m"))
    assert rows["linux/amd64"].ok and not rows["linux/arm64"].ok
    assert len(fake.calls) == 2  # no second run per platform


def test_image_without_uname_fails_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xrun, "run_image", FakeRuns({}))
    (row,) = check_image(NO_STORE, _ref(AMD64), cmd=None)
    assert not row.ok and "--no-expect-machine" in row.reason and "exited 127" in row.reason


def test_arm_v6_code_may_run_on_a_v7_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xrun, "run_image", FakeRuns({"linux/arm/v6": "armv7l"}))
    (row,) = check_image(NO_STORE, _ref(ARMV6), cmd="true")
    assert row.ok, row.reason
    assert expected_machines(ARMV6)[0] == "armv6l"
    assert expected_machines(Platform.parse("windows/amd64")) == ()
