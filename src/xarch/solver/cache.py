"""Persistent cache index: cache key -> the layer a vertex produced.

One sqlite file in the store. A vertex's result is the *delta* it adds on top of its first
input (one layer, possibly empty, or none for a metadata-only step); the full chain is rebuilt from the
inputs' own cache entries. sqlite gives us atomic updates across processes for free.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest


@dataclass(frozen=True)
class CacheRecord:
    key: str
    layer: Descriptor | None  # None: a metadata-only step (no layer)
    diff_id: Digest | None
    created: float


class CacheIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, media_type TEXT,"
                " digest TEXT, size INTEGER, diff_id TEXT, created REAL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> CacheRecord | None:
        row = self._conn().execute(
            "SELECT media_type, digest, size, diff_id, created FROM cache WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        media_type, digest, size, diff_id, created = row
        layer = Descriptor(media_type, Digest(digest), int(size)) if digest else None
        return CacheRecord(key, layer, Digest(diff_id) if diff_id else None, float(created))

    def put(self, key: str, layer: Descriptor | None, diff_id: Digest | None, *,
            created: float | None = None) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                layer.media_type if layer else None,
                str(layer.digest) if layer else None,
                layer.size if layer else 0,
                str(diff_id) if diff_id else None,
                time.time() if created is None else created,
            ),
        )

    def layer_digests(self) -> set[str]:
        """Blobs the cache references: GC keeps them (prune --all drops the cache first)."""
        rows = self._conn().execute("SELECT digest FROM cache WHERE digest IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    def clear(self) -> int:
        cur = self._conn().execute("DELETE FROM cache")
        return cur.rowcount

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
