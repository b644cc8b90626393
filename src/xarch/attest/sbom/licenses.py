"""Declared licence strings → valid SPDX license expressions (or LicenseRef- identifiers).

Package databases declare licences in many dialects: SPDX expressions (apk, npm, PEP 639),
Debian DEP-5 short names (``GPL-2+``, ``Expat``), free text (Python ``License:``). SBOM
consumers need valid SPDX expressions, so every declared string is either normalised to one
(ids checked against the SPDX License List, operators and parentheses checked by a small
parser) or, when that is impossible, turned into a ``LicenseRef-`` id the document defines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from xarch.attest.sbom._spdx_ids import EXCEPTION_IDS, LICENSE_IDS, LICENSE_LIST_VERSION

__all__ = [
    "LICENSE_LIST_VERSION",
    "is_license_id",
    "license_ref",
    "normalize",
    "to_expression",
]

_LOWER_IDS = {i.lower(): i for i in LICENSE_IDS}
_LOWER_EXC = {i.lower(): i for i in EXCEPTION_IDS}
_REF_RE = re.compile(r"(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+")
_TOKEN_RE = re.compile(r"\s*(\(|\)|[^\s()]+)")

# Debian copyright-format short names (and a few common aliases) that are not SPDX ids as
# written. Keys are lower-case. "+" means "or any later version" (DEP-5 §License).
_ALIASES: dict[str, str] = {
    "expat": "MIT",
    "mit/x11": "MIT",
    "x11": "X11",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "simplified bsd": "BSD-2-Clause",
    "apache-2": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "psf": "Python-2.0",
    "psf-2": "Python-2.0",
    "python": "Python-2.0",
    "zope-2.1": "ZPL-2.1",
    "mpl-2": "MPL-2.0",
    "public-domain": "",  # not a licence: becomes a LicenseRef
    "isc license": "ISC",
    "mit license": "MIT",
    "bsd license": "BSD-3-Clause",
}
_GNU = {"gpl": "GPL", "lgpl": "LGPL", "agpl": "AGPL", "gfdl": "GFDL"}
_GNU_RE = re.compile(r"(?i)(a?gpl|lgpl|gfdl)(?:v|-)?(\d(?:\.\d)?)?(\+|-or-later|-only)?")
_GNU_VERSIONS = {"1": "1.0", "2": "2.0", "3": "3.0", "2.1": "2.1", "1.1": "1.1", "1.2": "1.2"}


def is_license_id(s: str) -> bool:
    return s in LICENSE_IDS


def _gnu(token: str) -> str | None:
    m = _GNU_RE.fullmatch(token)
    if not m:
        return None
    fam = _GNU[m.group(1).lower()]
    ver = m.group(2)
    if ver is None:
        # unversioned "GPL" in DEP-5 means any version
        return {"GPL": "GPL-1.0-or-later", "LGPL": "LGPL-2.0-or-later"}.get(fam)
    v = _GNU_VERSIONS.get(ver, ver if "." in ver else ver + ".0")
    fam_v = f"{fam}-{v}"
    suffix = "-or-later" if m.group(3) in ("+", "-or-later") else "-only"
    cand = fam_v + suffix
    return cand if cand in LICENSE_IDS else None


def _license_token(tok: str) -> str | None:
    """One licence id (maybe with a DEP-5/legacy spelling) → its SPDX id, or None."""
    if _REF_RE.fullmatch(tok):
        return tok
    g = _gnu(tok)  # first, so deprecated spellings ("GPL-2.0+") become current ids
    if g:
        return g
    if tok in LICENSE_IDS:
        return tok
    low = tok.lower()
    if low in _LOWER_IDS:
        return _LOWER_IDS[low]
    alias = _ALIASES.get(low)
    if alias:
        return alias if " " not in alias else f"({alias})"
    if tok.endswith("+"):
        base = _license_token(tok[:-1])
        if base and base in LICENSE_IDS and not base.endswith(("-only", "-or-later")):
            later = base + "-or-later"
            return later if later in LICENSE_IDS else base + "+"
    return None


class _Parser:
    """expr := and ('OR' and)* ; and := with ('AND' with)* ; with := atom ['WITH' exc] ;
    atom := id | '(' expr ')'. Produces the normalised expression text."""

    def __init__(self, tokens: list[str]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expr(self) -> str | None:
        parts = [self.and_()]
        while self.peek() is not None and self.peek().upper() == "OR":  # type: ignore[union-attr]
            self.take()
            parts.append(self.and_())
        if any(p is None for p in parts):
            return None
        return " OR ".join(p for p in parts if p is not None)

    def and_(self) -> str | None:
        parts = [self.with_()]
        while self.peek() is not None and self.peek().upper() == "AND":  # type: ignore[union-attr]
            self.take()
            parts.append(self.with_())
        if any(p is None for p in parts):
            return None
        return " AND ".join(p for p in parts if p is not None)

    def with_(self) -> str | None:
        a = self.atom()
        if a is None:
            return None
        nxt = self.peek()
        if nxt is not None and nxt.upper() == "WITH":
            self.take()
            if self.peek() is None:
                return None
            exc = _LOWER_EXC.get(self.take().lower())
            if exc is None:
                return None
            return f"{a} WITH {exc}"
        return a

    def atom(self) -> str | None:
        t = self.peek()
        if t is None or t.upper() in ("AND", "OR", "WITH") or t == ")":
            return None
        self.take()
        if t == "(":
            inner = self.expr()
            if inner is None or self.peek() != ")":
                return None
            self.take()
            return f"({inner})"
        return _license_token(t)


def to_expression(raw: str) -> str | None:
    """``raw`` as a valid SPDX license expression, or None when it is not one."""
    s = raw.strip()
    if not s or len(s) > 1000:
        return None
    # DEP-5 uses "or"/"and" in lower case and "," for "and" in some files
    s = s.replace(",", " and ")
    tokens = _TOKEN_RE.findall(s)
    if not tokens or "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", s):
        return None
    p = _Parser(tokens)
    out = p.expr()
    if out is None or p.peek() is not None:
        return None
    return _strip_outer(out)


def _strip_outer(s: str) -> str:
    """``(A OR B)`` → ``A OR B``: redundant outer parentheses only."""
    while s.startswith("(") and s.endswith(")"):
        depth = 0
        for i, c in enumerate(s):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(s) - 1:
                return s  # the first "(" closes before the end: "(A) AND (B)"
        s = s[1:-1]
    return s


def license_ref(raw: str) -> str:
    """A stable ``LicenseRef-`` id for a licence string that is not an SPDX expression."""
    body = re.sub(r"[^A-Za-z0-9.-]+", "-", raw.strip()).strip("-.")
    return "LicenseRef-" + (body[:64] or "unknown")


def normalize(declared: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Each declared licence → an SPDX expression (deduplicated, in order), plus the
    ``LicenseRef-`` ids that had to be invented, mapped to the original text."""
    exprs: list[str] = []
    refs: dict[str, str] = {}
    for raw in declared:
        e = to_expression(raw)
        if e is None:
            e = license_ref(raw)
            refs.setdefault(e, raw.strip())
        if e not in exprs:
            exprs.append(e)
    return exprs, refs
