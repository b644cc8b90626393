"""Registry error categories and the translation of distribution-spec error bodies.

The two subclasses inherit from both ``RegistryError`` (keeps the registry's code and HTTP
status) and the matching category, so callers can catch ``NotFoundError``/``AuthError``.
"""

from __future__ import annotations

import json
from typing import Any

from xarch.errors import AuthError, Category, NotFoundError, RegistryError


class RegistryNotFoundError(RegistryError, NotFoundError):
    """404 from a registry: unknown manifest, blob, tag or repository."""

    category = Category.NOT_FOUND


class RegistryAuthError(RegistryError, AuthError):
    """401/403 after we presented the credentials we have."""

    category = Category.AUTH


def parse_error_body(body: bytes) -> list[tuple[str, str]]:
    """``(code, message)`` pairs of a ``{"errors":[...]}`` body; [] when it is not one."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(data, dict) or not isinstance(data.get("errors"), list):
        return []
    out: list[tuple[str, str]] = []
    for item in data["errors"]:
        if isinstance(item, dict):
            code = str(item.get("code") or "UNKNOWN")
            message = str(item.get("message") or code.lower().replace("_", " "))
            out.append((code, message))
    return out


def describe_error(
    registry: str, status: int, reason: str, body: bytes, context: str
) -> tuple[str, str | None]:
    """One-line message and the first error code, e.g. ``registry r: manifest unknown: <ctx> (MANIFEST_UNKNOWN)``."""
    errors = parse_error_body(body)
    if errors:
        text = "; ".join(
            f"{msg}: {context} ({code})" if i == 0 else f"{msg} ({code})"
            for i, (code, msg) in enumerate(errors)
        )
        return f"registry {registry}: {text}", errors[0][0]
    return f"registry {registry}: HTTP {status} {reason}: {context}".rstrip(": "), None
