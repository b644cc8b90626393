"""Typed Dockerfile instructions: the AST from ``parser.parse`` turned into frozen dataclasses.

Mirrors BuildKit's ``frontend/dockerfile/instructions`` (parse.go, bflag.go, commands.go,
commands_runmount.go): the same flags per instruction, the same argument-count rules, the same
``--mount`` grammar and defaults. Variable expansion does *not* happen here; values are kept as
written so that ``stages.py`` can expand them per stage and per target platform (BuildKit's
``Expand`` step). Every error names ``file:line``.
"""

from __future__ import annotations

import csv
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from xarch.frontend.dockerfile.errors import DockerfileError
from xarch.frontend.dockerfile.parser import (
    chomp_heredoc_content,
    parse_heredoc,
    suggest_instruction,
)

__all__ = [
    "Add",
    "Arg",
    "ArgSpec",
    "BFlags",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "InstructionError",
    "KeyValue",
    "Label",
    "Maintainer",
    "Mount",
    "Onbuild",
    "Run",
    "Shell",
    "ShellInlineFile",
    "SourceContent",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "expand_instruction",
    "go_clean",
    "iter_instructions",
    "parse_duration",
    "parse_heredoc_marker",
    "parse_instruction",
    "parse_mount",
    "parse_mount_from",
    "resolve_mount",
    "suggest_word",
]

Location = tuple[int, int]
# A single-word expander (BuildKit's SingleWordExpander): word in, expanded word out.
Expander = Callable[[str], str]

INSTRUCTION_NAMES: tuple[str, ...] = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)  # fmt: skip


class _NodeLike(Protocol):
    """The parts of ``parser.Node`` this module reads (kept structural to avoid a hard import)."""

    value: str
    next: Any
    children: Any
    heredocs: Any
    attributes: Any
    original: str
    flags: Any
    start_line: int
    end_line: int


# --------------------------------------------------------------------------------------------
# Errors


class InstructionError(DockerfileError):
    """An instruction that parses but cannot be understood (bad flag, wrong argument count...)."""


class _Fail(Exception):
    """Internal: a message without location; ``parse_instruction`` adds ``file:line``."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------------------------
# Flags (BuildKit's BFlags)


@dataclass
class _Flag:
    name: str
    kind: str  # "bool" | "string" | "strings"
    value: str = ""
    values: list[str] = field(default_factory=list)
    used: bool = False


class BFlags:
    """Declared flags of one instruction, then ``parse()`` of the ``--x[=y]`` words.

    Same rules as BuildKit: every word must start with ``--``; a bare ``--`` ends the flags;
    bool flags accept ``--f``, ``--f=true|false`` (case-insensitive); string flags need ``=``;
    ``strings`` flags (``--mount``, ``--exclude``) may repeat, the others may not.
    """

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self._flags: dict[str, _Flag] = {}

    def _add(self, name: str, kind: str, default: str = "") -> _Flag:
        if name in self._flags:  # a programming error, not a user error
            raise ValueError(f"duplicate flag defined: {name}")
        f = _Flag(name, kind, default)
        self._flags[name] = f
        return f

    def add_bool(self, name: str, default: bool = False) -> _Flag:
        return self._add(name, "bool", "true" if default else "false")

    def add_string(self, name: str, default: str = "") -> _Flag:
        return self._add(name, "string", default)

    def add_strings(self, name: str) -> _Flag:
        return self._add(name, "strings")

    def used(self, name: str) -> bool:
        f = self._flags.get(name)
        return bool(f and f.used)

    def used_names(self) -> list[str]:
        return [n for n, f in self._flags.items() if f.used]

    def parse(self) -> None:
        known = sorted("--" + n for n in self._flags)
        for raw in self.args:
            if not raw.startswith("--"):
                raise _Fail(f"argument should start with --: {raw}")
            if raw == "--":
                return
            body = raw[2:]
            name, eq, value = body.partition("=")
            f = self._flags.get(name)
            if f is None:
                hint = (
                    f"valid flags: {', '.join(known)}"
                    if known
                    else "this instruction takes no flags"
                )
                raise _Fail(f"unknown flag: --{name}", hint)
            if f.used and f.kind != "strings":
                raise _Fail(f"duplicate flag specified: --{name}")
            f.used = True
            if f.kind == "bool":
                if eq and value == "":
                    raise _Fail(f"missing a value on flag: --{name}")
                low = value.lower()
                if low == "":
                    f.value = "true"
                elif low in ("true", "false"):
                    f.value = low
                else:
                    raise _Fail(f"expecting boolean value for flag --{name}, not: {value}")
            elif not eq:
                raise _Fail(f"missing a value on flag: --{name}", f"use --{name}=<value>")
            elif f.kind == "string":
                f.value = value
            else:
                f.values.append(value)


# --------------------------------------------------------------------------------------------
# Small value types


@dataclass(frozen=True)
class KeyValue:
    """One ``ENV``/``LABEL`` pair; ``legacy`` is the ``ENV key value`` form (no ``=``)."""

    key: str
    value: str
    legacy: bool = False


@dataclass(frozen=True)
class ArgSpec:
    """One ``ARG`` name and value: the default as written (``None``: declared without ``=``);
    in an expanded command, the value the ARG resolved to (``None``: still unset)."""

    key: str
    value: str | None = None


@dataclass(frozen=True)
class SourceContent:
    """An inline heredoc source of ``COPY``/``ADD`` (already chomped if ``<<-``)."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True)
