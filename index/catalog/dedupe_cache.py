"""Blobs a dedupe run reuses next time (dedupe_cache): pair verdicts and whole results, by key.

The values are JSON, compressed; their meaning belongs to retrieval.dedupe (keys name the recipe of the
features and the options, so a change of either misses). The table is added to an older catalog the first
time something is stored (an additive change).
"""
from __future__ import annotations

import json
import zlib
from typing import Any

from sqlalchemy import delete, inspect, select

from index.catalog.database import Catalog
from index.catalog.schema import DedupeCache


def load_cached(catalog: Catalog, key: str) -> Any | None:
    """The value stored under ``key``, or None (also for a damaged blob: it is computed again)."""
    if not inspect(catalog.engine).has_table(DedupeCache.__tablename__):
        return None
    with catalog.session() as s:
        blob = s.execute(select(DedupeCache.data).where(DedupeCache.key == key)).scalar()
    if blob is None:
        return None
    try:
        return json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError):
        return None


def store_cached(catalog: Catalog, key: str, value: Any) -> None:
    """Store (or replace) ``value`` under ``key``, in one transaction."""
    DedupeCache.__table__.create(catalog.engine, checkfirst=True)
    blob = zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 3)
    with catalog.session() as s:
        s.execute(delete(DedupeCache).where(DedupeCache.key == key))
        s.add(DedupeCache(key=key, data=blob))


def forget_cached(catalog: Catalog, prefix: str) -> None:
    """Drop every value whose key starts with ``prefix`` (older results of one kind)."""
    if inspect(catalog.engine).has_table(DedupeCache.__tablename__):
        with catalog.session() as s:
            s.execute(delete(DedupeCache).where(DedupeCache.key.startswith(prefix)))
