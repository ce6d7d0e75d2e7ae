"""Retrieval metrics as the metric-learning literature defines them, and their evaluation over embeddings.

The metric functions are pure: they take the labels of each query's ranked neighbours (nearest first)
and the query labels. ``nearest_others`` finds the neighbours with the k-NN function it is given
(faiss exact search by default), never counting a query as its own neighbour; ``evaluate_embeddings``
(`retr eval`) and training validation both use it.

- recall@k: a query scores 1 if any of its k nearest neighbours shares its label (Sohn 2016, Song 2016).
- precision@1: the share of queries whose nearest neighbour shares their label.
- R-precision: with R the number of gallery images sharing the query's label, the share of the R nearest
  that do (Musgrave et al., "A Metric Learning Reality Check", 2020).
- MAP@R: mean average precision over the R nearest, (1/R) sum_i P(i) rel(i) (same paper).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np

from index.ann.neighbours import drop_self
from index.errors import RetrError

# knn(database, queries, k) -> (scores [n, k], positions into database [n, k], -1 = none), best first
Knn = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]

DEFAULT_KS = (1, 2, 4, 8)
_NEIGHBOUR_BYTES = 256 << 20  # neighbour positions held at once while searching in query chunks


# -- pure metrics ---------------------------------------------------------------------------------------

def _check(neighbour_labels: np.ndarray, query_labels: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    nl, ql = np.asarray(neighbour_labels), np.asarray(query_labels)
    if nl.ndim != 2 or ql.ndim != 1 or len(nl) != len(ql):
        raise ValueError(f"neighbour_labels {nl.shape} must be [n, K] for query_labels {ql.shape}")
    if need > nl.shape[1]:
        raise ValueError(f"{need} neighbours needed but only {nl.shape[1]} given per query")
    return nl, ql


def _check_relevant(relevant: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    rel = np.asarray(relevant, dtype=np.int64)
    if rel.shape != (n,):
        raise ValueError(f"relevant counts {rel.shape} must be one per query ({n})")
    if n and rel.min() < 1:
        raise ValueError(f"every query needs at least one relevant gallery item; got R={int(rel.min())} "
                         f"(leave such queries out)")
    return rel


def recall_hits(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int) -> np.ndarray:
    """Per query: True if any of its ``k`` nearest neighbours shares its label."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    nl, ql = _check(neighbour_labels, query_labels, k)
    return (nl[:, :k] == ql[:, None]).any(axis=1)


def recall_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Share of queries with a same-label image among their ``k`` nearest neighbours."""
    return float(recall_hits(neighbour_labels, query_labels, k).mean()) if len(query_labels) else 0.0


def precision_at_1(neighbour_labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Share of queries whose nearest neighbour shares their label (equals recall@1)."""
    return recall_at_k(neighbour_labels, query_labels, 1)


def r_precision_scores(neighbour_labels: np.ndarray, query_labels: np.ndarray,
                       relevant: np.ndarray | Sequence[int]) -> np.ndarray:
    """Per query: the share of its R nearest neighbours that share its label (R = ``relevant``)."""
    rel = _check_relevant(relevant, len(query_labels))
    nl, ql = _check(neighbour_labels, query_labels, int(rel.max()) if len(rel) else 0)
    width = int(rel.max()) if len(rel) else 0
    match = (nl[:, :width] == ql[:, None]) & (np.arange(width)[None, :] < rel[:, None])
    return match.sum(axis=1) / rel


def r_precision(neighbour_labels: np.ndarray, query_labels: np.ndarray,
                relevant: np.ndarray | Sequence[int]) -> float:
    scores = r_precision_scores(neighbour_labels, query_labels, relevant)
    return float(scores.mean()) if len(scores) else 0.0