class ShellInlineFile:
    """A heredoc attached to ``RUN``/``CMD``/``ENTRYPOINT`` (not chomped; ``chomp`` says if it should)."""

    name: str
    data: str
    chomp: bool


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount``, with BuildKit's parse-time defaults applied.

    ``readonly`` defaults to true for bind/secret/ssh and false for cache/tmpfs unless
    ro/rw was given. Type-specific defaults that depend on the stage (cache id = target,
    secret target ``/run/secrets/<id>``...) are filled by :func:`resolve_mount`.
    """

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0
    id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None  # secret as env var; "" means "use the id"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


# --------------------------------------------------------------------------------------------
# Instructions


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part of every instruction.

    ``keyword`` is the instruction word as written (``RUN`` or ``run``), ``original`` the
    source text, ``location`` the (start_line, end_line) range (1-based, inclusive).
    """

    keyword: str = ""
    original: str = ""
    location: Location = (0, 0)

    @property
    def name(self) -> str:
        """Lower-case instruction name (``"run"``)."""
        return type(self).__name__.lower()

    @property
    def line(self) -> int:
        return self.location[0]

    def expand(self, expander: Expander) -> Instruction:
        """Return a copy with BuildKit's expandable fields expanded (default: none)."""
        return self


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    base_name: str
    stage_name: str | None = None  # lower-cased, validated
    platform: str | None = None  # raw ``--platform`` value (expanded in stages.py)
    as_keyword: str = ""  # the ``AS`` word as written, for the FromAsCasing check
    stage_name_raw: str = ""  # the name as written, for the StageNameCasing check


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: tuple[KeyValue, ...]

    def expand(self, expander: Expander) -> Env:
        return replace(
            self,
            pairs=tuple(
                replace(p, key=expander(p.key), value=expander(p.value)) for p in self.pairs
            ),
        )


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    pairs: tuple[KeyValue, ...]

    def expand(self, expander: Expander) -> Label:
        return replace(
            self,
            pairs=tuple(
                replace(p, key=expander(p.key), value=expander(p.value)) for p in self.pairs
            ),
        )


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    pairs: tuple[ArgSpec, ...]
    # Arg values are expanded one by one in stages.py (a default may be shadowed by a
    # build-arg and must then not be expanded at all), so no expand() here.


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str

    def expand(self, expander: Expander) -> Workdir:
        return replace(self, path=expander(self.path))


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str

    def expand(self, expander: Expander) -> User:
        return replace(self, user=expander(self.user))


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    ports: tuple[str, ...]  # sorted, as BuildKit does; expanded with word splitting in stages.py


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    volumes: tuple[str, ...]

    def expand(self, expander: Expander) -> Volume:
        return replace(self, volumes=tuple(expander(v) for v in self.volumes))


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str

    def expand(self, expander: Expander) -> StopSignal:
        return replace(self, signal=expander(self.signal))


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    expression: str  # the trigger source (ONBUILD stripped, heredoc bodies re-attached)
    trigger_keyword: str = ""  # upper-case keyword of the trigger, e.g. "RUN"


