"""Per-image dedupe features stored in the catalog (image_features), computed once per file content.

The blob is opaque here (retrieval.dedupe.features writes and reads it); ``recipe`` names how it was made.
A stored blob is current when its ``sha256`` equals its image's and its recipe is the one asked for, so a
second dedupe run over an unchanged catalog decodes nothing, and one after new images computes only theirs.
The table is added to an older catalog the first time features are stored (an additive change: nothing
else is touched).
"""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import and_, delete, inspect, select

from index.catalog.database import Catalog
from index.catalog.hashes import Pending
from index.catalog.schema import STATUS_ERROR, Image, ImageFeature

_CHUNK = 500


def _has_table(catalog: Catalog) -> bool:
    return inspect(catalog.engine).has_table(ImageFeature.__tablename__)


def ensure_table(catalog: Catalog) -> None:
    """Create image_features in a catalog made before it existed (no other change)."""
    if not _has_table(catalog):
        ImageFeature.__table__.create(catalog.engine, checkfirst=True)


def _current(recipe: str):
    return and_(ImageFeature.image_id == Image.id, ImageFeature.recipe == recipe, ImageFeature.sha256 == Image.sha256)


def load_features(catalog: Catalog, recipe: str, ids: Sequence[int] | None = None) -> dict[int, bytes]:
    """Current blobs of ``recipe`` (image id -> blob), for ``ids`` or every image."""
    if not _has_table(catalog):
        return {}
    out: dict[int, bytes] = {}
    query = select(Image.id, ImageFeature.data).join(ImageFeature, _current(recipe))
    with catalog.session() as s:
        if ids is None:
            out.update((int(i), d) for i, d in s.execute(query))
        else:
            ids = [int(i) for i in ids]
            for start in range(0, len(ids), _CHUNK):
                out.update((int(i), d) for i, d in s.execute(query.where(Image.id.in_(ids[start:start + _CHUNK]))))
    return out


def load_feature_heads(catalog: Catalog, recipe: str, nbytes: int) -> dict[int, bytes]:
    """The first ``nbytes`` of every current blob of ``recipe`` (image id -> bytes): what a caller needs of all
    images when the rest is needed for a few only (the database cuts the blobs; the rest is never read)."""
    if not _has_table(catalog):
        return {}
    from sqlalchemy import func
    query = select(Image.id, func.substr(ImageFeature.data, 1, int(nbytes))).join(ImageFeature, _current(recipe))
    with catalog.session() as s:
        return {int(i): bytes(d) for i, d in s.execute(query)}


def pending_features(catalog: Catalog, recipe: str) -> list[Pending]:
    """Readable catalog images without current features of ``recipe``, in id order."""
    with catalog.session() as s:
        where = [Image.status != STATUS_ERROR, Image.sha256.is_not(None)]
        if _has_table(catalog):
            where.append(Image.id.not_in(select(ImageFeature.image_id).join(Image, _current(recipe))))
        rows = s.execute(select(Image.id, Image.path, Image.sha256).where(*where).order_by(Image.id)).all()
    return [Pending(int(r[0]), r[1], r[2]) for r in rows]


def store_features(catalog: Catalog, recipe: str, entries: Sequence[tuple[int, str, bytes]]) -> int:
    """Insert or replace blobs: (image id, sha256 of the content they describe, blob), one transaction."""
    if not entries:
        return 0
    ensure_table(catalog)
    with catalog.session() as s:
        ids = [int(e[0]) for e in entries]
        for start in range(0, len(ids), _CHUNK):
            s.execute(delete(ImageFeature).where(ImageFeature.image_id.in_(ids[start:start + _CHUNK]),
                                                 ImageFeature.recipe == recipe))
        s.add_all(ImageFeature(image_id=int(i), recipe=recipe, sha256=sha, data=bytes(blob)) for i, sha, blob in entries)
    return len(entries)


def feature_counts(catalog: Catalog) -> dict[str, int]:
    """Stored blobs per recipe, current or not."""
    if not _has_table(catalog):
        return {}
    from sqlalchemy import func
    with catalog.session() as s:
        return {r[0]: int(r[1]) for r in s.execute(select(ImageFeature.recipe, func.count())
                                                   .group_by(ImageFeature.recipe))}
