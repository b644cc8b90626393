"""``xarch dockerfile check``: a lint set named and worded like BuildKit's build checks.

Rules (``frontend/dockerfile/linter/ruleset.go``): StageNameCasing, FromAsCasing,
NoEmptyContinuation, ConsistentInstructionCasing, DuplicateStageName, ReservedStageName,
JSONArgsRecommended, MaintainerDeprecated, UndefinedArgInFrom, WorkdirRelativePath,
UndefinedVar, MultipleInstructionsDisallowed, LegacyKeyValueFormat, RedundantTargetPlatform,
SecretsUsedInArgOrEnv, FromPlatformFlagConstDisallowed.

Honours the ``# check=skip=Rule1,Rule2`` / ``skip=all`` / ``error=true`` directive. Without a
target every stage is checked (as ``docker build --check`` does). The base images are not
pulled: unless ``base_image`` says otherwise an external base is assumed to set only ``PATH``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.instructions import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Workdir,
    iter_instructions,
    suggest_word,
)
from xarch.frontend.dockerfile.parser import parse
from xarch.frontend.dockerfile.stages import BaseImageInfo, Stage, parse_stages
from xarch.oci.platform import Platform, host_platform

__all__ = [
    "RULES",
    "CheckConfig",
    "CheckReport",
    "CheckWarning",
    "LintError",
    "check",
    "parse_check_options",
]

RULES: dict[str, str] = {
    "StageNameCasing": "Stage names should be lowercase",
    "FromAsCasing": "The 'as' keyword should match the case of the 'from' keyword",
    "NoEmptyContinuation": "Empty continuation lines will become errors in a future release",
    "ConsistentInstructionCasing": (
        "All commands within the Dockerfile should use the same casing (either upper or lower)"
    ),
    "DuplicateStageName": "Stage names should be unique",
    "ReservedStageName": "Reserved words should not be used as stage names",
    "JSONArgsRecommended": (
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related "
        "to OS signals"
    ),
    "MaintainerDeprecated": (
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author"
    ),
    "UndefinedArgInFrom": "FROM command must use declared ARGs",
    "WorkdirRelativePath": (
        "Relative workdir without an absolute workdir declared within the build can have "
        "unexpected results if the base image changes"
    ),
    "UndefinedVar": "Variables should be defined before their use",
    "MultipleInstructionsDisallowed": (
        "Multiple instructions of the same type should not be used in the same stage"
    ),
    "LegacyKeyValueFormat": "Legacy key/value format with whitespace separator should not be used",
    "RedundantTargetPlatform": (
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the "
        "default behavior"
    ),
    "SecretsUsedInArgOrEnv": "Sensitive data should not be used in the ARG or ENV commands",
    "FromPlatformFlagConstDisallowed": "FROM --platform flag should not use a constant value",
}

_RESERVED_STAGE_NAMES = ("context", "scratch")
_SECRET_RE = re.compile(
    r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)"
)
_SECRET_ALLOW_RE = re.compile(r"(?i)(?:_|^)(?:public)(?:_|$)")
_GO_BOOL = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}  # fmt: skip


def _kebab(rule: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", rule).lower()


@dataclass(frozen=True)
class CheckWarning:
    rule: str
    message: str
    line: int | None = None

    @property
    def description(self) -> str:
        return RULES.get(self.rule, "")

    @property
    def url(self) -> str:
        return f"https://docs.docker.com/go/dockerfile/rule/{_kebab(self.rule)}/"

    def format(self) -> str:
        """``WARN: Rule - message (line N)``."""
        out = f"WARN: {self.rule} - {self.message}"
        return f"{out} (line {self.line})" if self.line else out

    def short(self) -> str:
        """BuildKit's LintFormatShort: ``Rule: message (line N)``."""
        out = f"{self.rule}: {self.message}"
        return f"{out} (line {self.line})" if self.line else out

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class CheckConfig:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False


class LintError(DockerfileError):
    """``# check=error=true`` and at least one rule fired."""

    def __init__(self, warnings: Sequence[CheckWarning], *, filename: str) -> None:
        rules = sorted({w.rule for w in warnings})
        super().__init__(
            f"lint violation found for rules: {', '.join(rules)}",
            filename=filename,
            hint="fix them, or relax with '# check=skip=<rules>' / 'error=false'",
        )
        self.warnings = list(warnings)