@dataclass(frozen=True, kw_only=True)
class _ShellDependent(Instruction):
    cmd_line: tuple[str, ...]
    prepend_shell: bool
    heredocs: tuple[ShellInlineFile, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Run(_ShellDependent):
    """``RUN``. ``mount_specs`` are the raw ``--mount`` values; ``mounts`` their parsed form.

    ``mounts`` is filled at parse time only when no spec contains ``$`` (values with
    variables can only be validated once expanded); the expanded command returned by
    ``BuildPlan.stage_commands`` always has every mount parsed.
    """

    mount_specs: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    flags_used: tuple[str, ...] = ()

    def expand(self, expander: Expander) -> Run:
        if not self.mount_specs:
            return self
        return replace(self, mounts=tuple(parse_mount(s, expander) for s in self.mount_specs))


@dataclass(frozen=True, kw_only=True)
class Cmd(_ShellDependent):
    pass


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_ShellDependent):
    pass


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK``. ``test`` is ``("NONE",)``, ``("CMD", ...)`` or ``("CMD-SHELL", cmd)``.

    Durations are nanoseconds (the image config unit); 0 means "not set, inherit default".
    """

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class _CopyBase(Instruction):
    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[SourceContent, ...] = ()
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Copy(_CopyBase):
    from_: str = ""
    parents: bool = False

    def expand(self, expander: Expander) -> Copy:
        return replace(
            self,
            chown=expander(self.chown),
            chmod=expander(self.chmod),  # BuildKit expands --chmod too (since dockerfile 1.10)
            sources=tuple(expander(s) for s in self.sources),
            dest=expander(self.dest),
        )


@dataclass(frozen=True, kw_only=True)
class Add(_CopyBase):
    checksum: str = ""
    keep_git_dir: bool = False
    unpack: bool | None = None  # None: the default (unpack local archives, not URLs)

    def expand(self, expander: Expander) -> Add:
        return replace(
            self,
            chown=expander(self.chown),
            chmod=expander(self.chmod),
            checksum=expander(self.checksum),
            sources=tuple(expander(s) for s in self.sources),
            dest=expander(self.dest),
        )


# --------------------------------------------------------------------------------------------
# Helpers shared with stages.py / check.py


def parse_heredoc_marker(word: str) -> tuple[str, bool, bool] | None:
    """``<<EOF`` / ``<<-"EOF"`` → (name, chomp, expand); anything else → None.

    BuildKit's ``MustParseHeredoc``: the parser's heredoc recognition, errors meaning "no".
    """
    try:
        h = parse_heredoc(word)
    except DockerfileError:
        return None
    if h is None:
        return None
    return h.name, h.chomp, h.expand


def chomp_heredoc(content: str) -> str:
    """Strip leading tabs from every line (``<<-``), like BuildKit's ChompHeredocContent."""
    return chomp_heredoc_content(content)


def _node_args(node: _NodeLike) -> list[str]:
    """BuildKit's nodeArgs: the values of the ``next`` chain; sub-commands (ONBUILD) inlined."""
    out: list[str] = []
    cur = node
    while cur.next is not None:
        arg = cur.next
        children = list(arg.children or [])
        if not children:
            out.append(arg.value)
        elif len(children) == 1:
            out.append(children[0].value)
            out.extend(_node_args(children[0]))
        cur = arg
    return out


def _keyword(node: _NodeLike) -> str:
    """The instruction word as written (the parser lower-cases ``value``)."""
    orig = (node.original or "").lstrip()
    word = orig.split(None, 1)[0] if orig else ""
    return word if word.lower() == node.value.lower() else node.value


def _is_json(node: _NodeLike) -> bool:
    return bool((node.attributes or {}).get("json"))


def _handle_json_args(args: list[str], json_form: bool) -> tuple[str, ...]:
    if not args:
        return ()
    if json_form:
        return tuple(args)
    return (" ".join(args),)  # shell form: one string, the shell splits it


# --------------------------------------------------------------------------------------------
# Go-compatible value parsers

_GO_BOOL = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}  # fmt: skip

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]+)")


def parse_duration(s: str) -> int:
    """Go ``time.ParseDuration`` → nanoseconds (``"1m30s"``, ``"1.5h"``, ``"300ms"``, ``"-2s"``)."""
    orig = s
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or (not m.group(1) and not m.group(2)):
            raise ValueError(f'time: invalid duration "{orig}"')
        unit = m.group(3)
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        number = float(f"{m.group(1) or '0'}.{m.group(2) or '0'}")
        total += number * _DURATION_UNITS[unit]
        pos = m.end()
    ns = round(total)
    if ns > 2**63 - 1:
        raise ValueError(f'time: invalid duration "{orig}"')
    return -ns if neg else ns


_RAM_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")


def _ram_in_bytes(s: str) -> int:
    """go-units ``RAMInBytes``: ``"64m"``, ``"1.5g"``, ``"512"``, ``"2GiB"`` (1024-based)."""
    m = _RAM_RE.match(s)
    if m is None:
        raise ValueError(s)
    try:
        size = float(m.group(1))
    except ValueError as e:  # "1.2.3" matches the regex but is not a number
        raise ValueError(s) from e
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(size * mult[(m.group(2) or "").lower()])


