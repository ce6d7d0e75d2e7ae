"""k-medoids clustering of embedding vectors with cosine distance.

The default engine is FasterPAM from the ``kmedoids`` package; scikit-learn-extra's PAM and alternate
are optional engines (the ``sklearn-extra`` extra), registered in ``retrieval.clustering.engines``.
A dense n x n distance matrix is checked against the memory available before it is allocated; beyond
it, ``sample`` clusters a random sample and assigns every vector to its nearest medoid with faiss.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from index.errors import RetrError
from index.ann.factory import available_memory
from index.ann.searcher import exact_search
from retrieval.clustering.engines import DEFAULT_METHOD, ENGINES

DENSE_SHARE = 0.5  # a dense distance matrix may take at most this share of the available memory


# -- distances, memory --------------------------------------------------------------------------------------

def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """The dense n x n cosine distance matrix (float32, zero diagonal) of L2-normalised vectors.

    Exactly symmetric: NumPy computes ``x @ x.T`` with a symmetric rank-k update (syrk), one triangle
    mirrored, which the engines rely on.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    out = vectors @ vectors.T
    np.subtract(1.0, out, out=out)
    np.clip(out, 0.0, 2.0, out=out)
    np.fill_diagonal(out, 0.0)
    return out


def dense_bytes(n: int, method: str = DEFAULT_METHOD) -> int:
    return n * n * ENGINES.get(method).bytes_per_cell


def check_dense(n: int, method: str, memory: int | None = None) -> None:
    """Refuse, before allocating, a distance matrix beyond what memory allows; suggest ``--sample``."""
    memory = available_memory() if memory is None else memory
    need = dense_bytes(n, method)
    if need > memory * DENSE_SHARE:
        fits = int((memory * DENSE_SHARE / ENGINES.get(method).bytes_per_cell) ** 0.5)
        raise RetrError(f"clustering {n} vectors with {method} needs a dense {n}x{n} distance matrix of "
                        f"{need / 2**30:.1f} GiB, more than half the {memory / 2**30:.1f} GiB available; "
                        f"use --sample N (N <= {fits}) to cluster a sample and assign the rest to the "
                        f"nearest medoid")


# -- clustering ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Clustering:
    k: int
    method: str
    medoids: np.ndarray  # positions into the clustered vectors, one per cluster
    labels: np.ndarray  # cluster of each vector, 0..k-1 (index into ``medoids``)
    loss: float  # sum of cosine distances to the assigned medoid
    silhouette: float | None  # medoid silhouette (None for k = 1)
    seconds: float
    sampled: bool = False
    # the silhouette (Rousseeuw: mean distances to the own and the nearest other cluster) from the distance
    # matrix, over every vector or, beyond --sample, over the sample: the criterion k is chosen by
    full_silhouette: float | None = None


def loss_of(distances_to_medoid: np.ndarray) -> float:
    return float(np.sum(distances_to_medoid, dtype=np.float64))


def medoid_silhouette(first: np.ndarray, second: np.ndarray) -> float:
    """Mean of 1 - a/b over points (a, b: distances to the nearest and second-nearest medoid; 1 when b = 0)."""
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    scores = np.where(b > 0, 1.0 - a / np.where(b > 0, b, 1.0), 1.0)
    return float(scores.mean())


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette of ``labels`` under the dense ``distances`` (None for fewer than 2 clusters).

    One matrix product gives every point's summed distance to every cluster (n x n x k), so no Python loop;
    a point alone in its cluster scores 0, as in Rousseeuw's definition.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    if k < 2:
        return None
    onehot = np.zeros((len(labels), k), np.float32)
    onehot[np.arange(len(labels)), labels] = 1.0
    sums = distances @ onehot  # [n, k]
    sizes = onehot.sum(axis=0)
    own = sizes[labels]
    a = sums[np.arange(len(labels)), labels] / np.maximum(own - 1, 1)
    means = sums / np.maximum(sizes, 1)
    means[np.arange(len(labels)), labels] = np.inf
    means[:, sizes == 0] = np.inf
    b = means.min(axis=1)
    score = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(score.mean())


def _validate_k(k: int, n: int) -> None:
    if k < 1 or k > n:
        raise RetrError(f"k={k} clusters is not possible for {n} vectors (need 1 <= k <= {n})")


