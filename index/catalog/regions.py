"""Region rows in the catalog: a box of a parent image with its vector, and one marker row per image.

Each image whose regions were computed also gets one *marker* row for the region source: no vector,
``label`` = ``done:<image sha256>``. It says the image was processed (even when no region was found)
and from which content, so a build resumes where it stopped and redoes only new or changed images.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
from sqlalchemy import delete, func, select

from index.catalog.database import Catalog, chunks, encode_vector
from index.catalog.schema import STATUS_OK, Image, Region

MARKER = "done:"


@dataclasses.dataclass(frozen=True)
class RegionRow:
    id: int
    image_id: int
    box: tuple[float, float, float, float]
    label: str | None
    score: float | None
    mask_area: float | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "box": [round(v, 2) for v in self.box], "label": self.label, "score": self.score}


@dataclasses.dataclass(frozen=True)
class RegionRecord:
    """A region to store: its box in image pixels, label, score, mask area and vector."""

    box: tuple[float, float, float, float]
    vector: np.ndarray
    label: str | None = None
    score: float | None = None
    mask_area: float | None = None


@dataclasses.dataclass(frozen=True)
class ImageDone:
    """The regions of one image, computed from content ``sha256`` (an empty list is a valid answer)."""

    image_id: int
    sha256: str | None
    size: tuple[int, int]
    regions: Sequence[RegionRecord]


@dataclasses.dataclass(frozen=True)
class PendingImage:
    id: int
    path: str
    sha256: str | None


_COLUMNS = (Region.id, Region.image_id, Region.x0, Region.y0, Region.x1, Region.y1, Region.label,
            Region.score, Region.mask_area, Region.source)


def _row(r) -> RegionRow:
    return RegionRow(int(r[0]), int(r[1]), (float(r[2]), float(r[3]), float(r[4]), float(r[5])), r[6], r[7], r[8],
                     r[9])


def pending_images(catalog: Catalog, source_key: str) -> list[PendingImage]:
    """Embedded images whose regions for ``source_key`` are missing or were made from other content."""
    with catalog.session() as s:
        images = s.execute(select(Image.id, Image.path, Image.sha256)
                           .where(Image.status == STATUS_OK, Image.vector.is_not(None))
                           .order_by(Image.id)).all()
        done = dict(s.execute(select(Region.image_id, Region.label)
                              .where(Region.source == source_key, Region.vector.is_(None))).all())
    return [PendingImage(int(i), p, sha) for i, p, sha in images if done.get(int(i)) != MARKER + str(sha)]


def replace_regions(catalog: Catalog, source_key: str, results: Sequence[ImageDone]) -> list[list[int]]:
    """Store the regions of these images (replacing any they had) in one transaction; their new ids."""
    out: list[list[int]] = []
    with catalog.session() as s:
        ids = [r.image_id for r in results]
        for chunk in chunks(ids):
            s.execute(delete(Region).where(Region.image_id.in_(chunk)))
        for res in results:
            rows = [Region(image_id=res.image_id, source=source_key, x0=float(rec.box[0]), y0=float(rec.box[1]),
                           x1=float(rec.box[2]), y1=float(rec.box[3]), label=rec.label,
                           score=None if rec.score is None else float(rec.score),
                           mask_area=None if rec.mask_area is None else float(rec.mask_area),
                           vector=encode_vector(rec.vector)) for rec in res.regions]
            marker = Region(image_id=res.image_id, source=source_key, x0=0.0, y0=0.0, x1=float(res.size[0]),
                            y1=float(res.size[1]), label=MARKER + str(res.sha256), vector=None)
            s.add_all(rows + [marker])
            s.flush()
            out.append([int(r.id) for r in rows])
    return out


def clear_regions(catalog: Catalog) -> int:
    """Delete every region row (the source, its settings or the model changed)."""
    with catalog.session() as s:
        n = s.scalar(select(func.count()).select_from(Region))
        s.execute(delete(Region))
    return int(n or 0)


def region_rows(catalog: Catalog, ids: Sequence[int] | None = None, *, image_id: int | None = None) -> dict[int, RegionRow]:
    """Region rows (markers excluded) by id: those of ``ids``, of one image, or all."""
    query = select(*_COLUMNS).where(Region.vector.is_not(None))
    with catalog.session() as s:
        if ids is None:
            if image_id is not None:
                query = query.where(Region.image_id == int(image_id))
            return {int(r[0]): _row(r) for r in s.execute(query.order_by(Region.id))}
        out: dict[int, RegionRow] = {}
        for chunk in chunks(sorted({int(i) for i in ids if int(i) >= 0})):
            out.update({int(r[0]): _row(r) for r in s.execute(query.where(Region.id.in_(chunk)))})
        return out


def region_counts(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as s:
        regions = s.scalar(select(func.count()).select_from(Region).where(Region.vector.is_not(None)))
        images = s.scalar(select(func.count(func.distinct(Region.image_id))).where(Region.vector.is_(None)))
    return {"regions": int(regions or 0), "images": int(images or 0)}


def parent_ids(catalog: Catalog, ids: Sequence[int]) -> dict[int, int]:
    """The parent image id of each region id (unknown ids are left out)."""
    out: dict[int, int] = {}
    with catalog.session() as s:
        for chunk in chunks(sorted({int(i) for i in ids if int(i) >= 0})):
            out.update(s.execute(select(Region.id, Region.image_id).where(Region.id.in_(chunk))).all())
    return out