def map_at_r_scores(neighbour_labels: np.ndarray, query_labels: np.ndarray,
                    relevant: np.ndarray | Sequence[int]) -> np.ndarray:
    """Per query: (1/R) sum over the R nearest of precision@i at each same-label neighbour i."""
    rel = _check_relevant(relevant, len(query_labels))
    nl, ql = _check(neighbour_labels, query_labels, int(rel.max()) if len(rel) else 0)
    width = int(rel.max()) if len(rel) else 0
    inside = np.arange(width)[None, :] < rel[:, None]
    match = (nl[:, :width] == ql[:, None]) & inside
    precision_at_i = np.cumsum(match, axis=1) / np.arange(1, width + 1)[None, :]
    return (precision_at_i * match).sum(axis=1) / rel


def map_at_r(neighbour_labels: np.ndarray, query_labels: np.ndarray,
             relevant: np.ndarray | Sequence[int]) -> float:
    scores = map_at_r_scores(neighbour_labels, query_labels, relevant)
    return float(scores.mean()) if len(scores) else 0.0


def clustering_agreement(labels: Sequence[Any], clusters: Sequence[int]) -> tuple[float, float]:
    """(NMI, AMI) of a clustering against the true labels (scikit-learn's definitions)."""
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score
    if len(labels) != len(clusters) or not len(labels):
        raise ValueError(f"need as many cluster ids ({len(clusters)}) as labels ({len(labels)}), at least one")
    return (float(normalized_mutual_info_score(labels, clusters)),
            float(adjusted_mutual_info_score(labels, clusters)))