class CheckReport(list[CheckWarning]):
    """The warnings (it *is* the list, sorted by line) plus what ``# check=`` asked for."""

    def __init__(
        self,
        warnings: Sequence[CheckWarning] = (),
        *,
        error_on_warning: bool = False,
        filename: str = "Dockerfile",
    ) -> None:
        super().__init__(warnings)
        self.error_on_warning = error_on_warning
        self.filename = filename

    @property
    def warnings(self) -> list[CheckWarning]:
        return list(self)

    def raise_for_errors(self) -> None:
        """Raise :class:`LintError` when ``error=true`` was set and a rule fired."""
        if self.error_on_warning and self:
            raise LintError(self, filename=self.filename)


def parse_check_options(
    value: str, *, filename: str = "Dockerfile", line: int | None = None
) -> CheckConfig:
    """The ``check`` directive value (``skip=A,B;error=true``), as BuildKit's ParseLintOptions."""
    value = value.strip()
    if not value:
        return CheckConfig()
    skip: list[str] = []
    skip_all = error = False
    for part in value.split(";", 1):
        k, eq, v = part.partition("=")
        if not eq:
            raise DockerfileError(
                f"failed to parse check options: invalid check option {part!r}",
                filename=filename, line=line, hint="use e.g. '# check=skip=JSONArgsRecommended;error=true'",
            )  # fmt: skip
        k = k.strip()
        if k == "skip":
            v = v.strip()
            if v == "all":
                skip_all = True
            else:
                skip = [r.strip() for r in v.split(",")]
        elif k == "error":
            b = _GO_BOOL.get(v.strip())
            if b is None:
                raise DockerfileError(
                    f"failed to parse check options: invalid boolean {v.strip()!r} in {part!r}",
                    filename=filename,
                    line=line,
                )
            error = b
        else:
            raise DockerfileError(
                f"failed to parse check options: invalid check option {k!r}",
                filename=filename, line=line, hint="known options: skip, error",
            )  # fmt: skip
    return CheckConfig(frozenset(skip), skip_all, error)


def _self_consistent(s: str) -> bool:
    return s == s.lower() or s == s.upper()


def check(
    data: bytes | str,
    filename: str = "Dockerfile",
    *,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    target_platform: Platform | None = None,
    build_platform: Platform | None = None,
    base_image: Callable[[Stage], BaseImageInfo | None] | None = None,
    raise_on_error: bool = False,
) -> CheckReport:
    """Lint a Dockerfile; returns the warnings sorted by line (a list with extras).

    Parse and stage errors propagate as :class:`DockerfileError`. ``# check=error=true`` sets
    ``error_on_warning`` on the report; with ``raise_on_error`` a non-empty result raises
    :class:`LintError` right away (a build does that; ``dockerfile check`` prints first).
    """
    result = parse(data, filename)
    cfg = parse_check_options(
        result.directives.get("check", ""),
        filename=filename,
        line=result.directive_lines.get("check"),
    )
    found: list[CheckWarning] = []

    def warn(rule: str, message: str, line: int | None) -> None:
        found.append(CheckWarning(rule, message, line))

    for w in result.warnings:
        warn("NoEmptyContinuation", "Empty continuation line", w.line)

    instructions = list(iter_instructions(result.ast, filename=filename))
    _instruction_rules(instructions, warn)

    tp = target_platform or host_platform()
    plan = parse_stages(
        result.ast,
        build_args=build_args or {},
        target_platform=tp,
        build_platform=build_platform or tp,
        target=target,
        filename=filename,
        escape_token=result.escape_token,
        all_stages=target is None,
    )
    for lw in plan.lint:
        warn(lw.rule, lw.message, lw.line)

    expanded = plan.expand_all(base_image=base_image, only_needed=target is not None)
    for idx in sorted(expanded):
        _dispatch_rules(expanded[idx], warn)

    out = [] if cfg.skip_all else [w for w in found if w.rule not in cfg.skip]
    out.sort(key=lambda w: w.line or 0)
    report = CheckReport(out, error_on_warning=cfg.error, filename=filename)
    if raise_on_error:
        report.raise_for_errors()
    return report


