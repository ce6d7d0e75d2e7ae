"""Tuning an approximate index's search parameters (nprobe, efSearch) to a target recall."""
from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np

from index.ann.neighbours import drop_self
from index.ann.searcher import Searcher, hnsw_of, set_search_params

TARGET_RECALL = 0.96  # tuned search parameters aim here, a margin above the 0.95 we promise


@dataclass(frozen=True)
class TuneReport:
    params: dict[str, int]  # the chosen nprobe / ef (empty: nothing to tune)
    recall: float  # recall@k of the sample at those params
    met: bool  # whether ``recall`` reached the target
    seconds: float  # the sample's search time at those params
    exact_seconds: float  # the same sample by exact search


def tune_report(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray, *, k: int = 10,
                target: float = TARGET_RECALL, sample: int = 500, seed: int = 0) -> TuneReport:
    """The cheapest nprobe / efSearch reaching ``target`` recall@k against exact search, on a sample, with
    what it found: the recall reached and the sample's time against exact search.

    Sampled collection vectors serve as queries with themselves left out of both result lists, so
    the trivial self-match does not flatter the recall that new queries will see. The largest value
    tried is kept when none reaches ``target``.
    """
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = hnsw_of(index)
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
    truth_ids = drop_self(ids[truth], ids[pick])[:, :k]
    params, recall, seconds = sweep(index, queries, ids[pick], truth_ids, k=k, target=target)
    return TuneReport(params, recall, recall >= target, seconds, exact_seconds)


def sweep(index: faiss.Index, queries: np.ndarray, query_ids: np.ndarray, truth_ids: np.ndarray, *, k: int = 10,
          target: float = TARGET_RECALL) -> tuple[dict[str, int], float, float]:
    """The cheapest nprobe / efSearch whose recall@k of ``queries`` (collection vectors, ids ``query_ids``, left
    out of their own results) against ``truth_ids`` reaches ``target``: (params, recall, seconds of the sample).

    The largest value tried is kept when none reaches ``target``.
    """
    ivf = faiss.try_extract_index_ivf(index)
    key, values = ("nprobe", [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if v <= ivf.nlist]
                   ) if ivf is not None else ("ef", [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512])
    recall = seconds = 0.0
    for value in values:
        set_search_params(index, **{key: value})
        start = time.perf_counter()
        _, got = index.search(queries, k + 1)
        seconds = time.perf_counter() - start
        recall = recall_against(drop_self(got, query_ids)[:, :k], truth_ids)
        if recall >= target:
            break
    return {key: value}, recall, seconds


def recall_against(found_ids: np.ndarray, true_ids: np.ndarray, ids: np.ndarray | None = None) -> float:
    """Mean share of the true k neighbours found (``ids`` maps true positions to ids when given)."""
    if ids is not None:
        true_ids = ids[true_ids]
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found_ids, true_ids))
    return hits / max(1, int((true_ids >= 0).sum()))
