"""Validation recall@K during training: every validation vector queries all the others (leave-one-out)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from retrieval.evaluation.metrics import Knn, exact_knn, nearest_others, recall_at_k


def knn_recall(vectors: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1,),
               search: Knn = exact_knn) -> dict[str, float]:
    """recall@K for each K, every vector querying all the others (K is capped at the n - 1 others)."""
    n = len(vectors)
    if n < 2:
        raise ValueError(f"leave-one-out k-NN needs at least 2 vectors, got {n}")
    labels = np.asarray(labels)
    nbrs = nearest_others(vectors, vectors, min(max(ks), n - 1), np.arange(n), knn=search)
    return {f"recall@{k}": recall_at_k(labels[nbrs], labels, min(k, nbrs.shape[1])) for k in ks}
