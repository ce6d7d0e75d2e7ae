"""Stage 1 of finding duplicates: candidate pairs from every cheap signal, with no O(n^2) loop.

- equal sha256 (sorting): exact copies;
- perceptual hashes within a loose radius (faiss / multi-index binary range search), each image's
  ``NEIGHBOURS`` nearest beyond ``--threshold``;
- each image's nearest thumbnails (exact k-NN up to ``THUMB_EXACT`` images, an HNSW graph beyond): the
  crops, turns and overlays that move a perceptual hash far;
- each image's best partners by shared keypoint descriptors (``retrieval.dedupe.keypoint_candidates``),
  whose vote also tells verification which pairs are worth matching;
- with ``--embeddings``, cosine neighbours (faiss range search).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from index.hamming import hamming, search_within, similar_pairs
from retrieval.dedupe.options import DedupeOptions

Pair = tuple[int, int]
HASH_CHUNK = 2000  # images whose hash neighbours are searched at once
NEIGHBOURS = 10  # beyond --threshold, hash candidates are an image's this many nearest within the loose radius
THUMB_NEIGHBOURS = 10
THUMB_MIN = 0.3  # thumbnail neighbours less alike than this are not proposed
THUMB_EXACT = 20_000  # up to this many images the thumbnail k-NN is exact; beyond, an HNSW graph (sub-quadratic)
HASH, THUMBNAIL, KEYPOINTS, EMBEDDING = "hash", "thumbnail", "keypoints", "embedding"


@dataclasses.dataclass
class Candidates:
    """Candidate pairs (a < b, positions) with the signals that proposed each, and what verification needs."""

    signals: dict[Pair, set[str]]
    exact: set[Pair]
    votes: "Votes | dict[Pair, float]"  # keypoint votes beyond chance (absent: none)
    thumb: dict[Pair, float]  # thumbnail cosine (absent: not proposed by thumbnails)
    cosine: dict[Pair, float]  # embedding: 1 - cosine

    def add(self, pairs, signal: str) -> None:
        for p in pairs:
            self.signals.setdefault(p, set()).add(signal)


class Votes:
    """Keypoint votes of pairs, as two sorted arrays (a dict of tens of millions of pairs is tens of GB)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, votes: np.ndarray, n: int):
        self.n = int(n)
        keys = np.asarray(a, np.int64) * self.n + np.asarray(b, np.int64)
        order = np.argsort(keys, kind="stable")
        self.keys, self.votes = keys[order], np.asarray(votes, np.float32)[order]

    def get(self, pair: Pair, default: float = 0.0) -> float:
        key = pair[0] * self.n + pair[1]
        at = int(np.searchsorted(self.keys, key))
        return float(self.votes[at]) if at < len(self.keys) and self.keys[at] == key else default

    def __len__(self) -> int:
        return len(self.keys)


def pairs_of(i: np.ndarray, j: np.ndarray) -> list[Pair]:
    return [(min(a, b), max(a, b)) for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()) if a != b]


