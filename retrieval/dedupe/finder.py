"""Finding duplicate groups: exact (sha256) -> perceptual hash -> optional embedding similarity.

Each layer yields pairs of positions (no O(n^2) loop: sorting for sha256, faiss/multi-index range search
for hashes, faiss inner-product range search for embeddings); union-find joins them into groups; a keep
policy picks the image to keep, and every other member carries its reason and distance to the kept one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from index.hamming import hamming, pairs_within, similar_pairs
from retrieval.dedupe.groups import group_pairs
from retrieval.dedupe.keep import Candidate, choose_keep
from retrieval.dedupe.options import DEFAULT_SIMILARITY, DedupeOptions  # noqa: F401 - importable from here too

EXACT = "exact"
EMBEDDING = "embedding"
CHAIN = "-chain"  # suffix: joined to the kept image only through other duplicates


@dataclasses.dataclass(frozen=True)
class Item:
    """An image of the collection (``id``: catalog id, or position when there is no catalog)."""

    id: int
    path: str
    sha256: str | None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    mtime: float | None = None
    aliases: tuple[str, ...] = ()  # other paths that reach the same file (symlinks, hard links)

    def candidate(self) -> Candidate:
        return Candidate(self.path, self.bytes, self.width, self.height, self.mtime)


@dataclasses.dataclass(frozen=True)
class Duplicate:
    item: Item
    distance: float  # Hamming distance to the kept image, 0 for exact, 1 - cosine for embedding
    reason: str  # exact | <hash name> | embedding, with "-chain" when only linked through other duplicates

    def to_json(self) -> dict[str, Any]:
        return {"path": self.item.path, "distance": self.distance, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Group:
    keep: Item
    duplicates: tuple[Duplicate, ...]

    def to_json(self) -> dict[str, Any]:
        return {"keep": self.keep.path, "duplicates": [d.to_json() for d in self.duplicates]}


@dataclasses.dataclass
class DedupeResult:
    n_images: int
    groups: list[Group]
    options: DedupeOptions
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # files that could not be hashed
    aliases: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, the path it is one file with)

    @property
    def n_duplicates(self) -> int:
        return sum(len(g.duplicates) for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        out = {"n_images": self.n_images, "n_duplicates": self.n_duplicates,
               "groups": [g.to_json() for g in self.groups]}
        if self.aliases:  # only when some paths were folded, so the usual keys stay as they are
            out["aliases"] = [{"path": a, "same_file_as": p} for a, p in self.aliases]
        return out


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


def find_duplicates(items: Sequence[Item], codes: np.ndarray, opts: DedupeOptions,
                    vectors: np.ndarray | None = None, vector_rows: np.ndarray | None = None,
                    errors: Sequence[tuple[str, str]] = (),
                    aliases: Sequence[tuple[str, str]] = ()) -> DedupeResult:
    """Duplicate groups among ``items`` (``codes[k]`` is the packed hash of ``items[k]``).

    ``vectors`` (L2-normalised) belong to the positions ``vector_rows`` (all positions when None).
    """
    opts = opts.validated()
    if len(codes) != len(items):
        raise ValueError(f"{len(items)} items but {len(codes)} hash codes")
    sha = [it.sha256 for it in items]
    layers: list[tuple[str, tuple[np.ndarray, np.ndarray]]] = [(EXACT, exact_pairs(sha))]
    if len(items) > 1:
        i, j, _ = pairs_within(codes, opts.threshold, method=opts.method)
        layers.append((opts.hash, (i, j)))
    vec_at: dict[int, int] = {}
    if opts.embeddings and vectors is not None and len(vectors):
        rows = np.arange(len(vectors)) if vector_rows is None else np.asarray(vector_rows, dtype=np.int64)
        vi, vj, _ = similar_pairs(vectors, opts.similarity)
        layers.append((EMBEDDING, (rows[vi], rows[vj])))
        vec_at = {int(r): k for k, r in enumerate(rows)}
    linked = {name: set(np.concatenate(pair).tolist()) for name, pair in layers}

    groups = []
    for members in group_pairs(*(pair for _, pair in layers)):
        k = choose_keep([items[m].candidate() for m in members], opts.keep)
        keep = members[k]
        dups = [_explain(m, keep, items, codes, opts, vectors, vec_at, linked) for m in members if m != keep]
        dups.sort(key=lambda d: (d.distance, d.item.path))
        groups.append(Group(items[keep], tuple(dups)))
    groups.sort(key=lambda g: g.keep.path)
    return DedupeResult(len(items), groups, opts, list(errors), list(aliases))


def _explain(m: int, keep: int, items: Sequence[Item], codes: np.ndarray, opts: DedupeOptions,
             vectors: np.ndarray | None, vec_at: dict[int, int], linked: dict[str, set[int]]) -> Duplicate:
    """Why ``m`` duplicates ``keep``: the strongest layer in which they are directly within reach."""
    if items[m].sha256 and items[m].sha256 == items[keep].sha256:
        return Duplicate(items[m], 0, EXACT)
    dist = int(hamming(codes[m:m + 1], codes[keep:keep + 1])[0])
    if dist <= opts.threshold:
        return Duplicate(items[m], dist, opts.hash)
    cos_dist = None
    if vectors is not None and m in vec_at and keep in vec_at:
        sim = float(vectors[vec_at[m]] @ vectors[vec_at[keep]])
        cos_dist = round(max(0.0, 1.0 - sim), 4)
        if sim >= opts.similarity:
            return Duplicate(items[m], cos_dist, EMBEDDING)
    if m in linked.get(opts.hash, ()) or cos_dist is None:
        return Duplicate(items[m], dist, opts.hash + CHAIN)
    return Duplicate(items[m], cos_dist, EMBEDDING + CHAIN)
