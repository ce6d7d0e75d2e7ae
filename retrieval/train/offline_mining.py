"""Offline hard-negative mining across the whole training set: each image's nearest neighbours of other
classes, found with an exact faiss k-NN over the current embeddings (the loop then builds its next
batches around them: train, find the confusions, add them, repeat).
"""
from __future__ import annotations

import numpy as np

from index.ann.searcher import exact_search


def hard_negatives(vectors: np.ndarray, labels: np.ndarray, m: int = 5, search_k: int = 64,
                   search=exact_search) -> np.ndarray:
    """Positions [n, m] of each image's ``m`` nearest other-class images, nearest first, -1 padded
    (an image whose ``search_k`` nearest neighbours all share its class has none)."""
    labels = np.asarray(labels)
    n = len(vectors)
    out = np.full((n, m), -1, np.int64)
    if n < 2:
        return out
    _, pos = search(vectors, vectors, min(n, search_k))
    other = (pos >= 0) & (labels[np.clip(pos, 0, None)] != labels[:, None])
    for i in range(n):
        found = pos[i][other[i]][:m]
        out[i, :len(found)] = found
    return out


def confusion_rate(hard: np.ndarray) -> float:
    """Share of images that have any other-class image among their searched neighbours."""
    return float((hard[:, 0] >= 0).mean()) if len(hard) else 0.0
