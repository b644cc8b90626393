"""Dockerfile parse errors: one line, with ``file:line`` so editors can jump to it."""

from __future__ import annotations

from xarch.errors import InputError

__all__ = ["DockerfileError"]


class DockerfileError(InputError):
    """A Dockerfile that cannot be parsed (or, in the instruction layer, understood)."""

    def __init__(
        self,
        message: str,
        *,
        filename: str = "Dockerfile",
        line: int | None = None,
        source_line: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.filename = filename
        self.line = line
        self.source_line = source_line

    def __str__(self) -> str:
        where = self.filename if self.line is None else f"{self.filename}:{self.line}"
        out = f"{where}: {self.message}"
        if self.hint:
            out += f" ({self.hint})"
        if self.source_line is not None:
            # Keep the report on one line whatever the offending source contains.
            src = self.source_line.strip().replace("\r", " ").replace("\n", " ")
            if len(src) > 120:
                src = src[:117] + "..."
            if src:
                out += f" | {src}"
        return out
