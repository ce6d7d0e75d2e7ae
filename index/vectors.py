"""faiss indexes over L2-normalised float32 vectors (inner product = cosine), ids = catalog ids.

Every k-NN search in retr goes through here. When faiss sees GPUs, search runs on them (sharded across
all of them) for the index types GPU faiss serves; HNSW, and k above GPU faiss's limit, stay on CPU.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from index.atomic import atomic_path, file_sha256
from index.errors import RetrError, write_hint

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw", "pq")
FLAT_MAX = 50_000  # auto: exact search below this many vectors
HNSW_MAX = 200_000  # auto: HNSW up to here (fast to build, high recall), IVF beyond
GPU_MAX_K = 2048  # GPU faiss cannot return more neighbours than this
TARGET_RECALL = 0.96  # tuned search parameters aim here, a margin above the 0.95 we promise
BLAS_MIN_QUERIES = 4  # flat scans use BLAS from this many queries on (see _blas_from)
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


def _faiss_message(exc: RuntimeError) -> str:
    """The readable end of a faiss C++ error ("Error in <signature> at <file>:<line>: <message>")."""
    text = str(exc).splitlines()[0]
    return text.split(": ", 1)[1][:200] if text.startswith("Error in ") and ": " in text else text[:200]


def check_index_type(index_type: str, dim: int) -> None:
    """Refuse an ``--index-type`` faiss cannot build for ``dim``, before any work is done."""
    if index_type.lower() in INDEX_TYPES:
        return
    try:
        faiss.index_factory(dim, index_type, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RetrError(f"invalid --index-type {index_type!r} for {dim}-d vectors: {_faiss_message(exc)}; "
                        f"use {', '.join(INDEX_TYPES)} or a faiss factory string such as IVF1024,SQ8") from None


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
        raise RetrError(f"invalid faiss index type {factory!r}: {_faiss_message(exc)}") from exc
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


def stack_parts(parts: list[tuple[np.ndarray, np.ndarray]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (ids, vectors) batches as a catalog streams them."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def save(index: faiss.Index, path: str | Path) -> str:
    """Write ``index`` atomically; returns the sha256 of the file written."""
    with atomic_path(path) as tmp:
        try:
            faiss.write_index(faiss.index_gpu_to_cpu(index) if _on_gpu(index) else index, str(tmp))
        except RuntimeError as exc:  # e.g. "write error ... (No space left on device)"
            message = _faiss_message(exc)
            raise RetrError(f"cannot write {path}: {message}{write_hint(message)}") from exc
        return file_sha256(tmp)


def load(path: str | Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise RetrError(f"cannot read faiss index {path}: {str(exc).splitlines()[0][:160]}") from exc


def ids_of(index: faiss.Index) -> np.ndarray:
    """Every id stored in ``index`` (sorted)."""
    if isinstance(index, faiss.IndexIDMap) or hasattr(index, "id_map"):
        return np.sort(faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64))
    ivf = faiss.extract_index_ivf(index)
    invlists = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def set_search_params(index: faiss.Index, *, nprobe: int | None = None, ef: int | None = None) -> None:
    """nprobe for IVF indexes, efSearch for HNSW; ignored where it does not apply."""
    if nprobe is not None:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = int(nprobe)
    if ef is not None:
        hnsw = _hnsw_of(index)
        if hnsw is not None:
            hnsw.hnsw.efSearch = int(ef)


def _hnsw_of(index: faiss.Index):
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def _on_gpu(index: faiss.Index) -> bool:
    return "Gpu" in type(index).__name__ or "IndexShards" in type(index).__name__


def gpu_can_serve(index: faiss.Index, k: int) -> bool:
    """Whether GPU faiss can serve ``index`` for ``k`` neighbours (flat and IVF; never HNSW, k <= 2048)."""
    return k <= GPU_MAX_K and _hnsw_of(index) is None


class Searcher:
    """An index prepared for search: on all GPUs (sharded) when faiss sees them, else CPU."""

    def __init__(self, index: faiss.Index, *, use_gpu: bool | None = None):
        self.cpu = index
        self.gpu = None
        ngpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if (use_gpu if use_gpu is not None else ngpu > 0) and ngpu > 0 and gpu_can_serve(index, 1):
            options = faiss.GpuMultipleClonerOptions()
            options.shard = True
            try:
                self.gpu = faiss.index_cpu_to_all_gpus(index, co=options)
            except RuntimeError:  # an index type GPU faiss does not implement: stay on CPU
                self.gpu = None

    @property
    def ntotal(self) -> int:
        return int(self.cpu.ntotal)

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None,
               ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.cpu.d:
            raise RetrError(f"query vectors have shape {queries.shape}; the index holds dimension {self.cpu.d}")
        k = int(k)
        if k < 1:
            raise RetrError(f"k must be at least 1, got {k}")
        target = self.gpu if (self.gpu is not None and k <= GPU_MAX_K) else self.cpu
        set_search_params(target if target is self.cpu else self.cpu, nprobe=nprobe, ef=ef)
        if target is not self.cpu and nprobe is not None:
            faiss.GpuParameterSpace().set_index_parameter(target, "nprobe", int(nprobe))
        if target is not self.cpu:
            return target.search(queries, k)
        with _blas_from(BLAS_MIN_QUERIES * self.cpu.d):
            return target.search(queries, k)


@contextmanager
def _blas_from(threshold: int) -> Iterator[None]:
    """Let faiss's flat scans (flat indexes, IVF coarse quantizers) use BLAS from a few queries on.

    faiss 1.15 switches from its per-query SIMD kernel to BLAS only when queries x dim reaches 128,000
    (1,000 queries of 128-d); below that, batches run up to 9x slower here (256 x 128-d queries over 1M
    vectors, benchmarks/flat_batches.py). The setting is process-wide, so it is restored afterwards.
    """
    old = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = min(old, threshold)
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = old


def search(index: faiss.Index, queries: np.ndarray, k: int, *, nprobe: int | None = None,
           ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest ids and scores (inner product); -1 ids pad when fewer than k exist."""
    return Searcher(index).search(queries, k, nprobe=nprobe, ef=ef)


