"""Which faiss index to build for a collection, and building it: ``choose_factory``, ``build``, ``build_tuned``.

Indexes hold L2-normalised float32 vectors under catalog ids and rank by inner product (cosine).
"""
from __future__ import annotations

import math
import os

import faiss
import numpy as np

from index.ann.searcher import faiss_message
from index.ann.tune import tune_report
from index.errors import RetrError

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw", "pq")
FLAT_MAX = 50_000  # auto: exact search below this many vectors
HNSW_MAX = 200_000  # auto: HNSW up to here (fast to build, high recall), IVF beyond
APPROX_MIN_SPEEDUP = 2.0  # auto: an approximate index must beat exact search by this much to be served


def _nlist(n: int) -> int:
    """IVF lists: about 4 sqrt(n), a power of two, with at least ~39 training points per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(0, round(math.log2(target)))
    return int(max(1, min(nlist, n // 39 or 1)))


def _pq_m(dim: int) -> int:
    """PQ sub-quantizers: 8-bit codes of about 4 dimensions each (dim must be divisible)."""
    for m in (dim // 4, 64, 48, 32, 16, 8, 4, 2, 1):
        if m >= 1 and dim % m == 0 and m <= 64:
            return m
    return 1


def available_memory() -> int:
    """Free physical memory in bytes (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def choose_factory(n: int, dim: int, index_type: str = "auto", *, memory: int | None = None) -> str:
    """The faiss factory string for ``index_type`` (a name of INDEX_TYPES or any factory string)."""
    kind = index_type.lower()
    if kind == "flat":
        return "Flat"
    if kind == "ivf":
        return f"IVF{_nlist(n)},Flat"
    if kind == "hnsw":
        return "HNSW32"
    if kind == "pq":
        return f"IVF{_nlist(n)},PQ{_pq_m(dim)}"
    if kind != "auto":
        return index_type  # a factory string; build() validates it
    raw = n * dim * 4
    memory = available_memory() if memory is None else memory
    if raw > memory // 2:  # raw vectors would not fit comfortably: compress
        return f"IVF{_nlist(n)},PQ{_pq_m(dim)}"
    if n <= FLAT_MAX:
        return "Flat"
    if n <= HNSW_MAX:
        return "HNSW32"
    return f"IVF{_nlist(n)},Flat"


def check_index_type(index_type: str, dim: int | None = None) -> None:
    """Refuse an ``--index-type`` faiss cannot build for ``dim``, before any work is done.

    Without ``dim`` (a new index, before its model is loaded) only a string faiss parses for no common
    dimension is refused; the build checks again once the dimension is known.
    """
    if index_type.lower() in INDEX_TYPES:
        return
    error = None
    for d in (dim,) if dim is not None else _COMMON_DIMS:
        try:
            faiss.index_factory(d, index_type, faiss.METRIC_INNER_PRODUCT)
            return
        except RuntimeError as exc:
            error = exc
    where = f" for {dim}-d vectors" if dim is not None else ""
    raise RetrError(f"invalid --index-type {index_type!r}{where}: {faiss_message(error)}; "
                    f"use {', '.join(INDEX_TYPES)} or a faiss factory string such as IVF1024,SQ8") from None


_COMMON_DIMS = (64, 128, 256, 384, 512, 768, 1024, 1280, 2048)  # embedding sizes of common backbones and heads


def _needs_id_map(index: faiss.Index) -> bool:
    return faiss.try_extract_index_ivf(index) is None


def build(vectors: np.ndarray, ids: np.ndarray, factory: str) -> faiss.Index:
    """A trained faiss index (inner product) holding ``vectors`` under ``ids``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"vectors {vectors.shape} and ids {ids.shape} do not match")
    dim = vectors.shape[1]
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RetrError(f"invalid faiss index type {factory!r}: {faiss_message(exc)}") from exc
    if not index.is_trained:
        if len(vectors) == 0:
            raise RetrError(f"index type {factory!r} needs training vectors; the collection is empty")
        ivf = faiss.try_extract_index_ivf(index)
        min_train = ivf.nlist if ivf is not None else 1
        if len(vectors) < min_train:
            raise RetrError(f"index type {factory!r} needs at least {min_train} vectors to train, "
                            f"the collection has {len(vectors)}; use --index-type auto or flat")
        rng = np.random.default_rng(0)
        size = max(64 * min_train, 10_000)  # faiss wants >= 39 points per centroid; more buys little
        sample = vectors if len(vectors) <= size else vectors[np.sort(rng.choice(len(vectors), size, replace=False))]
        try:
            index.train(sample)
        except RuntimeError as exc:
            raise RetrError(f"cannot train index type {factory!r} on {len(vectors)} vectors: "
                            f"{str(exc).splitlines()[0][:160]}; use --index-type auto or flat") from exc
    if _needs_id_map(index):
        index = faiss.IndexIDMap2(index)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    return index


def build_tuned(vectors: np.ndarray, ids: np.ndarray, index_type: str = "auto"
                ) -> tuple[faiss.Index, str, dict[str, int]]:
    """``build`` with the factory chosen for ``index_type`` and search parameters tuned: (index, factory, params).

    ``auto`` never serves an approximate index that is worse than exact search: when no nprobe/efSearch
    reaches the target recall, or the tuned index answers the sample less than ``APPROX_MIN_SPEEDUP`` times
    faster than a flat scan (vectors with little structure, where most lists must be probed), it falls
    back to ``Flat`` if the raw vectors fit in memory.
    """
    if not len(ids):
        return build(vectors, ids, "Flat"), "Flat", {}
    factory = choose_factory(len(ids), vectors.shape[1], index_type)
    index = build(vectors, ids, factory)
    report = tune_report(index, vectors, ids)
    if (index_type == "auto" and report.params and ",PQ" not in factory
            and (not report.met or report.seconds * APPROX_MIN_SPEEDUP > report.exact_seconds)):
        return build(vectors, ids, "Flat"), "Flat", {}
    return index, factory, report.params
