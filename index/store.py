"""An index directory: manifest, catalog and faiss file, kept consistent with each other.

The catalog is the source of truth. Opening a store checks that the faiss file holds exactly the
catalog's vectors (by the ids digest in the manifest); when it does not (an interrupted build, a
catalog edited by dedupe, a deleted file), the faiss file is rebuilt from the stored vectors.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index import vectors as V
from index.catalog import Catalog
from index.errors import RetrError
from index.manifest import MANIFEST_FILE, Manifest, ids_digest, read_manifest, write_manifest

VECTORS_FILE = "vectors.faiss"


@dataclasses.dataclass
class Hit:
    rank: int
    id: int
    path: str
    score: float


@dataclasses.dataclass(frozen=True)
class SearchResults:
    """k-NN results for a batch of queries as arrays; ``results[i]`` gives query i's hits, best first.

    Hits are made only when read, so a large batch costs little more than faiss itself.
    """

    scores: np.ndarray  # float32 [n, k]
    ids: np.ndarray  # int64 [n, k], -1 where fewer than k exist
    paths: np.ndarray  # object [n, k]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> list[Hit]:
        ids, scores, paths = self.ids[i].tolist(), self.scores[i].tolist(), self.paths[i].tolist()
        return [Hit(rank=r + 1, id=j, path=p, score=s)
                for r, (j, s, p) in enumerate(zip(ids, scores, paths)) if j >= 0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class IndexStore:
    def __init__(self, index_dir: Path, catalog: Catalog, manifest: Manifest | None):
        self.dir = index_dir
        self.catalog = catalog
        self.manifest = manifest
        self._searcher: V.Searcher | None = None
        self._paths: np.ndarray | None = None

    @classmethod
    def open(cls, index_dir: str | Path, db_url: str | None = None, *, create: bool = False) -> "IndexStore":
        """Open an index directory (``create`` makes a new one). Never modifies what is stored."""
        index_dir = Path(index_dir)
        if not create and not (index_dir / MANIFEST_FILE).exists():
            if not index_dir.exists():
                raise RetrError(f"no index at {index_dir}: build one with `retr index build PATH --index {index_dir}`")
            if db_url is None and not (index_dir / "catalog.sqlite").exists():
                raise RetrError(f"{index_dir} is not a retr index directory (no manifest.json)")
        if index_dir.exists() and not index_dir.is_dir():
            raise RetrError(f"{index_dir} is not a folder")
        manifest = read_manifest(index_dir)
        return cls(index_dir, Catalog.for_index(index_dir, db_url), manifest)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "IndexStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model -----------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self.manifest is None:
            raise RetrError(f"the index at {self.dir} has no vectors yet")
        return self.manifest.dim

    def check_model(self, identity: dict[str, Any]) -> None:
        """Refuse a model that differs from the one the index was built with."""
        if self.manifest is None:
            return
        have = self.manifest.model
        if identity.get("dim") != have.get("dim") or identity.get("spec") != have.get("spec") \
                or identity.get("weights") != have.get("weights"):
            raise RetrError(
                f"model mismatch: the index at {self.dir} was built with {have.get('spec')} "
                f"(dim {have.get('dim')}, weights {str(have.get('weights'))[:19]}), not {identity.get('spec')}"
                + (f" (dim {identity.get('dim')}, weights {str(identity.get('weights'))[:19]})"
                   if identity.get("dim") else "") + "; use another --index for another model")

    # -- the faiss file ----------------------------------------------------------------------------------

    def consistent(self) -> bool:
        """Whether vectors.faiss holds exactly the catalog's vectors."""
        if self.manifest is None:
            return False
        if not (self.dir / VECTORS_FILE).exists():
            return False
        return ids_digest(self.catalog.vector_ids()) == self.manifest.ids_digest

    def rebuild(self, *, index_type: str | None = None, model: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> Manifest:
        """Rebuild vectors.faiss from the catalog's stored vectors and write the manifest (atomically)."""
        model = model or (self.manifest.model if self.manifest else None)
        if model is None:
            raise RetrError("cannot rebuild an index that has no model recorded")
        dim = int(model["dim"])
        ids, vecs = V.stack_parts(list(self.catalog.iter_vectors(dim)), dim)
        index_type = index_type or (self.manifest.index_type if self.manifest else "auto")
        index, factory, search = V.build_tuned(vecs, ids, index_type)
        V.save(index, self.dir / VECTORS_FILE)
        keep_extra = dict(self.manifest.extra) if self.manifest else {}
        keep_extra.update(extra or {})
        manifest = Manifest(model=dict(model), dim=dim, factory=factory, index_type=index_type,
                            vectors=int(index.ntotal), ids_digest=ids_digest(ids), search=search,
                            extra=keep_extra)
        write_manifest(self.dir, manifest)
        self.manifest = manifest
        self._searcher = None
        self._paths = None
        return manifest

    def reconcile(self) -> bool:
        """Repair vectors.faiss when it disagrees with the catalog; True when a repair was made."""
        if self.manifest is None or self.consistent():
            return False
        self.rebuild()
        return True

    def searcher(self) -> V.Searcher:
        if self._searcher is None:
            self.reconcile()
            self._searcher = V.Searcher(V.load(self.dir / VECTORS_FILE))
        return self._searcher

    def search(self, queries: np.ndarray, k: int = 10, *, nprobe: int | None = None,
               ef: int | None = None) -> SearchResults:
        """The k nearest catalog images of each query vector, best first."""
        if self.manifest is None:
            raise RetrError(f"the index at {self.dir} is empty: build it first")
        params = dict(self.manifest.search)
        if nprobe is not None:
            params["nprobe"] = nprobe
        if ef is not None:
            params["ef"] = ef
        scores, ids = self.searcher().search(queries, k, **params)
        return SearchResults(scores, ids, self._path_table()[ids])

    def _path_table(self) -> np.ndarray:
        """Paths indexed by catalog id, loaded once per store: the query path's id -> path lookup.

        Catalog ids are dense (autoincrement), so a direct table is small; its last slot stays None,
        which is where faiss's -1 ("no neighbour") lands.
        """
        if self._paths is None:
            mapping = self.catalog.paths_by_id(self.catalog.vector_ids())
            table = np.full(max(mapping, default=-1) + 2, None, dtype=object)
            for image_id, path in mapping.items():
                table[image_id] = path
            self._paths = table
        return self._paths

    def paths(self) -> dict[int, str]:
        """id -> path of every image with a vector."""
        table = self._path_table()
        return {i: p for i, p in enumerate(table.tolist()) if p is not None}

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    def vectors_for(self, ids: Sequence[int]) -> np.ndarray:
        return self.catalog.vectors_for(ids, self.dim)
