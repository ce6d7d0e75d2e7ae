"""The region index: regions.faiss (ids = region ids), searched for parent images ranked by their best region.

Its state lives in the manifest's ``extra["regions"]``: the region source, its settings and model, and
the record of regions.faiss (see index.synced_file), which is checked, rebuilt or searched in memory
exactly as vectors.faiss is.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from index.catalog.regions import RegionRow, parent_ids, region_counts, region_rows
from index.catalog.schema import Region
from index.directory import IndexStore
from index.errors import RetrError
from index.manifest import write_manifest
from index.synced_file import FileRecord, SyncedFile

REGIONS_FILE = "regions.faiss"
STATE_KEY = "regions"


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


class RegionIndex(SyncedFile[IndexStore]):
    """regions.faiss of an index directory, with the region state recorded in its manifest."""

    name = REGIONS_FILE
    table = Region
    noun = "region vectors"
    absent = "has no regions"

    @property
    def state(self) -> dict[str, Any] | None:
        m = self.store.manifest
        return dict(m.extra[STATE_KEY]) if m is not None and STATE_KEY in m.extra else None

    def write_state(self, state: dict[str, Any]) -> None:
        m = self.store.manifest
        if m is None:
            raise RetrError(f"the index at {self.store.dir} has no manifest: build it first")
        manifest = m.replace(extra={**m.extra, STATE_KEY: state})
        with self.store.write_access():
            write_manifest(self.store.dir, manifest)
        self.store.manifest = manifest

    def recorded(self) -> FileRecord | None:
        state = self.state
        if state is None:
            return None
        return FileRecord(index_type=state.get("index_type") or "auto", factory=state.get("factory", ""),
                          vectors=int(state.get("vectors", 0)), ids_digest=state.get("ids_digest"),
                          search=dict(state.get("search") or {}), checksum=state.get("checksum"),
                          ivfdata=state.get("ivfdata"))

    def record(self, record: FileRecord) -> None:
        self.write_state({**(self.state or {}), **dataclasses.asdict(record),
                          "images": region_counts(self.store.catalog)["images"]})

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
                best = best_per_parent(scores[0], ids[0], parent_ids(self.store.catalog, ids[0]))
                if len(best) >= k or depth >= total:
                    break
                depth = min(total, depth * 4)
            best = best[:k]
            rows = region_rows(self.store.catalog, [rid for rid, _ in best])
            out.append([RegionHit(rank=r + 1, id=rows[rid].image_id, path=paths.get(rows[rid].image_id, "?"),
                                  score=score, region=rows[rid]) for r, (rid, score) in enumerate(best)])
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
