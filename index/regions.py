"""Region rows in the catalog and their faiss file, ``regions.faiss`` (ids = region ids).

Each image whose regions were computed also gets one *marker* row for the region source: no vector,
``label`` = ``done:<image sha256>``. It says the image was processed (even when no region was found)
and from which content, so a build resumes where it stopped and redoes only new or changed images.
The region state lives in the manifest's ``extra["regions"]``: source, settings, model, the digest
of the ids in regions.faiss, which must agree with the catalog, and the file's sha256; a file that
fails either check is rebuilt by a writer, or searched from the catalog's vectors in memory by a reader.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
from sqlalchemy import delete, func, select

from index import vectors as V
from index.catalog.database import Catalog, _chunks, decode_vectors, encode_vector
from index.errors import RetrError
from index.manifest import ids_digest, write_manifest
from index.catalog.schema import STATUS_OK, Image, Region
from index.directory import IndexStore, faiss_file_problem

REGIONS_FILE = "regions.faiss"
MARKER = "done:"
STATE_KEY = "regions"


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


@dataclasses.dataclass(frozen=True)
class RegionHit:
    """A parent image ranked by its best region."""

    rank: int
    id: int  # the image id
    path: str
    score: float
    region: RegionRow

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "path": self.path, "score": self.score,
                "region": self.region.to_json()}


_COLUMNS = (Region.id, Region.image_id, Region.x0, Region.y0, Region.x1, Region.y1, Region.label,
            Region.score, Region.mask_area, Region.source)


def _row(r) -> RegionRow:
    return RegionRow(int(r[0]), int(r[1]), (float(r[2]), float(r[3]), float(r[4]), float(r[5])), r[6], r[7], r[8],
                     r[9])


# -- catalog rows ---------------------------------------------------------------------------------------

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
        for chunk in _chunks(ids):
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


def region_ids(catalog: Catalog) -> np.ndarray:
    with catalog.session() as s:
        ids = s.scalars(select(Region.id).where(Region.vector.is_not(None)).order_by(Region.id)).all()
    return np.asarray(ids, dtype=np.int64)


def iter_region_vectors(catalog: Catalog, dim: int, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    return catalog.iter_vectors(dim, batch, table=Region)


def region_rows(catalog: Catalog, ids: Sequence[int] | None = None, *, image_id: int | None = None) -> dict[int, RegionRow]:
    """Region rows (markers excluded) by id: those of ``ids``, of one image, or all."""
    query = select(*_COLUMNS).where(Region.vector.is_not(None))
    with catalog.session() as s:
        if ids is None:
            if image_id is not None:
                query = query.where(Region.image_id == int(image_id))
            return {int(r[0]): _row(r) for r in s.execute(query.order_by(Region.id))}
        out: dict[int, RegionRow] = {}
        for chunk in _chunks(sorted({int(i) for i in ids if int(i) >= 0})):
            out.update({int(r[0]): _row(r) for r in s.execute(query.where(Region.id.in_(chunk)))})
        return out


def region_counts(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as s:
        regions = s.scalar(select(func.count()).select_from(Region).where(Region.vector.is_not(None)))
        images = s.scalar(select(func.count(func.distinct(Region.image_id))).where(Region.vector.is_(None)))
    return {"regions": int(regions or 0), "images": int(images or 0)}


# -- regions.faiss ----------------------------------------------------------------------------------------

class RegionIndex:
    """The region side of an index directory: state in the manifest, vectors in regions.faiss."""

    def __init__(self, store: IndexStore):
        self.store = store
        self._searcher: V.Searcher | None = None

    @property
    def path(self):
        return self.store.dir / REGIONS_FILE

    @property
    def state(self) -> dict[str, Any] | None:
        m = self.store.manifest
        return dict(m.extra[STATE_KEY]) if m is not None and STATE_KEY in m.extra else None

    def write_state(self, state: dict[str, Any]) -> None:
        m = self.store.manifest
        if m is None:
            raise RetrError(f"the index at {self.store.dir} has no manifest: build it first")
        extra = dict(m.extra)
        extra[STATE_KEY] = state
        with self.store.write_access():
            write_manifest(self.store.dir, m.replace(extra=extra))
        self.store.manifest = m.replace(extra=extra)

    def file_problem(self) -> str | None:
        """Why regions.faiss is not the file the state records (missing, or its content changed); else None."""
        state = self.state or {}
        return faiss_file_problem(self.path, state.get("checksum"))

    def problem(self) -> str | None:
        """Why regions.faiss cannot be served as it is (missing, damaged, out of step); None when it can."""
        state = self.state
        if state is None:
            return f"the index at {self.store.dir} has no regions"
        problem = self.file_problem()
        if problem is None and state.get("ids_digest") != ids_digest(region_ids(self.store.catalog)):
            problem = f"{self.path} is out of step with the catalog"
        return problem

    def consistent(self) -> bool:
        return self.problem() is None

    def rebuild(self, index_type: str | None = None) -> dict[str, Any]:
        """Rebuild regions.faiss from the catalog's region vectors; returns the updated state."""
        state = self.state
        if state is None:
            raise RetrError(f"the index at {self.store.dir} has no regions: build with --regions NAME")
        dim = self.store.dim
        with self.store.write_access():
            ids, vecs = V.stack_parts(list(iter_region_vectors(self.store.catalog, dim)), dim)
            index_type = index_type or state.get("index_type") or "auto"
            index, factory, search = V.build_tuned(vecs, ids, index_type)
            checksum = V.save(index, self.path)
            state.update(index_type=index_type, factory=factory, vectors=int(index.ntotal),
                         ids_digest=ids_digest(ids), search=search, checksum=checksum,
                         images=region_counts(self.store.catalog)["images"])
            self.write_state(state)
        self._searcher = None
        return state

    def reconcile(self) -> bool:
        """Rewrite regions.faiss when it fails its checks (see IndexStore.reconcile); True when rewritten."""
        if self.state is None or (problem := self.problem()) is None:
            return False
        try:
            self.rebuild()
        except RetrError as exc:
            if self.store.writable:
                raise
            self.store.note(f"{problem}; it was not rewritten ({exc}); the next `retr index build` repairs it")
            return False
        return True

    def searcher(self) -> V.Searcher:
        """regions.faiss verified, else rebuilt (a writable store) or rebuilt in memory (a read store)."""
        if self._searcher is None:
            problem = self.problem()
            if problem is not None and self.store.writable:
                count = self.rebuild()["vectors"]
                self.store.note(f"{problem}: rebuilt it from the catalog's {count} region vectors")
                problem = None
            if problem is None:
                index = V.load(self.path)
            else:
                ids, vecs = V.stack_parts(list(iter_region_vectors(self.store.catalog, self.store.dim)),
                                          self.store.dim)
                self.store.note(f"{problem}; searching the catalog's {len(ids)} region vectors in memory (the "
                                "file is left as it is: `retr index build` rewrites it)")
                index = V.build(vecs, ids, "Flat")
            self._searcher = V.Searcher(index)
        return self._searcher

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[RegionHit]]:
        """Parent images of the best regions for each query vector, ranked by their best region."""
        if self.state is None:
            raise RetrError(f"the index at {self.store.dir} has no regions: build it with "
                            "`retr index build PATH --regions NAME`")
        searcher = self.searcher()
        total = searcher.ntotal
        if total == 0:
            return [[] for _ in range(len(queries))]
        params = dict(self.state.get("search") or {})
        paths = self.store.paths()
        out = []
        for query in np.asarray(queries, dtype=np.float32):
            depth = min(total, max(8 * k, 64))
            while True:  # widen until k distinct parents are found or every region was seen
                scores, ids = searcher.search(query[None], depth, **params)
                best = best_per_parent(scores[0], ids[0], self._parents(ids[0]))
                if len(best) >= k or depth >= total:
                    break
                depth = min(total, depth * 4)
            best = best[:k]
            rows = region_rows(self.store.catalog, [rid for rid, _ in best])
            out.append([RegionHit(rank=r + 1, id=rows[rid].image_id, path=paths.get(rows[rid].image_id, "?"),
                                  score=score, region=rows[rid]) for r, (rid, score) in enumerate(best)])
        return out

    def _parents(self, ids: np.ndarray) -> dict[int, int]:
        wanted = sorted({int(i) for i in ids if i >= 0})
        out: dict[int, int] = {}
        with self.store.catalog.session() as s:
            for chunk in _chunks(wanted):
                out.update(s.execute(select(Region.id, Region.image_id).where(Region.id.in_(chunk))).all())
        return out


def best_per_parent(scores: np.ndarray, ids: np.ndarray, parent: dict[int, int]) -> list[tuple[int, float]]:
    """(region id, score) of the best region of each parent image, best first (input sorted by score)."""
    seen: set[int] = set()
    out = []
    for score, rid in zip(scores, ids):
        rid = int(rid)
        if rid < 0 or rid not in parent or parent[rid] in seen:
            continue
        seen.add(parent[rid])
        out.append((rid, float(score)))
    return out