def go_clean(path: str) -> str:
    """Go ``path.Clean``: like ``posixpath.normpath`` but ``//x`` becomes ``/x``."""
    out = posixpath.normpath(path) if path else "."
    return "/" + out.lstrip("/") if out.startswith("//") else out


def _parse_uint(value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value):
        raise ValueError(value)
    n = int(value, base)
    if n > 0xFFFFFFFF:
        raise ValueError(value)
    return n


# --------------------------------------------------------------------------------------------
# --mount (commands_runmount.go)

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
    "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
)  # fmt: skip


def suggest_word(word: str, options: Sequence[str]) -> str | None:
    """Closest option for a typo (BuildKit's suggest package): edit distance with adjacent
    transpositions counted once, at most 1 for short words and 2 otherwise."""
    limit = 1 if len(word) <= 3 else 2
    best: tuple[int, str] | None = None
    for opt in options:
        d = _osa_distance(word.lower(), opt.lower())
        if d <= limit and d < len(word) and (best is None or d < best[0]):
            best = (d, opt)
    return best[1] if best else None


def _osa_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Levenshtein plus adjacent swaps)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _csv_fields(val: str) -> list[str]:
    try:
        rows = list(csv.reader([val], strict=True))
    except csv.Error as e:
        raise _Fail(f"failed to parse csv mounts: {e}") from e
    return rows[0] if rows else []


def parse_mount_from(spec: str) -> str:
    """The ``from=`` value of a raw ``--mount`` spec (``""`` if none); never expanded.

    BuildKit refuses variables in ``from`` (``define alias stage instead``), so this is the
    value used for stage dependencies at parse time.
    """
    out = ""
    for fld in _csv_fields(spec):
        key, eq, value = fld.partition("=")
        if eq and key.lower() == "from":
            out = value
    return out


