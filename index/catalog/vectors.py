"""``CatalogVectors``: the stored vectors of one catalog table as a picklable source, read by id range.

An on-disk index build (index.ann.ondisk) hands this to every process that fills a shard: each opens the
catalog itself, reads only its id range a chunk at a time, and never sees the other vectors.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

import numpy as np

from index.catalog.database import Catalog
from index.catalog.schema import Image, Region

TABLES: dict[str, type] = {Image.__tablename__: Image, Region.__tablename__: Region}


@dataclasses.dataclass(frozen=True)
class CatalogVectors:
    """The vectors of ``table`` (``images`` or ``regions``) in the catalog at ``url``."""

    url: str
    table: str
    dim: int

    @contextlib.contextmanager
    def _catalog(self) -> Iterator[Catalog]:
        catalog = Catalog(self.url, mode="read")
        try:
            yield catalog
        finally:
            catalog.close()

    def ids(self) -> np.ndarray:
        with self._catalog() as catalog:
            return catalog.vector_ids(table=TABLES[self.table])

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        with self._catalog() as catalog:
            return catalog.vectors_for([int(i) for i in ids], self.dim, table=TABLES[self.table])

    def chunks(self, first: int | None = None, last: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self._catalog() as catalog:
            yield from catalog.iter_vectors(self.dim, table=TABLES[self.table], first=first, last=last)