def _cluster_dense(distances: np.ndarray, k: int, method: str, seed: int) -> Clustering:
    import kmedoids
    _validate_k(k, len(distances))
    start = time.perf_counter()
    medoids, labels = ENGINES.get(method).run(distances, k, seed)
    labels = labels.copy()
    labels[medoids] = np.arange(k)  # a medoid belongs to its own cluster even when a duplicate ties
    seconds = time.perf_counter() - start
    loss = loss_of(distances[np.arange(len(labels)), medoids[labels]])
    silhouette = float(kmedoids.medoid_silhouette(distances, medoids)[0]) if k > 1 else None
    return Clustering(k, method, medoids, labels, loss, silhouette, seconds, full_silhouette=_silhouette(distances, labels))


def _silhouette(distances: np.ndarray, labels: np.ndarray) -> float | None:
    # k is at most the vectors, so the [n, k] product stays within the n x n matrix's memory
    return silhouette(distances, np.unique(labels, return_inverse=True)[1])


def assign_to_medoids(vectors: np.ndarray, medoids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, distance to nearest, distance to second nearest medoid) of each vector, with faiss."""
    k = len(medoids)
    scores, pos = exact_search(vectors[medoids], vectors, min(2, k))
    first = np.clip(1.0 - scores[:, 0], 0.0, 2.0)
    second = np.clip(1.0 - scores[:, 1], 0.0, 2.0) if k > 1 else np.full_like(first, np.inf)
    labels = pos[:, 0].astype(np.int64)
    labels[medoids] = np.arange(k)
    first[medoids] = 0.0
    return labels, first, second


def _cluster_sampled(vectors: np.ndarray, distances: np.ndarray, sample: np.ndarray, k: int, method: str,
                     seed: int) -> Clustering:
    start = time.perf_counter()
    inner = _cluster_dense(distances, k, method, seed)
    medoids = sample[inner.medoids]
    labels, first, second = assign_to_medoids(vectors, medoids)
    seconds = inner.seconds + time.perf_counter() - start
    silhouette = medoid_silhouette(first, second) if k > 1 else None
    return Clustering(k, method, medoids, labels, loss_of(first), silhouette, seconds, sampled=True,
                      full_silhouette=_silhouette(distances, labels[sample]))  # over the sample


def cluster_vectors(vectors: np.ndarray, ks: Iterable[int], *, method: str = DEFAULT_METHOD, seed: int = 0,
                    sample: int | None = None, memory: int | None = None,
                    progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> list[Clustering]:
    """One clustering per k in ``ks`` (sharing one distance matrix), in the order of ``ks``.

    With ``sample`` (fewer than the vectors), a random sample of that size is clustered and every vector
    is assigned to its nearest medoid; loss and silhouette are then over all vectors.
    """
    ENGINES.get(method)  # an unknown method fails before any work
    ks = list(ks)
    vectors = normalise(vectors)
    n = len(vectors)
    if n == 0:
        raise RetrError("there are no vectors to cluster")
    sampled = sample is not None and sample < n
    if sample is not None and sample < 2:
        raise RetrError(f"--sample must be at least 2, got {sample}")
    chosen = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)) if sampled else None
    m = len(chosen) if sampled else n
    for k in ks:
        _validate_k(k, m)
    check_dense(m, method, memory)
    distances = cosine_distances(vectors[chosen] if sampled else vectors)
    results = []
    for k in (progress(ks) if progress else ks):
        results.append(_cluster_sampled(vectors, distances, chosen, k, method, seed) if sampled
                       else _cluster_dense(distances, k, method, seed))
    return results


def criterion(r: Clustering) -> float | None:
    """What k is chosen by: the full (or sampled) silhouette; the medoid silhouette only when it is missing.

    The medoid silhouette (distance to the nearest vs the second-nearest medoid) keeps rising with k on
    real embeddings (more medoids, each point nearer one); the full silhouette compares whole clusters and
    peaks where they really separate.
    """
    return r.full_silhouette if r.full_silhouette is not None else r.silhouette


def best_by_silhouette(results: Sequence[Clustering]) -> Clustering:
    """The clustering with the highest silhouette (the smallest k on ties; k = 1 only when alone)."""
    scored = [r for r in results if criterion(r) is not None]
    if not scored:
        return results[0]
    return max(scored, key=lambda r: (criterion(r), -r.k))


def edge_warning(results: Sequence[Clustering], best: Clustering) -> str | None:
    """A warning when the best k is the smallest or largest tried: the true k may lie outside the range."""
    ks = [r.k for r in results]
    if len(ks) < 3 or best.k not in (min(ks), max(ks)):
        return None
    side = "largest" if best.k == max(ks) else "smallest"
    return (f"the best k ({best.k}) is the {side} tried: the silhouette may still rise beyond the range; "
            f"try a wider --k-min/--k-max")