def parse_mount(spec: str, expander: Expander | None = None) -> Mount:
    """Parse one ``--mount`` value like BuildKit's ``parseMount``.

    ``expander`` is applied to every value first (stage-time parsing). Without it, values are
    taken literally. Raises ``_Fail`` (wrapped with file:line by the callers) on bad input.
    """
    fields = _csv_fields(spec)
    m: dict[str, Any] = {"type": "bind"}
    ro_auto = True
    for fld in fields:
        key, eq, value = fld.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
                continue
            if key == "required":
                if m["type"] in ("secret", "ssh"):
                    m["required"] = True
                    continue
                raise _Fail(f"unexpected key '{key}' for mount type '{m['type']}'")
            raise _Fail(f"invalid field '{fld}' must be a key=value pair")
        if key == "from" and "$" in value[:-1]:
            raise _Fail(f"'{key}' doesn't support variable expansion, define alias stage instead")
        if expander is not None:
            value = expander(value)
        if key == "type":
            v = value.lower()
            if v not in MOUNT_TYPES:
                s = suggest_word(value, MOUNT_TYPES)
                raise _Fail(
                    f"unsupported mount type {value!r}",
                    f"did you mean {s}?" if s else f"one of {', '.join(MOUNT_TYPES)}",
                )
            m["type"] = v
        elif key == "from":
            m["from_"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro", "readwrite", "rw"):
            if value not in _GO_BOOL:
                raise _Fail(f"invalid value for {key}: {value}")
            b = _GO_BOOL[value]
            m["readonly"] = b if key in ("readonly", "ro") else not b
            ro_auto = False
        elif key == "required":
            if m["type"] not in ("secret", "ssh"):
                raise _Fail(f"unexpected key '{key}' for mount type '{m['type']}'")
            if value not in _GO_BOOL:
                raise _Fail(f"invalid value for {key}: {value}")
            m["required"] = _GO_BOOL[value]
        elif key == "size":
            if m["type"] != "tmpfs":
                raise _Fail(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["size_limit"] = _ram_in_bytes(value)
            except ValueError:
                raise _Fail(f"invalid value for {key}: {value}") from None
        elif key == "id":
            m["id"] = value
        elif key == "sharing":
            v = value.lower()
            if v not in SHARING_MODES:
                s = suggest_word(value, SHARING_MODES)
                raise _Fail(
                    f"unsupported sharing value {value!r}",
                    f"did you mean {s}?" if s else f"one of {', '.join(SHARING_MODES)}",
                )
            m["sharing"] = v
        elif key in ("mode", "uid", "gid"):
            try:
                m[key] = _parse_uint(value, 8 if key == "mode" else 10)
            except ValueError:
                raise _Fail(f"invalid value {value} for {key}") from None
        elif key == "env":
            m["env"] = value
        else:
            s = suggest_word(key, _MOUNT_KEYS)
            raise _Fail(f"unexpected key '{key}' in '{fld}'", f"did you mean {s}?" if s else None)

    mount = Mount(**m)
    if mount.type not in ("secret", "ssh", "cache"):
        for attr in ("mode", "uid", "gid"):
            if getattr(mount, attr) is not None:
                raise _Fail(f'{attr} not allowed for "{mount.type}" type mounts')
    if ro_auto:
        mount = replace(mount, readonly=mount.type not in ("cache", "tmpfs"))
    if mount.type == "secret":
        if mount.from_:
            raise _Fail("secret mount should not have a from")
        if mount.sharing:
            raise _Fail("secret mount should not define sharing")
        if not mount.source and not mount.target and not mount.id:
            raise _Fail("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise _Fail("both source and id can't be set")
    if mount.sharing and mount.type != "cache":
        raise _Fail(f"invalid cache sharing set for {mount.type} mount")
    return mount


def resolve_mount(mount: Mount, *, workdir: str = "/", index: int = 0) -> Mount:
    """Fill the stage-dependent defaults BuildKit applies when it dispatches a ``RUN``.

    * bind/cache/tmpfs: relative target is joined to ``workdir``; target ``/`` is an error;
      cache id defaults to the target, sharing to ``shared``, mode to 0755, uid/gid to 0.
    * secret: id from source, else the basename of target; target ``/run/secrets/<id>`` unless
      the secret goes to an env var only; ``env=`` with no name uses the id; mode 0400.
    * ssh: id ``default``; target ``/run/buildkit/ssh_agent.<index>``; mode 0600.

    ``index`` is the position of the mount in its ``RUN`` (for the ssh socket name).
    Raises ``ValueError`` with a user-facing message.
    """
    if mount.type == "secret":
        sid = mount.source or mount.id
        if not sid:
            if not mount.target:
                raise ValueError("one of source, target required")
            sid = posixpath.basename(mount.target)
        target = mount.target
        if not target and mount.env is None:
            target = "/run/secrets/" + posixpath.basename(sid)
        env = mount.env
        if env == "":
            env = sid
        return replace(
            mount, id=sid, source="", target=target, env=env,
            mode=0o400 if mount.mode is None else mount.mode,
            uid=mount.uid or 0, gid=mount.gid or 0,
        )  # fmt: skip
    if mount.type == "ssh":
        return replace(
            mount,
            id=mount.id or "default",
            target=mount.target or f"/run/buildkit/ssh_agent.{index}",
            mode=0o600 if mount.mode is None else mount.mode,
            uid=mount.uid or 0,
            gid=mount.gid or 0,
        )
    target = mount.target
    if not posixpath.isabs(posixpath.normpath(target or ".")):
        target = go_clean(posixpath.join("/", workdir or "/", target))
    else:
        target = go_clean(target)
    if target == "/":
        raise ValueError(f'invalid mount target "{target}"')
    if mount.type == "cache":
        return replace(
            mount,
            target=target,
            id=mount.id or target,
            sharing=mount.sharing or "shared",
            mode=0o755 if mount.mode is None else mount.mode,
            uid=mount.uid or 0,
            gid=mount.gid or 0,
        )
    return replace(mount, target=target)


# --------------------------------------------------------------------------------------------
# Per-instruction parsers


@dataclass
class _Req:
    node: _NodeLike
    keyword: str
    args: list[str]
    flags: BFlags
    json: bool
    heredocs: list[Any]

    def base(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "original": (self.node.original or "").strip(),
            "location": (self.node.start_line, self.node.end_line),
        }


def _at_least_one(cmd: str) -> _Fail:
    return _Fail(f"{cmd} requires at least one argument")


def _exactly_one(cmd: str) -> _Fail:
    return _Fail(f"{cmd} requires exactly one argument")


def _kvps(args: list[str], cmd: str) -> tuple[KeyValue, ...]:
    """The parser emits (key, value, delimiter) triples; delimiter "" = legacy ``k v`` form."""
    if not args:
        raise _at_least_one(cmd)
    if len(args) % 3 != 0:
        raise _Fail(f"bad input to {cmd}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise _Fail(f"{cmd} names can not be blank")
        out.append(KeyValue(args[i], args[i + 1], legacy=args[i + 2] == ""))
    return tuple(out)


def _p_env(r: _Req) -> Instruction:
    r.flags.parse()
    return Env(pairs=_kvps(r.args, "ENV"), **r.base())


def _p_label(r: _Req) -> Instruction:
    r.flags.parse()
    return Label(pairs=_kvps(r.args, "LABEL"), **r.base())


def _p_maintainer(r: _Req) -> Instruction:
    if len(r.args) != 1:
        raise _exactly_one("MAINTAINER")
    r.flags.parse()
    return Maintainer(maintainer=r.args[0], **r.base())


_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_.]*$")


def _p_from(r: _Req) -> Instruction:
    args = r.args
    name: str | None = None
    as_kw = raw_name = ""
    if len(args) == 3 and args[1].lower() == "as":
        as_kw, raw_name = args[1], args[2]
        name = raw_name.lower()
        if not _STAGE_NAME_RE.match(name):
            raise _Fail(
                f"invalid name for build stage: {raw_name!r}, name can't start with a number or "
                "contain symbols"
            )
    elif len(args) != 1:
        raise _Fail("FROM requires either one or three arguments", "FROM <image> [AS <name>]")
    fl_platform = r.flags.add_string("platform")
    r.flags.parse()
    return From(
        base_name=args[0],
        stage_name=name,
        platform=fl_platform.value or None,  # BuildKit: an empty --platform= means none
        as_keyword=as_kw,
        stage_name_raw=raw_name,
        **r.base(),
    )


_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")


def _p_onbuild(r: _Req) -> Instruction:
    if not r.args:
        raise _at_least_one("ONBUILD")
    r.flags.parse()
    trig = r.args[0].strip().upper()
    if trig == "ONBUILD":
        raise _Fail("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trig in ("MAINTAINER", "FROM"):
        raise _Fail(f"{trig} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", r.node.original or "", count=1)
    for h in r.heredocs:
        expression += "\n" + h.content + h.name
    return Onbuild(expression=expression, trigger_keyword=trig, **r.base())


def _p_workdir(r: _Req) -> Instruction:
    if len(r.args) != 1:
        raise _exactly_one("WORKDIR")
    r.flags.parse()
    return Workdir(path=r.args[0], **r.base())


def _shell_files(r: _Req) -> tuple[ShellInlineFile, ...]:
    return tuple(ShellInlineFile(h.name, h.content, bool(h.chomp)) for h in r.heredocs)


def _p_run(r: _Req) -> Instruction:
    fl_mount = r.flags.add_strings("mount")
    fl_network = r.flags.add_string("network", "default")
    fl_security = r.flags.add_string("security", "sandbox")
    r.flags.parse()
    if fl_network.value not in ("default", "none", "host"):
        raise _Fail(f"unsupported network mode {fl_network.value!r}", "use default, none or host")
    if fl_security.value not in ("sandbox", "insecure"):
        raise _Fail(f"security {fl_security.value!r} is not valid", "use sandbox or insecure")
    specs = tuple(fl_mount.values)
    mounts: tuple[Mount, ...] = ()
    for s in specs:
        # Literal specs are checked now (errors carry this line); specs with variables only
        # get BuildKit's parse-time checks and are fully parsed once expanded.
        if "$" in s:
            _validate_mount_deferred(s)
        else:
            mounts += (parse_mount(s),)
    if any("$" in s for s in specs):
        mounts = ()  # a partial list would mislead; the expanded command has them all
    return Run(
        cmd_line=_handle_json_args(r.args, r.json),
        prepend_shell=not r.json,
        heredocs=_shell_files(r),
        mount_specs=specs,
        mounts=mounts,
        network=fl_network.value,
        security=fl_security.value,
        flags_used=tuple(r.flags.used_names()),
        **r.base(),
    )


def _validate_mount_deferred(spec: str) -> None:
    """What BuildKit checks before expansion: key=value shape and no variables in ``from``."""
    for fld in _csv_fields(spec):
        key, eq, value = fld.partition("=")
        if eq and key.lower() == "from" and "$" in value[:-1]:
            raise _Fail("'from' doesn't support variable expansion, define alias stage instead")


def _p_cmd(r: _Req) -> Instruction:
    r.flags.parse()
    return Cmd(
        cmd_line=_handle_json_args(r.args, r.json), prepend_shell=not r.json,
        heredocs=_shell_files(r), **r.base(),
    )  # fmt: skip


def _p_entrypoint(r: _Req) -> Instruction:
    r.flags.parse()
    return Entrypoint(
        cmd_line=_handle_json_args(r.args, r.json), prepend_shell=not r.json,
        heredocs=_shell_files(r), **r.base(),
    )  # fmt: skip


def _p_healthcheck(r: _Req) -> Instruction:
    if not r.args:
        raise _at_least_one("HEALTHCHECK")
    typ = r.args[0].upper()
    rest = r.args[1:]
    if typ == "NONE":
        if rest:
            raise _Fail("HEALTHCHECK NONE takes no arguments")
        # BuildKit never parses the flags of HEALTHCHECK NONE: they are ignored, not errors.
        return Healthcheck(test=("NONE",), **r.base())
    fl = {
        n: r.flags.add_string(n)
        for n in ("interval", "timeout", "start-period", "start-interval", "retries")
    }
    r.flags.parse()
    if typ != "CMD":
        raise _Fail(f'unknown type "{typ}" in HEALTHCHECK', "try CMD")
    cmd = _handle_json_args(rest, r.json)
    if not cmd:
        raise _Fail("missing command after HEALTHCHECK CMD")
    test = (("CMD" if r.json else "CMD-SHELL"), *cmd)

    def interval(name: str) -> int:
        v = fl[name].value
        if v == "":
            return 0
        try:
            d = parse_duration(v)
        except ValueError as e:
            raise _Fail(f"invalid value for --{name}: {e}") from None
        if d == 0:
            return 0
        if d < 1_000_000:  # container.MinimumDuration
            raise _Fail(f'interval "{name}" cannot be less than 1ms')
        return d

    retries = 0
    if fl["retries"].value != "":
        v = fl["retries"].value
        if not re.fullmatch(r"[+-]?[0-9]+", v) or not -(2**31) <= int(v) < 2**31:
            raise _Fail(f"invalid value for --retries: {v!r}", "expected an integer")
        retries = int(v)
        if retries < 0:
            raise _Fail(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        test=test,
        interval=interval("interval"),
        timeout=interval("timeout"),
        start_period=interval("start-period"),
        start_interval=interval("start-interval"),
        retries=retries,
        **r.base(),
    )


def _p_expose(r: _Req) -> Instruction:
    if not r.args:
        raise _at_least_one("EXPOSE")
    r.flags.parse()
    return Expose(ports=tuple(sorted(r.args)), **r.base())


def _p_user(r: _Req) -> Instruction:
    if len(r.args) != 1:
        raise _exactly_one("USER")
    r.flags.parse()
    return User(user=r.args[0], **r.base())


def _p_volume(r: _Req) -> Instruction:
    if not r.args:
        raise _at_least_one("VOLUME")
    r.flags.parse()
    vols = []
    for v in r.args:
        v = v.strip()
        if not v:
            raise _Fail("VOLUME specified can not be an empty string")
        vols.append(v)
    return Volume(volumes=tuple(vols), **r.base())


def _p_stopsignal(r: _Req) -> Instruction:
    if len(r.args) != 1:
        raise _exactly_one("STOPSIGNAL")
    # BuildKit never parses STOPSIGNAL's flags (they are ignored); do the same.
    return StopSignal(signal=r.args[0], **r.base())


def _p_arg(r: _Req) -> Instruction:
    if not r.args:
        raise _at_least_one("ARG")
    r.flags.parse()
    pairs = []
    for a in r.args:
        if "=" in a:
            k, _, v = a.partition("=")
            if not k:
                raise _Fail("ARG names can not be blank")
            pairs.append(ArgSpec(k, v))
        else:
            pairs.append(ArgSpec(a))
    return Arg(pairs=tuple(pairs), **r.base())


def _p_shell(r: _Req) -> Instruction:
    r.flags.parse()
    shell = _handle_json_args(r.args, r.json)
    if not shell:
        raise _at_least_one("SHELL")
    if not r.json:
        raise _Fail(
            "SHELL requires the arguments to be in JSON form", 'e.g. SHELL ["/bin/bash", "-c"]'
        )
    return Shell(shell=shell, **r.base())


def _sources_and_dest(r: _Req, cmd: str) -> tuple[tuple[str, ...], str, tuple[SourceContent, ...]]:
    srcs, dest = r.args[:-1], r.args[-1]
    if parse_heredoc_marker(dest) is not None:
        raise _Fail(f"{cmd} cannot accept a heredoc as a destination")
    lookup = {h.name: h for h in r.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for s in srcs:
        hd = parse_heredoc_marker(s)
        if hd is None:
            paths.append(s)
            continue
        name, chomp, expand = hd
        h = lookup.get(name)
        data = h.content if h is not None else ""
        if chomp:
            data = chomp_heredoc(data)
        contents.append(SourceContent(name, data, expand))
    return tuple(paths), dest, tuple(contents)


def _p_add(r: _Req) -> Instruction:
    if len(r.args) < 2:
        raise _Fail(
            "ADD requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    fl_excl = r.flags.add_strings("exclude")
    fl_chown = r.flags.add_string("chown")
    fl_chmod = r.flags.add_string("chmod")
    fl_link = r.flags.add_bool("link")
    fl_git = r.flags.add_bool("keep-git-dir")
    fl_sum = r.flags.add_string("checksum")
    fl_unpack = r.flags.add_bool("unpack")
    r.flags.parse()
    srcs, dest, contents = _sources_and_dest(r, "ADD")
    return Add(
        sources=srcs,
        dest=dest,
        heredocs=contents,
        chown=fl_chown.value,
        chmod=fl_chmod.value,
        link=fl_link.value == "true",
        excludes=tuple(fl_excl.values),
        checksum=fl_sum.value,
        keep_git_dir=fl_git.value == "true",
        unpack=(fl_unpack.value == "true") if r.flags.used("unpack") else None,
        **r.base(),
    )


def _p_copy(r: _Req) -> Instruction:
    if len(r.args) < 2:
        raise _Fail(
            "COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    fl_excl = r.flags.add_strings("exclude")
    fl_parents = r.flags.add_bool("parents")
    fl_chown = r.flags.add_string("chown")
    fl_from = r.flags.add_string("from")
    fl_chmod = r.flags.add_string("chmod")
    fl_link = r.flags.add_bool("link")
    r.flags.parse()
    srcs, dest, contents = _sources_and_dest(r, "COPY")
    return Copy(
        sources=srcs,
        dest=dest,
        heredocs=contents,
        chown=fl_chown.value,
        chmod=fl_chmod.value,
        link=fl_link.value == "true",
        excludes=tuple(fl_excl.values),
        from_=fl_from.value,
        parents=fl_parents.value == "true",
        **r.base(),
    )


_PARSERS: dict[str, Callable[[_Req], Instruction]] = {
    "add": _p_add,
    "arg": _p_arg,
    "cmd": _p_cmd,
    "copy": _p_copy,
    "entrypoint": _p_entrypoint,
    "env": _p_env,
    "expose": _p_expose,
    "from": _p_from,
    "healthcheck": _p_healthcheck,
    "label": _p_label,
    "maintainer": _p_maintainer,
    "onbuild": _p_onbuild,
    "run": _p_run,
    "shell": _p_shell,
    "stopsignal": _p_stopsignal,
    "user": _p_user,
    "volume": _p_volume,
    "workdir": _p_workdir,
}


def _suggest_instruction(word: str) -> str | None:
    s = suggest_instruction(word)
    return s.upper() if s else None


def parse_instruction(node: _NodeLike, *, filename: str = "Dockerfile") -> Instruction:
    """Turn one AST node (a child of the root) into its typed instruction.

    Raises :class:`DockerfileError` ``file:line: message`` on unknown instructions, bad flags
    or wrong arguments.
    """
    kw = _keyword(node)
    cmd = (node.value or "").lower()
    fn = _PARSERS.get(cmd)
    if fn is None:
        s = _suggest_instruction(kw)
        raise InstructionError(
            f"unknown instruction: {kw}",
            filename=filename,
            line=node.start_line,
            hint=f"did you mean {s.upper()}?" if s else None,
        )
    req = _Req(
        node=node,
        keyword=kw,
        args=_node_args(node),
        flags=BFlags(list(node.flags or [])),
        json=_is_json(node),
        heredocs=list(node.heredocs or []),
    )
    try:
        return fn(req)
    except _Fail as e:
        raise InstructionError(
            e.message, filename=filename, line=node.start_line, hint=e.hint
        ) from None


def iter_instructions(ast: _NodeLike, *, filename: str = "Dockerfile") -> Iterator[Instruction]:
    """Every child of the root node, parsed, in order."""
    for child in ast.children or []:
        yield parse_instruction(child, filename=filename)


def expand_instruction(ins: Instruction, expander: Expander, *, filename: str) -> Instruction:
    """``ins.expand(expander)`` with ``_Fail`` (from mount parsing) turned into file:line errors."""
    try:
        return ins.expand(expander)
    except _Fail as e:
        raise InstructionError(e.message, filename=filename, line=ins.line, hint=e.hint) from None
