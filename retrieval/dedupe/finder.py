"""Finding duplicate groups: candidates from every cheap signal, verified, grouped without chains.

1. Candidates (no O(n^2) loop): equal sha256 (sorting), perceptual hashes within a loose radius (faiss /
   multi-index binary range search), each image's nearest thumbnails, each image's best partners by shared
   keypoint descriptors (``retrieval.dedupe.keypoint_candidates``), and with ``embeddings`` cosine
   neighbours (faiss range search).
2. Verification (``retrieval.dedupe.verify``): every candidate pair that is not byte-identical is checked
   with local features and a RANSAC similarity fit, over all cores; a pair too smooth for keypoints by a
   dense alignment (reason "aligned"). Low-information images (flat, near-uniform, tiny) are never paired;
   a pair too poor in texture to verify either way is reported as unverified.
   With ``verify=False`` a hash within ``threshold`` (or an embedding above ``similarity``) is enough.
3. Star groups (``retrieval.dedupe.groups.star_groups``): images in keep-policy order keep their untaken
   verified neighbours, and a duplicate reached only through another duplicate is verified against the kept
   image before it joins, so one borderline link never merges two groups.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from index.hamming import hamming, pairs_within, similar_pairs
from retrieval.dedupe.groups import star_groups
from retrieval.dedupe.keep import Candidate, policy
from retrieval.dedupe.options import DedupeOptions

EXACT = "exact"
EMBEDDING = "embedding"
VERIFIED = "verified"
ALIGNED = "aligned"  # a smooth pair verified densely (retrieval.dedupe.verify: too few keypoints for RANSAC)
UNTEXTURED = "too little texture to verify"
NEIGHBOURS = 10  # beyond --threshold, hash candidates are an image's this many nearest within the loose radius
THUMB_MAX = 100_000  # thumbnail candidates up to this many images (an exact k-NN over all of them)
THUMB_MIN = 0.3  # thumbnail neighbours less alike than this are not proposed


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
    camera: bool | None = None  # EXIF names a camera (read while verifying)

    def candidate(self) -> Candidate:
        return Candidate(self.path, self.bytes, self.width, self.height, self.mtime, self.camera)


@dataclasses.dataclass(frozen=True)
class Duplicate:
    item: Item
    distance: float  # Hamming distance to the kept image (0 for exact; 1 - cosine for an embedding link)
    reason: str  # exact | verified | aligned (smooth pair) | <hash name> or embedding (without verification)
    inliers: int | None = None  # verified: keypoint matches that agree with one transform

    def to_json(self) -> dict[str, Any]:
        return {"path": self.item.path, "distance": self.distance, "reason": self.reason, "inliers": self.inliers}


@dataclasses.dataclass(frozen=True)
class LowInfo:
    """An image too flat, uniform or small to compare: never paired by a hash, never moved."""

    item: Item
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.item.path, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Unverified:
    """A candidate pair that a cheap signal links but verification could not decide: reported, not merged."""

    a: Item
    b: Item
    distance: int  # Hamming distance
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"paths": [self.a.path, self.b.path], "distance": self.distance, "reason": self.reason}


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
    low_info: list[LowInfo] = dataclasses.field(default_factory=list)
    unverified: list[Unverified] = dataclasses.field(default_factory=list)
    verified_pairs: int = 0  # candidate pairs checked with local features
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list, repr=False)  # every accepted pair

    @property
    def n_duplicates(self) -> int:
        return sum(len(g.duplicates) for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        out = {"n_images": self.n_images, "n_duplicates": self.n_duplicates,
               "groups": [g.to_json() for g in self.groups],
               "low_information": [x.to_json() for x in self.low_info],
               "unverified": [x.to_json() for x in self.unverified]}
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


Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class _Link:
    reason: str
    distance: float
    inliers: int | None = None


def _link(verdict: Any, distance: int) -> _Link:
    if verdict.reason == ALIGNED:
        return _Link(ALIGNED, distance)
    return _Link(VERIFIED, distance, verdict.inliers)


def _pairs(i: np.ndarray, j: np.ndarray) -> list[Pair]:
    return [(min(a, b), max(a, b)) for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()) if a != b]


def nearest_per_image(i: np.ndarray, j: np.ndarray, d: np.ndarray, strict: int,
                      m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs within ``strict``, and beyond it only those among the ``m`` nearest of either image.

    Real photos' hashes are not uniform (dark or smooth pictures crowd together), so a loose radius alone
    can propose tens of candidates per image; a copy is almost always among an image's nearest few.
    """
    i, j, d = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(d, np.int64)
    if len(i) == 0:
        return i, j, d
    node = np.concatenate([i, j])
    dist = np.concatenate([d, d])
    pair = np.concatenate([np.arange(len(i)), np.arange(len(i))])
    order = np.lexsort((pair, dist, node))
    node, pair = node[order], pair[order]
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    rank = np.arange(len(node)) - np.repeat(starts, np.diff(np.r_[starts, len(node)]))
    keep = np.zeros(len(i), dtype=bool)
    keep[pair[rank < m]] = True
    keep |= d <= strict
    return i[keep], j[keep], d[keep]