def _instruction_rules(
    instructions: Sequence[Instruction], warn: Callable[[str, str, int | None], None]
) -> None:
    in_stage = False
    cased: list[Instruction] = []
    names: set[str] = set()
    for ins in instructions:
        if isinstance(ins, From):
            in_stage = True
            if ins.stage_name_raw and ins.stage_name_raw != ins.stage_name_raw.lower():
                warn(
                    "StageNameCasing",
                    f"Stage name '{ins.stage_name_raw}' should be lowercase",
                    ins.line,
                )
            if ins.as_keyword:
                kw = ins.keyword
                ok = (
                    ins.as_keyword == ins.as_keyword.lower()
                    if kw == kw.lower()
                    else ins.as_keyword == ins.as_keyword.upper()
                )
                if not ok:
                    warn(
                        "FromAsCasing",
                        f"'{ins.as_keyword}' and '{kw}' keywords' casing do not match",
                        ins.line,
                    )
            if ins.stage_name:
                if ins.stage_name in _RESERVED_STAGE_NAMES:
                    warn(
                        "ReservedStageName",
                        f'Stage name should not use the same name as reserved stage "{ins.stage_name}"',
                        ins.line,
                    )
                if ins.stage_name in names:
                    warn(
                        "DuplicateStageName",
                        f'Duplicate stage name "{ins.stage_name}", stage names should be unique',
                        ins.line,
                    )
                names.add(ins.stage_name)
        if isinstance(ins, Maintainer):
            warn(
                "MaintainerDeprecated",
                "Maintainer instruction is deprecated in favor of using label",
                ins.line,
            )
        if in_stage:  # BuildKit counts stage instructions only (not the global ARGs)
            cased.append(ins)

    lower = sum(1 for i in cased if _self_consistent(i.keyword) and i.keyword == i.keyword.lower())
    upper = sum(1 for i in cased if _self_consistent(i.keyword) and i.keyword != i.keyword.lower())
    majority_lower = lower > upper
    for ins in cased:
        kw = ins.keyword
        if majority_lower and kw.lower() != kw:
            warn(
                "ConsistentInstructionCasing",
                f"Command '{kw}' should match the case of the command majority (lowercase)",
                ins.line,
            )
        elif not majority_lower and kw.upper() != kw:
            warn(
                "ConsistentInstructionCasing",
                f"Command '{kw}' should match the case of the command majority (uppercase)",
                ins.line,
            )


def _dispatch_rules(
    commands: Sequence[object], warn: Callable[[str, str, int | None], None]
) -> None:
    from xarch.frontend.dockerfile.stages import ExpandedCommand

    last: dict[str, int] = {}
    for ec in commands:
        assert isinstance(ec, ExpandedCommand)
        cmd, st = ec.command, ec.state
        line = cmd.line
        for var in sorted(ec.undefined):
            msg = f"Usage of undefined variable '${var}'"
            s = suggest_word(var, [k for k, _ in st.env])
            if s:
                msg += f" (did you mean ${s}?)"
            warn("UndefinedVar", msg, line)
        if isinstance(cmd, Env | Label):
            for p in cmd.pairs:
                if p.legacy:
                    warn(
                        "LegacyKeyValueFormat",
                        f'"{cmd.keyword} key=value" should be used instead of legacy "{cmd.keyword} key value" format',
                        line,
                    )
        if isinstance(cmd, Env | Arg):
            word = "ENV" if isinstance(cmd, Env) else "ARG"
            for key in (p.key for p in cmd.pairs):
                if _SECRET_RE.search(key) and not _SECRET_ALLOW_RE.search(key):
                    warn(
                        "SecretsUsedInArgOrEnv",
                        f'Do not use ARG or ENV instructions for sensitive data ({word} "{key}")',
                        line,
                    )
        if isinstance(cmd, Workdir) and not st.workdir_set and not cmd.path.startswith("/"):
            warn(
                "WorkdirRelativePath",
                f'Relative workdir "{cmd.path}" can have unexpected results if the base image changes',
                line,
            )
        if isinstance(cmd, Cmd | Entrypoint) and cmd.prepend_shell and not st.shell:
            warn(
                "JSONArgsRecommended",
                f"JSON arguments recommended for {cmd.keyword} to prevent unintended behavior related to OS signals",
                line,
            )
        if isinstance(cmd, Cmd | Entrypoint | Healthcheck):
            kind = cmd.name
            if kind in last:
                warn(
                    "MultipleInstructionsDisallowed",
                    f"Multiple {cmd.keyword} instructions should not be used in the same stage "
                    "because only the last one will be used",
                    last[kind],
                )
            last[kind] = line
