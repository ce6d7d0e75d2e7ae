"""Validation recall@K during training: a pure metric and an exact faiss k-NN (leave-one-out)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from index.vectors import exact_search

Search = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def recall_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Fraction of queries with at least one same-label item among their first ``k`` neighbours."""
    neighbour_labels = np.asarray(neighbour_labels)
    if k < 1 or k > neighbour_labels.shape[1]:
        raise ValueError(f"k must be in 1..{neighbour_labels.shape[1]}, got {k}")
    if len(neighbour_labels) == 0:
        raise ValueError("recall@k of no queries")
    hits = (neighbour_labels[:, :k] == np.asarray(query_labels)[:, None]).any(axis=1)
    return float(hits.mean())


def leave_one_out_neighbours(vectors: np.ndarray, k: int, search: Search = exact_search) -> np.ndarray:
    """Positions of each vector's ``k`` nearest other vectors (the query itself removed)."""
    n = len(vectors)
    if n < 2:
        raise ValueError(f"leave-one-out k-NN needs at least 2 vectors, got {n}")
    k = min(k, n - 1)
    _, pos = search(vectors, vectors, k + 1)
    out = np.empty((n, k), np.int64)
    for i in range(n):  # drop the query itself wherever ties put it
        row = pos[i][pos[i] != i]
        out[i] = row[:k]
    return out


def knn_recall(vectors: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1,),
               search: Search = exact_search) -> dict[str, float]:
    """recall@K for each K, every vector querying all the others."""
    labels = np.asarray(labels)
    nbrs = leave_one_out_neighbours(vectors, max(ks), search)
    return {f"recall@{k}": recall_at_k(labels[nbrs], labels, min(k, nbrs.shape[1])) for k in ks}