def thumbnail_pairs(paths: Sequence[str], *, workers: int | None = None, progress: bool = False) -> list[Pair]:
    """Each image with its NEIGHBOURS nearest by thumbnail descriptor (catches the crops, turns and
    overlays that move a perceptual hash far)."""
    from index.ann.searcher import exact_search
    from retrieval.dedupe.verify import compute_thumbnails
    x = compute_thumbnails(paths, workers=workers, progress=progress)
    scores, pos = exact_search(x, x, NEIGHBOURS + 1)
    rows = np.repeat(np.arange(len(paths)), pos.shape[1])
    ok = (pos.ravel() >= 0) & (scores.ravel() >= THUMB_MIN)
    return _pairs(rows[ok], pos.ravel()[ok])


def find_duplicates(items: Sequence[Item], codes: np.ndarray, opts: DedupeOptions,
                    vectors: np.ndarray | None = None, vector_rows: np.ndarray | None = None,
                    errors: Sequence[tuple[str, str]] = (), aliases: Sequence[tuple[str, str]] = (), *,
                    workers: int | None = None, progress: bool = False) -> DedupeResult:
    """Duplicate groups among ``items`` (``codes[k]`` is the packed hash of ``items[k]``).

    ``vectors`` (L2-normalised) belong to the positions ``vector_rows`` (all positions when None).
    """
    opts = opts.validated()
    if len(codes) != len(items):
        raise ValueError(f"{len(items)} items but {len(codes)} hash codes")
    items = list(items)
    sha = [it.sha256 for it in items]
    exact = set(_pairs(*exact_pairs(sha)))
    cand: dict[Pair, set[str]] = {p: {EXACT} for p in exact}
    if len(items) > 1:
        i, j, d = pairs_within(codes, opts.candidate_radius(), method=opts.method)
        if opts.verify:
            i, j, d = nearest_per_image(i, j, d, opts.threshold, NEIGHBOURS)
        for p, dist in zip(_pairs(i, j), np.asarray(d).tolist()):
            if opts.verify or dist <= opts.threshold:
                cand.setdefault(p, set()).add(opts.hash)
    if opts.verify and 1 < len(items) <= THUMB_MAX:
        for p in thumbnail_pairs([it.path for it in items], workers=workers, progress=progress):
            cand.setdefault(p, set()).add("thumbnail")
    cos: dict[Pair, float] = {}
    if opts.embeddings and vectors is not None and len(vectors):
        rows = np.arange(len(vectors)) if vector_rows is None else np.asarray(vector_rows, dtype=np.int64)
        vi, vj, sims = similar_pairs(vectors, opts.similarity)
        for p, s in zip(_pairs(rows[vi], rows[vj]), np.asarray(sims).tolist()):
            cand.setdefault(p, set()).add(EMBEDDING)
            cos[p] = round(max(0.0, 1.0 - float(s)), 4)

    def hamming_of(a: int, b: int) -> int:
        return int(hamming(codes[a:a + 1], codes[b:b + 1])[0])

    nodes = sorted({x for p in cand for x in p})
    feats: dict[int, Any] = {}
    low: dict[int, str] = {}
    if opts.verify and 1 < len(items) <= THUMB_MAX:  # keypoint candidates need every image's features
        nodes = list(range(len(items)))
    if opts.verify and nodes:
        from retrieval.dedupe.verify import compute_features
        by_path = compute_features([items[k].path for k in nodes], workers=workers, progress=progress)
        feats = {k: by_path[items[k].path] for k in nodes}
        if len(nodes) == len(items) > 1:
            from retrieval.dedupe.keypoint_candidates import keypoint_pairs
            for p in keypoint_pairs([feats[k].descriptors for k in nodes]):
                cand.setdefault(p, set()).add("keypoints")
            nodes = sorted({x for p in cand for x in p})
        for k, f in feats.items():
            items[k] = dataclasses.replace(items[k], camera=f.camera)
            if f.low_info:
                low[k] = f.low_info
    links: dict[Pair, _Link] = {}
    to_verify: list[Pair] = []
    for p, signals in sorted(cand.items()):
        if p[0] in low or p[1] in low:
            continue
        if p in exact:
            links[p] = _Link(EXACT, 0)
        elif opts.verify:
            to_verify.append(p)
        elif opts.hash in signals:
            links[p] = _Link(opts.hash, hamming_of(*p))
        else:
            links[p] = _Link(EMBEDDING, cos[p])
    unverified = []
    verdicts = _verify(to_verify, feats, opts, workers=workers, progress=progress)
    for p, v in zip(to_verify, verdicts):
        if v.verified:
            links[p] = _link(v, hamming_of(*p))
        elif v.reason == "untextured":
            unverified.append(Unverified(items[p[0]], items[p[1]], hamming_of(*p), UNTEXTURED))
    checked = set(to_verify)

    key = policy(opts.keep)
    rank = np.full(len(items), len(items), dtype=np.int64)
    ordered = sorted(nodes, key=lambda k: key(items[k].candidate()))
    rank[ordered] = np.arange(len(ordered))
    edges: dict[int, set[int]] = {}
    for a, b in links:
        edges.setdefault(a, set()).add(b)
        edges.setdefault(b, set()).add(a)
    stars = star_groups(len(items), edges, rank)
    stars = _attach_reached(stars, edges, rank, items, feats, links, checked, low, opts, hamming_of,
                            workers=workers)

    groups = []
    for keep, dups in stars:
        out = []
        for m in dups:
            link = links[(min(m, keep), max(m, keep))]
            out.append(Duplicate(items[m], link.distance, link.reason, link.inliers))
        out.sort(key=lambda d: (d.distance, d.item.path))
        groups.append(Group(items[keep], tuple(out)))
    groups.sort(key=lambda g: g.keep.path)
    low_info = sorted((LowInfo(items[k], r) for k, r in low.items()), key=lambda x: x.item.path)
    unverified.sort(key=lambda u: (u.a.path, u.b.path))
    return DedupeResult(len(items), groups, opts, list(errors), list(aliases), low_info, unverified,
                        len(to_verify), [(items[a].path, items[b].path) for a, b in sorted(links)])