def exact_knn(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The default ``Knn``: faiss exact inner-product search."""
    from index.ann.searcher import exact_search
    return exact_search(database, queries, k)


def nearest_others(gallery: np.ndarray, queries: np.ndarray, k: int, self_positions: np.ndarray | None = None,
                   *, knn: Knn = exact_knn) -> np.ndarray:
    """Gallery positions [n, k] of each query's ``k`` nearest neighbours, best first, never the query itself.

    ``self_positions`` gives each query's own position in the gallery (-1: not in it); None: no query is.
    """
    if self_positions is None or not (np.asarray(self_positions) >= 0).any():
        _, pos = knn(gallery, queries, k)
        return np.asarray(pos, dtype=np.int64)[:, :k]
    _, pos = knn(gallery, queries, k + 1)
    return drop_self(np.asarray(pos, dtype=np.int64), np.asarray(self_positions, dtype=np.int64))[:, :k]


# -- evaluation over embeddings --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RecallReport:
    n: int  # queries evaluated
    recall: dict[int, float]
    precision_at_1: float
    r_precision: float
    map_at_r: float
    per_class: dict[str, dict[str, float]]
    excluded: int = 0  # queries left out: no other gallery image shares their label
    nmi: float | None = None
    ami: float | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # embed, search, total

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n}
        out.update({f"recall@{k}": v for k, v in self.recall.items()})
        out.update({"precision@1": self.precision_at_1, "r_precision": self.r_precision, "map@r": self.map_at_r,
                    "per_class": self.per_class})
        if self.nmi is not None:
            out.update({"nmi": self.nmi, "ami": self.ami})
        return out


@dataclasses.dataclass(frozen=True)
class _Encoded:
    """Queries and gallery with labels as integer codes; only queries with another same-label item kept."""

    classes: np.ndarray  # code -> label
    queries: np.ndarray
    query_codes: np.ndarray
    gallery_codes: np.ndarray
    self_positions: np.ndarray  # each kept query's own gallery position, -1 when absent
    relevant: np.ndarray  # R of each kept query: same-label gallery items other than itself
    excluded: int


def _encode(queries: np.ndarray, query_labels: Sequence[Any], gallery_labels: Sequence[Any],
            self_positions: np.ndarray) -> _Encoded:
    classes, codes = np.unique(np.asarray(list(query_labels) + list(gallery_labels), dtype=str),
                               return_inverse=True)
    ql, gl = codes[:len(queries)], codes[len(queries):]
    own = (self_positions >= 0) & (gl[np.maximum(self_positions, 0)] == ql)
    relevant = np.bincount(gl, minlength=len(classes))[ql] - own
    keep = relevant >= 1
    if not keep.any():
        raise RetrError("no query has another image of its class in the gallery; nothing to evaluate")
    return _Encoded(classes, queries[keep], ql[keep], gl, self_positions[keep], relevant[keep],
                    int((~keep).sum()))


def _neighbour_labels(gallery: np.ndarray, data: _Encoded, width: int, knn: Knn) -> tuple[np.ndarray, float]:
    """(label codes of each query's ``width`` nearest others, -1 = none; seconds spent searching).

    Queries are searched in chunks so the neighbour table of a large set never fills memory.
    """
    chunk = max(1, _NEIGHBOUR_BYTES // (8 * (width + 1)))
    labels = np.empty((len(data.queries), width), np.int64)
    seconds = 0.0
    for lo in range(0, len(data.queries), chunk):
        t = time.perf_counter()
        pos = nearest_others(gallery, data.queries[lo:lo + chunk], width, data.self_positions[lo:lo + chunk],
                             knn=knn)
        seconds += time.perf_counter() - t
        labels[lo:lo + chunk] = np.where(pos >= 0, data.gallery_codes[np.maximum(pos, 0)], -1)
    return labels, seconds


def _per_class(data: _Encoded, labels: np.ndarray, hits: dict[int, np.ndarray], rp: np.ndarray,
               mp: np.ndarray) -> dict[str, dict[str, float]]:
    ql = data.query_codes
    per_class = {}
    for code in np.unique(ql):
        sel = ql == code
        row: dict[str, float] = {"n": int(sel.sum())}
        row.update({f"recall@{k}": float(h[sel].mean()) for k, h in hits.items()})
        row.update({"precision@1": float(hits[1][sel].mean()) if 1 in hits else
                    float((labels[sel, 0] == code).mean()),
                    "r_precision": float(rp[sel].mean()), "map@r": float(mp[sel].mean())})
        per_class[str(data.classes[code])] = row
    return per_class


def evaluate_embeddings(queries: np.ndarray, query_labels: Sequence[Any], gallery: np.ndarray | None = None,
                        gallery_labels: Sequence[Any] | None = None, *, ks: Sequence[int] = DEFAULT_KS,
                        knn: Knn = exact_knn, query_in_gallery: np.ndarray | None = None) -> RecallReport:
    """recall@k, precision@1, R-precision, MAP@R (overall and per class) of ``queries`` against ``gallery``.

    Without a gallery every query searches all the others. ``query_in_gallery`` gives each query's own
    position in the gallery (-1 when absent); that position is never counted as a neighbour.
    """
    start = time.perf_counter()
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be at least 1, got {ks}")
    if gallery is None:
        gallery, gallery_labels = queries, query_labels
        query_in_gallery = np.arange(len(queries))
    if gallery_labels is None or len(gallery_labels) != len(gallery) or len(query_labels) != len(queries):
        raise ValueError("need one label per query and per gallery vector")
    self_pos = np.full(len(queries), -1, np.int64) if query_in_gallery is None \
        else np.asarray(query_in_gallery, dtype=np.int64)
    available = len(gallery) - int((self_pos >= 0).any())

    data = _encode(queries, query_labels, gallery_labels, self_pos)
    if ks[-1] > available:
        raise RetrError(f"k={ks[-1]} is more than the {available} gallery images a query can retrieve")
    labels, search_seconds = _neighbour_labels(gallery, data, max(ks[-1], int(data.relevant.max())), knn)

    ql = data.query_codes
    hits = {k: recall_hits(labels, ql, k) for k in ks}
    rp = r_precision_scores(labels, ql, data.relevant)
    mp = map_at_r_scores(labels, ql, data.relevant)
    return RecallReport(
        n=int(len(ql)), recall={k: float(h.mean()) for k, h in hits.items()},
        precision_at_1=precision_at_1(labels, ql), r_precision=float(rp.mean()), map_at_r=float(mp.mean()),
        per_class=_per_class(data, labels, hits, rp, mp), excluded=data.excluded,
        seconds={"search": search_seconds, "metrics": time.perf_counter() - start - search_seconds})
