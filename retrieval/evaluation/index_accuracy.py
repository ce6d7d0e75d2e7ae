"""`retr eval index`: how close the served (approximate) index comes to exact search, and how fast.

Queries are catalog vectors sampled at random; each one's own id is left out of both neighbour lists,
so recall@k measures the k other images found, as a user's query would see them.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import RetrError
from index.directory import IndexStore
from index.ann.searcher import Searcher, exact_search
from index.ann.tune import recall_against
from index.ann.neighbours import drop_self

NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
EFS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class Setting:
    param: str | None  # "nprobe", "ef", or None for an index with no search parameter (flat)
    value: int | None
    recall: float  # recall@k against exact search
    qps: float
    tuned: bool  # the value the index uses by default (manifest)


@dataclasses.dataclass(frozen=True)
class IndexAccuracy:
    n: int  # vectors in the index
    sample: int
    k: int
    factory: str
    flat_qps: float
    settings: list[Setting]

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "sample": self.sample, "k": self.k, "factory": self.factory, "flat_qps": self.flat_qps,
                "settings": [dataclasses.asdict(s) for s in self.settings]}


def search_settings(factory: str) -> tuple[str | None, tuple[int, ...]]:
    """The search parameter of a faiss factory string and the values worth trying."""
    if "HNSW" in factory:
        return "ef", EFS
    match = re.search(r"IVF(\d+)", factory)
    if match:
        nlist = int(match.group(1))
        return "nprobe", tuple(v for v in NPROBES if v <= nlist) or (1,)
    return None, (None,)


def _timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def index_accuracy(index_dir: str | Path, *, db_url: str | None = None, sample: int = 1000, k: int = 10,
                   seed: int = 0) -> IndexAccuracy:
    """recall@k and queries/s of the served index for each search setting, against exact (flat) search."""
    if sample < 1 or k < 1:
        raise RetrError(f"--sample and -k must be at least 1, got {sample} and {k}")
    with IndexStore.open(index_dir, db_url) as store:
        if store.manifest is None:
            raise RetrError(f"the index at {index_dir} is empty: build it first")
        searcher: Searcher = store.searcher()  # reconciles first
        parts = list(store.catalog.iter_vectors(store.dim))
        factory, tuned = store.manifest.factory, dict(store.manifest.search)
    if not parts:
        raise RetrError(f"the index at {index_dir} holds no vectors")
    ids = np.concatenate([p[0] for p in parts])
    vectors = np.concatenate([p[1] for p in parts])
    if k >= len(ids):
        raise RetrError(f"k={k} needs more than {k} vectors in the index; it holds {len(ids)}")
    pick = np.sort(np.random.default_rng(seed).choice(len(ids), min(sample, len(ids)), replace=False))
    queries, own = vectors[pick], ids[pick]

    (_, pos), flat_seconds = _timed(lambda: exact_search(vectors, queries, k + 1))
    truth = drop_self(ids[pos], own)[:, :k]
    param, values = search_settings(factory)
    settings = []
    for value in values:
        kwargs = {param: value} if param else {}
        (_, found), seconds = _timed(lambda: searcher.search(queries, k + 1, **kwargs))
        found = drop_self(found, own)[:, :k]
        settings.append(Setting(param, value, recall_against(found, truth), len(queries) / max(seconds, 1e-9),
                                tuned=param is None or tuned.get(param) == value))
    return IndexAccuracy(len(ids), len(queries), k, factory, len(queries) / max(flat_seconds, 1e-9), settings)