def _verify(pairs: Sequence[Pair], feats: dict[int, Any], opts: DedupeOptions, *, workers: int | None,
            progress: bool = False) -> list[Any]:
    if not pairs:
        return []
    from retrieval.dedupe.verify import verify_pairs
    nodes = sorted({x for p in pairs for x in p})
    at = {k: n for n, k in enumerate(nodes)}
    local = [(at[a], at[b]) for a, b in pairs]
    return list(verify_pairs(local, [feats[k] for k in nodes], thresholds=opts.thresholds(), workers=workers,
                             progress=progress))


def _attach_reached(stars: list[tuple[int, list[int]]], edges: dict[int, set[int]], rank: np.ndarray,
                    items: Sequence[Item], feats: dict[int, Any], links: dict[Pair, _Link], checked: set[Pair],
                    low: dict[int, str], opts: DedupeOptions, hamming_of, *,
                    workers: int | None) -> list[tuple[int, list[int]]]:
    """An image left out, linked only to another group's duplicates, joins that group when it is itself a
    duplicate of the kept image (same bytes, or verified against it now; never through the chain)."""
    group_of = {}
    for g, (keep, dups) in enumerate(stars):
        group_of[keep] = g
        for m in dups:
            group_of[m] = g
    asks: list[tuple[int, int]] = []  # (image, group)
    for a in sorted(edges, key=lambda k: rank[k]):
        if a in group_of or a in low:
            continue
        reached = sorted({group_of[b] for b in edges[a] if b in group_of}, key=lambda g: rank[stars[g][0]])
        asks += [(a, g) for g in reached]
    pending: list[tuple[int, int, Pair]] = []
    for a, g in asks:
        p = (min(a, stars[g][0]), max(a, stars[g][0]))
        if items[a].sha256 and items[a].sha256 == items[stars[g][0]].sha256:
            links[p] = _Link(EXACT, 0)
            pending.append((a, g, p))
        elif opts.verify and p not in checked:
            pending.append((a, g, p))
    todo = sorted({p for _, _, p in pending if p not in links})
    for p, v in zip(todo, _verify(todo, feats, opts, workers=workers)):
        if v.verified:
            links[p] = _link(v, hamming_of(*p))
    joined = set()
    out = [(keep, list(dups)) for keep, dups in stars]
    for a, g, p in pending:
        if a not in joined and p in links:
            out[g][1].append(a)
            joined.add(a)
    return out

