"""Run the real ``xarch`` entry point in-process with an isolated XARCH_HOME and docker config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.images import ImageSet, make_index, single_image, write_image
from xarch.transports.layout import LayoutSink


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


Runner = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "xarch-home"
    monkeypatch.setenv("XARCH_HOME", str(h))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("XARCH_PROGRESS", raising=False)
    monkeypatch.delenv("XARCH_DEBUG", raising=False)
    return h


@pytest.fixture
def xarch(home: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> Runner:
    """``xarch("copy", SRC, DST)`` → Result; the process exit code is captured, not raised."""
    from xarch.cli.main import main

    def run(*args: str) -> Result:
        capfdbinary.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capfdbinary.readouterr()
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"), out)

    return run


def write_layout(path: Path, image: ImageSet, tag: str | None = "v1") -> Path:
    sink = LayoutSink(path, tag)
    try:
        write_image(sink, image)
    finally:
        sink.close()
    return path


@pytest.fixture
def multi(tmp_path: Path) -> tuple[Path, ImageSet]:
    img = make_index(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    return write_layout(tmp_path / "multi", img), img


@pytest.fixture
def single(tmp_path: Path) -> tuple[Path, ImageSet]:
    img = single_image("linux/arm64")
    return write_layout(tmp_path / "single", img), img


PROGRESS_PREFIXES = ("copy sha256:", "skip sha256:", "mount sha256:", "manifest sha256:", "retry ")


def assert_one_error(r: Result) -> None:
    """Exactly one ``error:`` line, last on stderr; anything before it is progress output."""
    assert r.code != 0, r
    lines = r.err_lines
    assert lines, r
    assert lines[-1].startswith("error: "), lines
    assert all(ln.startswith(PROGRESS_PREFIXES) for ln in lines[:-1]), lines
    assert "Traceback" not in r.err


def assert_store_ok(xarch: Runner) -> None:
    ls = xarch("ls")
    assert ls.code == 0, ls
    v = xarch("store", "verify")
    assert v.code == 0, v
    assert "store ok" in v.out
