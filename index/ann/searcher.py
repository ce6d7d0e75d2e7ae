"""Searching a faiss index, and its file: ``Searcher``, ``exact_search``, ``save``, ``load``, ``ids_of``.

Every k-NN search in retr goes through here. When faiss sees GPUs, search runs on them (sharded across
all of them) for the index types GPU faiss serves; HNSW, and k above GPU faiss's limit, stay on CPU.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from index.atomic import atomic_path, file_sha256
from index.errors import RetrError, write_hint

GPU_MAX_K = 2048  # GPU faiss cannot return more neighbours than this
BLAS_MIN_QUERIES = 4  # flat scans use BLAS from this many queries on (see blas_from)


def faiss_message(exc: RuntimeError) -> str:
    """The readable end of a faiss C++ error ("Error in <signature> at <file>:<line>: <message>")."""
    text = str(exc).splitlines()[0]
    return text.split(": ", 1)[1][:200] if text.startswith("Error in ") and ": " in text else text[:200]


def save(index: faiss.Index, path: str | Path) -> str:
    """Write ``index`` atomically; returns the sha256 of the file written."""
    with atomic_path(path) as tmp:
        try:
            faiss.write_index(faiss.index_gpu_to_cpu(index) if _on_gpu(index) else index, str(tmp))
        except RuntimeError as exc:  # e.g. "write error ... (No space left on device)"
            message = faiss_message(exc)
            raise RetrError(f"cannot write {path}: {message}{write_hint(message)}") from exc
        return file_sha256(tmp)


def load(path: str | Path) -> faiss.Index:
    """The index in ``path`` (an on-disk IVF index opens with ``index.ann.ondisk.open_ondisk``)."""
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
        hnsw = hnsw_of(index)
        if hnsw is not None:
            hnsw.hnsw.efSearch = int(ef)


def hnsw_of(index: faiss.Index) -> "faiss.IndexHNSW | None":
    """The HNSW index inside ``index`` (under an id map or not), else None."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def lists_on_disk(index: faiss.Index) -> bool:
    """Whether ``index`` keeps its inverted lists in an .ivfdata file (index.ann.ondisk)."""
    ivf = faiss.try_extract_index_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


def _on_gpu(index: faiss.Index) -> bool:
    return "Gpu" in type(index).__name__ or "IndexShards" in type(index).__name__


def gpu_can_serve(index: faiss.Index, k: int) -> bool:
    """Whether GPU faiss can serve ``index`` for ``k`` neighbours (flat and IVF; never HNSW, k <= 2048)."""
    return k <= GPU_MAX_K and hnsw_of(index) is None


class Searcher:
    """An index prepared for search: on all GPUs (sharded) when faiss sees them, else CPU."""

    def __init__(self, index: faiss.Index, *, use_gpu: bool | None = None):
        self.cpu = index
        self.gpu = None
        ngpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        # an on-disk index stays memory-mapped on CPU: a GPU copy would need its whole size in GPU memory
        if (use_gpu if use_gpu is not None else ngpu > 0) and ngpu > 0 and gpu_can_serve(index, 1) \
                and not lists_on_disk(index):
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
        with blas_from(BLAS_MIN_QUERIES * self.cpu.d):
            return target.search(queries, k)


@contextmanager
def blas_from(threshold: int) -> Iterator[None]:
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


def exact_search(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product k-NN: (scores, positions into ``database``)."""
    database = np.ascontiguousarray(database, dtype=np.float32)
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    return Searcher(index).search(queries, min(int(k), max(len(database), 1)))