def exact_pairs(sha256: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (first, other) of positions with the same sha256 (None never matches)."""
    known = np.array([i for i, s in enumerate(sha256) if s], dtype=np.int64)
    if len(known) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.array([sha256[i] for i in known])
    order = np.argsort(keys, kind="stable")
    keys, pos = keys[order], known[order]
    same = keys[1:] == keys[:-1]
    return pos[:-1][same], pos[1:][same]  # consecutive equal keys chain the whole group together


def thumbnail_neighbours(thumbs: np.ndarray, queries: np.ndarray | None = None,
                         k: int = THUMB_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positions) [nq, k + 1] of each query's nearest thumbnails (inner product; -1: none)."""
    import faiss
    thumbs = np.ascontiguousarray(thumbs, np.float32)
    queries = thumbs if queries is None else np.ascontiguousarray(queries, np.float32)
    k = min(k + 1, len(thumbs))
    if len(thumbs) <= THUMB_EXACT:
        from index.ann.searcher import exact_search
        return exact_search(thumbs, queries, k)
    index = faiss.IndexHNSWFlat(thumbs.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(thumbs)
    index.hnsw.efSearch = 64
    return index.search(queries, k)


def thumbnail_pairs(thumbs: np.ndarray) -> dict[Pair, float]:
    """Each image with its THUMB_NEIGHBOURS nearest by thumbnail descriptor (at least THUMB_MIN alike)."""
    scores, pos = thumbnail_neighbours(thumbs)
    rows = np.repeat(np.arange(len(thumbs)), pos.shape[1])
    ok = (pos.ravel() >= 0) & (scores.ravel() >= THUMB_MIN)
    out: dict[Pair, float] = {}
    for p, s in zip(pairs_of(rows[ok], pos.ravel()[ok]), scores.ravel()[ok].tolist()):
        out[p] = max(out.get(p, -1.0), float(s))
    return out


def hash_pairs(codes: np.ndarray, opts: DedupeOptions) -> list[tuple[Pair, int]]:
    """(pair, Hamming distance): within --threshold, or (verifying) among either's NEIGHBOURS nearest in the
    loose radius. Searched HASH_CHUNK images at a time against all: at 100,000 images the loose radius holds
    hundreds of millions of pairs, of which each image keeps its few nearest."""
    from index.hamming import search_within
    n = len(codes)
    radius = opts.candidate_radius() if opts.verify else opts.threshold
    out: dict[Pair, int] = {}
    for start in range(0, n, HASH_CHUNK):
        q, pos, dist = search_within(codes, codes[start:start + HASH_CHUNK], radius, method=opts.method)
        q, pos, dist = np.asarray(q, np.int64) + start, np.asarray(pos, np.int64), np.asarray(dist, np.int64)
        other = pos != q
        q, pos, dist = q[other], pos[other], dist[other]
        if opts.verify:  # each image's NEIGHBOURS nearest, and every pair within --threshold
            order = np.lexsort((pos, dist, q))
            q, pos, dist = q[order], pos[order], dist[order]
            starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]]) if len(q) else np.zeros(0, np.int64)
            rank = np.arange(len(q)) - np.repeat(starts, np.diff(np.r_[starts, len(q)]))
            keep = (rank < NEIGHBOURS) | (dist <= opts.threshold)
            q, pos, dist = q[keep], pos[keep], dist[keep]
        for a, b, d in zip(q.tolist(), pos.tolist(), dist.tolist()):
            out[(a, b) if a < b else (b, a)] = d
    return sorted(out.items())


def hash_neighbours(codes: np.ndarray, query: np.ndarray, opts: DedupeOptions) -> tuple[np.ndarray, np.ndarray]:
    """(positions, distances) of the stored codes near one query code: within --threshold, and (verifying)
    the NEIGHBOURS nearest within the loose radius."""
    _, pos, dist = search_within(codes, query[None, :], opts.candidate_radius(), method=opts.method)
    if opts.verify:
        order = np.argsort(dist, kind="stable")
        keep = order[(np.arange(len(order)) < NEIGHBOURS) | (dist[order] <= opts.threshold)]
        pos, dist = pos[keep], dist[keep]
    else:
        pos, dist = pos[dist <= opts.threshold], dist[dist <= opts.threshold]
    return pos, dist


def find_candidates(sha256: Sequence[str | None], codes: np.ndarray, opts: DedupeOptions, *,
                    thumbs: np.ndarray | None = None, descriptors: Sequence[np.ndarray] | None = None,
                    vectors: np.ndarray | None = None, vector_rows: np.ndarray | None = None) -> Candidates:
    """Every candidate pair among n images (``codes[k]``: the packed hash of image k; ``thumbs`` and
    ``descriptors`` when verifying; ``vectors`` of the positions ``vector_rows`` with --embeddings)."""
    cand = Candidates({}, set(pairs_of(*exact_pairs(sha256))), {}, {}, {})
    cand.add(cand.exact, "exact")
    n = len(codes)
    if n > 1:
        cand.add((p for p, _ in hash_pairs(codes, opts)), HASH)
    if opts.verify and thumbs is not None and n > 1:
        cand.thumb = thumbnail_pairs(thumbs)
        cand.add(cand.thumb, THUMBNAIL)
    if opts.verify and descriptors is not None and n > 1:
        from retrieval.dedupe.keypoint_candidates import NEIGHBOURS as KP_NEIGHBOURS, best_partners, keypoint_votes
        a, b, v = keypoint_votes(descriptors)
        cand.votes = Votes(a, b, v, n)
        cand.add(best_partners(a, b, v, KP_NEIGHBOURS), KEYPOINTS)
    if opts.embeddings and vectors is not None and len(vectors):
        rows = np.arange(len(vectors)) if vector_rows is None else np.asarray(vector_rows, dtype=np.int64)
        vi, vj, sims = similar_pairs(vectors, opts.similarity)
        for p, s in zip(pairs_of(rows[vi], rows[vj]), np.asarray(sims).tolist()):
            cand.add([p], EMBEDDING)
            cand.cosine[p] = round(max(0.0, 1.0 - float(s)), 4)
    return cand


def hamming_of(codes: np.ndarray, a: int, b: int) -> int:
    return int(hamming(codes[a:a + 1], codes[b:b + 1])[0])
