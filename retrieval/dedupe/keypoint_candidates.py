"""Candidate pairs from shared keypoint descriptors: images whose ORB descriptors land in the same buckets.

A copy keeps most of its original's keypoints with near-identical binary descriptors, even after a crop,
a turn, a resize, a text overlay and low JPEG quality, when its thumbnail and perceptual hash have moved
far (a cropped and turned star field looks like every other star field at 24 px). Each image's strongest
``TOP`` descriptors are hashed into ``TABLES`` bucket tables by ``BITS`` sampled bits each (locality-
sensitive hashing for the Hamming distance); two images sharing a bucket get a vote, weighted down by
how many images share it (a glyph of the same watermark, a flat patch), and each image proposes its
``NEIGHBOURS`` best-voted partners. Linear in the number of descriptors; no O(n^2) loop.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TOP = 1000  # strongest descriptors per image that vote
TABLES = 8
BITS = 20  # sampled bits per table: near-identical descriptors share them, unrelated ones rarely do
MAX_BITS = 40
# beyond 2^BITS descriptors, a table's vote for a pair counts only above this (one shared bucket of two images
# is 1): pairs that share a bucket by chance are most pairs of a big collection (30 million of 20,000 tiles of
# photos, 1.8 GB), a copy shares dozens in every table
TABLE_FLOOR = 1.0
MAX_BUCKET = 16  # a bucket shared by more images than this is a stop word (texture every picture has)
MIN_VOTES = 3.0  # weighted votes beyond what chance gives two images of their sizes, below which nothing is proposed
NEIGHBOURS = 10
SEED = 15
KEY_SLICE = 2000  # images whose descriptors are turned into bucket keys at once


def _bucket_keys(by_byte: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """int64 bucket key of each descriptor (``by_byte``: uint8 [32, n], one row per descriptor byte): the
    sampled ``bits``."""
    out = np.zeros(by_byte.shape[1], np.int64)
    for j, bit in enumerate(bits.tolist()):
        out |= ((by_byte[bit // 8] >> (7 - bit % 8)) & 1).astype(np.int64) << j
    return out


def _unique_sorted(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, index of each value of ``x`` into them): sorting, faster than hashing here."""
    order = np.argsort(x)
    s = x[order]
    new = np.r_[True, s[1:] != s[:-1]]
    inverse = np.empty(len(x), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return s[new], inverse


def bits_for(n_descriptors: int, bits: int = BITS) -> int:
    """Sampled bits per table for this many descriptors: ``bits`` up to 2^bits of them; beyond, two more than
    log2 of their number, so a bucket still holds a fraction of a descriptor by chance. (At 100,000 images, 20
    bits put about 50 unrelated descriptors in every bucket: every bucket a stop word, and the pairs that
    smaller buckets propose by chance take gigabytes.)"""
    if n_descriptors <= 1 << bits:
        return bits
    return min(MAX_BITS, int(np.ceil(np.log2(n_descriptors))) + 2)


def keypoint_votes(descriptors: Sequence[np.ndarray], *, top: int = TOP, tables: int = TABLES, bits: int = BITS,
                   min_votes: float = MIN_VOTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, votes): every pair (a < b) of positions into ``descriptors`` (uint8 [n_k, 32] per image,
    strongest first) whose shared descriptor buckets weigh at least ``min_votes`` beyond chance."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    counts = np.array([min(len(d), top) for d in descriptors], np.int64)
    if (counts > 0).sum() < 2:
        return empty
    width = next(np.asarray(d).shape[1] for d in descriptors if len(d))
    floor = TABLE_FLOOR if int(counts.sum()) > 1 << bits else 0.0
    bits = bits_for(int(counts.sum()), bits)
    rng = np.random.default_rng(SEED)
    table_bits = np.stack([rng.choice(width * 8, bits, replace=False) for _ in range(tables)])
    owner = np.repeat(np.arange(len(descriptors), dtype=np.int64), counts)

    def keys(t: int) -> np.ndarray:
        """Table t's bucket key of every descriptor, computed a slice of images at a time (no copy of all
        the descriptors at once: at 100,000 images they are 1.6 GB)."""
        out = np.empty(len(owner), np.int64)
        at = 0
        for start in range(0, len(descriptors), KEY_SLICE):
            part = [np.asarray(d, np.uint8)[:top] for d in descriptors[start:start + KEY_SLICE] if len(d)]
            if part:
                block = np.ascontiguousarray(np.concatenate(part).T)
                out[at:at + block.shape[1]] = _bucket_keys(block, table_bits[t])
                at += block.shape[1]
        return out
    n = len(descriptors)
    uniq, votes = np.zeros(0, np.int64), np.zeros(0)
    for t in range(tables):
        pair_keys, pair_weights = [], []
        # one entry per (bucket, image): an image voting twice in one bucket is one vote
        code = keys(t)
        code *= n
        code += owner
        code.sort()
        code = code[np.r_[True, code[1:] != code[:-1]]]
        bucket, img = code // n, code % n
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        sizes = np.diff(np.r_[starts, len(bucket)])
        for size in np.unique(sizes[(sizes >= 2) & (sizes <= MAX_BUCKET)]).tolist():
            first = starts[sizes == size]
            members = img[first[:, None] + np.arange(size)[None, :]]  # [buckets, size], sorted per row
            a, b = np.triu_indices(size, 1)
            pair_keys.append((members[:, a] * n + members[:, b]).ravel())
            pair_weights.append(np.full(len(first) * len(a), 1.0 / (size - 1), np.float32))
        del code, bucket, img
        # summed within the table first (a copy's pair shares hundreds of buckets), then into the running
        # sum: memory follows one table's bucket pairs and the distinct pairs, not every table's pairs at once
        if pair_keys:
            keys_t, inverse = _unique_sorted(np.concatenate(pair_keys))
            votes_t = np.bincount(inverse, weights=np.concatenate(pair_weights), minlength=len(keys_t))
            del pair_keys, pair_weights, inverse
            if floor:  # at scale: a pair that shares one bucket of a table by chance leaves it
                keys_t, votes_t = keys_t[votes_t > floor], votes_t[votes_t > floor]
            uniq, inverse = _unique_sorted(np.concatenate([uniq, keys_t]))
            votes = np.bincount(inverse, weights=np.concatenate([votes, votes_t]), minlength=len(uniq))
            del keys_t, votes_t, inverse
    if not len(uniq):
        return empty
    a, b = uniq // n, uniq % n
    sizes = counts.astype(np.float64)
    votes = votes - tables * sizes[a] * sizes[b] / float(1 << bits)  # unrelated descriptors share buckets too
    ok = votes >= min_votes
    return a[ok], b[ok], votes[ok]


def keypoint_pairs(descriptors: Sequence[np.ndarray], *, top: int = TOP, tables: int = TABLES, bits: int = BITS,
                   neighbours: int = NEIGHBOURS, min_votes: float = MIN_VOTES) -> list[tuple[int, int]]:
    """Pairs (a < b) of positions into ``descriptors`` that share enough descriptor buckets: each image's
    ``neighbours`` best-voted partners."""
    a, b, votes = keypoint_votes(descriptors, top=top, tables=tables, bits=bits, min_votes=min_votes)
    return best_partners(a, b, votes, neighbours)


def best_partners(a: np.ndarray, b: np.ndarray, votes: np.ndarray, neighbours: int) -> list[tuple[int, int]]:
    """The pairs among (a, b) that are among the ``neighbours`` best-voted of either side."""
    # each image keeps its best-voted partners
    node = np.concatenate([a, b])
    other = np.concatenate([b, a])
    score = np.concatenate([votes, votes])
    order = np.lexsort((other, -score, node))
    node, other = node[order], other[order]
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    rank = np.arange(len(node)) - np.repeat(starts, np.diff(np.r_[starts, len(node)]))
    keep = rank < neighbours
    return sorted({(int(min(x, y)), int(max(x, y))) for x, y in zip(node[keep], other[keep])})