def exact_search(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product k-NN: (scores, positions into ``database``)."""
    database = np.ascontiguousarray(database, dtype=np.float32)
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    return Searcher(index).search(queries, min(int(k), max(len(database), 1)))


@dataclass(frozen=True)
class TuneReport:
    params: dict[str, int]  # the chosen nprobe / ef (empty: nothing to tune)
    recall: float  # recall@k of the sample at those params
    met: bool  # whether ``recall`` reached the target
    seconds: float  # the sample's search time at those params
    exact_seconds: float  # the same sample by exact search


def tune(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray, *, k: int = 10,
         target: float = TARGET_RECALL, sample: int = 500, seed: int = 0) -> dict[str, int]:
    """The cheapest nprobe / efSearch reaching ``target`` recall@k against exact search, on a sample."""
    return tune_report(index, vectors, ids, k=k, target=target, sample=sample, seed=seed).params


def tune_report(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray, *, k: int = 10,
                target: float = TARGET_RECALL, sample: int = 500, seed: int = 0) -> TuneReport:
    """``tune`` with what it found: the recall reached and the sample's time against exact search.

    Sampled collection vectors serve as queries with themselves left out of both result lists, so
    the trivial self-match does not flatter the recall that new queries will see. The largest value
    tried is kept when none reaches ``target``.
    """
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = _hnsw_of(index)
    if (ivf is None and hnsw is None) or len(vectors) <= k + 1:
        return TuneReport({}, 1.0, True, 0.0, 0.0)
    ids = np.asarray(ids, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    queries = np.ascontiguousarray(vectors[pick], dtype=np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    start = time.perf_counter()
    _, truth = Searcher(flat).search(queries, k + 1)
    exact_seconds = time.perf_counter() - start
    del flat
    truth_ids = _drop_self(ids[truth], ids[pick], k)
    key, values = ("nprobe", [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if v <= ivf.nlist]
                   ) if ivf is not None else ("ef", [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512])
    for value in values:
        set_search_params(index, **{key: value})
        start = time.perf_counter()
        _, got = index.search(queries, k + 1)
        seconds = time.perf_counter() - start
        recall = recall_against(_drop_self(got, ids[pick], k), truth_ids)
        if recall >= target:
            break
    return TuneReport({key: value}, recall, recall >= target, seconds, exact_seconds)


def _drop_self(found: np.ndarray, self_ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k ids other than the query's own."""
    out = np.full((len(found), k), -1, np.int64)
    for row, (f, me) in enumerate(zip(found, self_ids)):
        rest = f[f != me][:k]
        out[row, :len(rest)] = rest
    return out


def recall_against(found_ids: np.ndarray, true_ids: np.ndarray, ids: np.ndarray | None = None) -> float:
    """Mean share of the true k neighbours found (``ids`` maps true positions to ids when given)."""
    if ids is not None:
        true_ids = ids[true_ids]
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found_ids, true_ids))
    return hits / max(1, int((true_ids >= 0).sum()))
