"""Dockerfile frontend: parser, shell-word expansion, typed instructions, stages, checks.

The public names are loaded lazily so that importing one part (say the parser) does not pull
in the others, and so a missing optional module fails only when its name is used. The lint
entry point is ``xarch.frontend.dockerfile.check.check`` (the name ``check`` here is the
submodule, not the function).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from xarch.frontend.dockerfile.check import CheckReport, CheckWarning, LintError
    from xarch.frontend.dockerfile.dockerignore import PatternMatcher
    from xarch.frontend.dockerfile.errors import DockerfileError
    from xarch.frontend.dockerfile.instructions import (
        Instruction,
        Mount,
        parse_instruction,
        parse_mount,
    )
    from xarch.frontend.dockerfile.parser import Node, ParseResult, parse
    from xarch.frontend.dockerfile.shell import Lexer, process_word, process_words
    from xarch.frontend.dockerfile.stages import (
        BaseImageInfo,
        BuildPlan,
        ExpandedCommand,
        Stage,
        TargetNotFoundError,
        parse_stages,
    )

__all__ = [
    "BaseImageInfo",
    "BuildPlan",
    "CheckReport",
    "CheckWarning",
    "DockerfileError",
    "ExpandedCommand",
    "Instruction",
    "Lexer",
    "LintError",
    "Mount",
    "Node",
    "ParseResult",
    "PatternMatcher",
    "Stage",
    "TargetNotFoundError",
    "parse",
    "parse_instruction",
    "parse_mount",
    "parse_stages",
    "process_word",
    "process_words",
]

_EXPORTS: dict[str, str] = {
    "DockerfileError": "errors",
    "parse": "parser",
    "Node": "parser",
    "ParseResult": "parser",
    "Lexer": "shell",
    "process_word": "shell",
    "process_words": "shell",
    "PatternMatcher": "dockerignore",
    "Instruction": "instructions",
    "Mount": "instructions",
    "parse_instruction": "instructions",
    "parse_mount": "instructions",
    "parse_stages": "stages",
    "BuildPlan": "stages",
    "Stage": "stages",
    "ExpandedCommand": "stages",
    "BaseImageInfo": "stages",
    "TargetNotFoundError": "stages",
    "CheckReport": "check",
    "CheckWarning": "check",
    "LintError": "check",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
