"""Finding duplicates in three stages: candidates, verification, grouping.

1. Candidates (``retrieval.dedupe.candidates``): equal sha256, perceptual hashes, thumbnails, shared
   keypoints and (with ``embeddings``) cosine neighbours propose pairs; no O(n^2) loop.
2. Verification (``verification``): in keep-policy order, each image not yet taken is checked against its
   untaken candidates with local features and a RANSAC similarity fit (``retrieval.dedupe.verify``), and
   the aligned pictures compared block by block: an edited copy (reason ``verified``; ``aligned`` for a pair
   too smooth for keypoints), another shot of the scene (``other shot``), or neither. Only the pairs a star
   group needs are checked, a wave of images at a time over all cores: two copies of one kept image are never
   compared with each other, and a textured pair that shares no keypoint bucket, is far by hash and unlike
   by thumbnail is not matched at all. Low-information images (flat, near-uniform, tiny) are never paired;
   a pair too poor in texture to verify either way is reported as unverified.
   With ``verify=False`` a hash within ``threshold`` (or an embedding above ``similarity``) is enough.
3. Grouping (``grouping``): star groups of copies around the kept image (no chaining: a duplicate reached
   only through another duplicate joins when it was verified against the kept image), then ``similar``
   groups of the kept images that other-shot links join, again as stars.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from retrieval.dedupe.candidates import Candidates, Pair, find_candidates, hamming_of
from retrieval.dedupe.groups import star_groups
from retrieval.dedupe.keep import Candidate, policy
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.reasons import Kind, Reason

UNTEXTURED = Reason.UNTEXTURED.value
# a textured pair is matched only when its keypoint votes (retrieval.dedupe.keypoint_candidates: shared
# buckets beyond chance) reach MIN_VOTES, its thumbnails are THUMB_WORTH alike or its hashes are within
# SURE_HASH bits. Calibration half of benchmarks/dedupe_quality.py: of its combined edits that verify against
# their original, 5 votes alone reached 56 of 85; any vote (3, the keypoint candidates' own floor) or
# thumbnails 0.8 alike reach 78
MIN_VOTES = 3.0
SURE_HASH = 2
THUMB_WORTH = 0.8
THUMB_SURE = 0.8  # --check: thumbnails this alike are candidates (beyond the hash's)
# images whose pairs are verified together (one mapper call, over all cores) before the star order is applied to
# them: the first wave, each next one twice as many (few calls; a wave verifies a few pairs that a star order of
# one image at a time would not, between copies of one picture that rank close together)
WAVE = 64


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
    """An image linked to another (a group's kept image, or the image ``--check`` asked about)."""

    item: Item
    distance: float  # Hamming distance to the kept image (0 for exact; 1 - cosine for an embedding link)
    reason: Reason
    inliers: int | None = None  # verified or other shot: keypoint matches that agree with one transform

    @property
    def kind(self) -> Kind:
        return self.reason.kind

    @property
    def path(self) -> str:
        return self.item.path

    def to_json(self) -> dict[str, Any]:
        return {"path": self.item.path, "kind": self.kind.value, "reason": self.reason.value,
                "distance": self.distance, "inliers": self.inliers}


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

    @property
    def kind(self) -> Kind:
        """similar for a group of other shots; exact when every duplicate has the same bytes; else copy."""
        kinds = {d.kind for d in self.duplicates}
        return Kind.SIMILAR if Kind.SIMILAR in kinds else Kind.EXACT if kinds == {Kind.EXACT} else Kind.COPY

    def to_json(self) -> dict[str, Any]:
        return {"keep": self.keep.path, "kind": self.kind.value, "duplicates": [d.to_json() for d in self.duplicates]}


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
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list, repr=False)  # every copy or exact pair
    similar: list[Group] = dataclasses.field(default_factory=list)  # other shots of one scene (kept images)
    similar_links: list[tuple[str, str]] = dataclasses.field(default_factory=list, repr=False)

    @property
    def n_duplicates(self) -> int:
        return sum(len(g.duplicates) for g in self.groups)

    @property
    def n_similar(self) -> int:
        return sum(len(g.duplicates) for g in self.similar)

    def acted_on(self, include_similar: bool = False) -> list[Group]:
        """The groups --move-to and --delete act on: the copy groups, and with ``include_similar`` each similar
        group folded in (its other shots, with their own copies, become duplicates of the shot kept)."""
        if not include_similar or not self.similar:
            return list(self.groups)
        by_keep = {g.keep.path: g for g in self.groups}
        out, folded = [], set()
        for s in self.similar:
            dups = list(by_keep[s.keep.path].duplicates) if s.keep.path in by_keep else []
            for d in s.duplicates:
                dups.append(d)
                dups += by_keep[d.item.path].duplicates if d.item.path in by_keep else ()
                folded.add(d.item.path)
            folded.add(s.keep.path)
            out.append(Group(s.keep, tuple(dups)))
        return sorted(out + [g for g in self.groups if g.keep.path not in folded], key=lambda g: g.keep.path)

    def to_json(self) -> dict[str, Any]:
        out = {"n_images": self.n_images, "n_duplicates": self.n_duplicates, "n_similar": self.n_similar,
               "groups": [g.to_json() for g in self.groups], "similar": [g.to_json() for g in self.similar],
               "low_information": [x.to_json() for x in self.low_info],
               "unverified": [x.to_json() for x in self.unverified]}
        if self.aliases:  # only when some paths were folded, so the usual keys stay as they are
            out["aliases"] = [{"path": a, "same_file_as": p} for a, p in self.aliases]
        return out




def low_information(feats: Sequence[Any]) -> dict[int, str]:
    return {k: f.low_info for k, f in enumerate(feats) if f.low_info}


def find_duplicates(items: Sequence[Item], codes: np.ndarray, opts: DedupeOptions,
                    vectors: np.ndarray | None = None, vector_rows: np.ndarray | None = None,
                    errors: Sequence[tuple[str, str]] = (), aliases: Sequence[tuple[str, str]] = (), *,
                    feats: Sequence[Any] | None = None, verdicts: dict[str, list] | None = None,
                    workers: int | None = None, progress: bool = False, blobs: Sequence[bytes] | None = None,
                    mapper: Any = None) -> DedupeResult:
    """Duplicate groups among ``items`` (``codes[k]``: the packed hash of ``items[k]``; ``feats[k]``: its
    retrieval.dedupe.features.Features, computed now when verifying without them). ``vectors``
    (L2-normalised) belong to the positions ``vector_rows`` (all positions when None). ``verdicts`` (pair of
    file contents -> [reason, inliers]) are reused and filled in: only pairs it lacks are matched. ``blobs``
    (the stored form of ``feats``, when the caller has it) are what verification tasks share. Feature
    extraction and verification run through ``mapper`` (shaped like retrieval.workers.ordered_map, its
    default: ``mapper(fn, tasks, shared=..., workers=...)``, results in task order)."""
    opts = opts.validated()
    items = list(items)
    feats = _features(items, codes, feats, opts, workers, progress, mapper)
    if feats is not None:
        items = [dataclasses.replace(it, camera=f.camera) for it, f in zip(items, feats)]
    cand = find_candidates([it.sha256 for it in items], codes, opts,
                           thumbs=np.stack([f.thumb for f in feats]) if feats else None,
                           descriptors=[f.descriptors for f in feats] if feats else None,
                           vectors=vectors, vector_rows=vector_rows)
    low = low_information(feats) if feats else {}
    rank = keep_rank(items, opts)
    links, checked = verification(cand, codes, feats, low, rank, opts, verdicts=verdicts,
                                  contents=[it.sha256 for it in items], workers=workers, progress=progress,
                                  blobs=blobs, mapper=mapper)
    return grouping(items, links, low, rank, checked, opts, errors, aliases)


def _features(items: list[Item], codes: np.ndarray, feats: Sequence[Any] | None, opts: DedupeOptions,
              workers: int | None, progress: bool, mapper: Any = None) -> list[Any] | None:
    """The features verification needs (None without verification), checked against the items."""
    if len(codes) != len(items):
        raise ValueError(f"{len(items)} items but {len(codes)} hash codes")
    if not opts.verify:
        return None
    if feats is None:  # a caller without a collection's features
        from retrieval.dedupe.features import FeatureJob, compute_features
        feats = compute_features([it.path for it in items], FeatureJob(opts.hash, int(opts.hash_size)),
                                 workers=workers, progress=progress, mapper=mapper)
    if len(feats) != len(items):
        raise ValueError(f"{len(items)} items but {len(feats)} features")
    return list(feats)


def edges_of(pairs) -> dict[int, set[int]]:
    """Adjacency (both ways) of (a, b) pairs."""
    out: dict[int, set[int]] = {}
    for a, b in pairs:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


def keep_rank(items: Sequence[Item], opts: DedupeOptions) -> np.ndarray:
    """Each position's place in keep-policy order (0: the first image to keep)."""
    key = policy(opts.keep)
    rank = np.empty(len(items), dtype=np.int64)
    rank[sorted(range(len(items)), key=lambda k: key(items[k].candidate()))] = np.arange(len(items))
    return rank


@dataclasses.dataclass(frozen=True)
class Link:
    reason: Reason
    distance: float
    inliers: int | None = None


def verification(cand: Candidates, codes: np.ndarray, feats: Sequence[Any] | None, low: dict[int, str],
                 rank: np.ndarray, opts: DedupeOptions, *, verdicts: dict[str, list] | None = None,
                 contents: Sequence[str | None] = (), workers: int | None = None,
                 progress: bool = False, blobs: Sequence[bytes] | None = None,
                 mapper: Any = None) -> tuple[dict[Pair, Link], int]:
    """Stage 2: the link (exact, copy, other shot; or untextured) of each candidate pair that grouping needs,
    and how many pairs were matched with local features."""
    links: dict[Pair, Link] = {}
    for p, signals in cand.signals.items():
        if p[0] in low or p[1] in low:
            continue
        if p in cand.exact:
            links[p] = Link(Reason.EXACT, 0)
        elif not opts.verify:
            links[p] = (Link(Reason.HASH, hamming_of(codes, *p)) if "hash" in signals
                        else Link(Reason.EMBEDDING, cand.cosine[p]))
    if not opts.verify:
        return links, 0
    # a byte-identical image is taken with its twin: that pair needs no other check
    nbrs = edges_of([p for p in cand.signals if p[0] not in low and p[1] not in low
                     and (p in cand.exact or _worth(cand, feats, codes, p))])
    walk = _StarWalk(nbrs, links, codes, feats, opts.thresholds(), workers, verdicts, contents, blobs, mapper)
    return _star_order(walk, rank, progress=progress)


def _worth(cand: Candidates, feats: Sequence[Any], codes: np.ndarray, p: Pair) -> bool:
    """Whether matching a candidate pair can verify it: a smooth side goes to the dense check; a textured pair
    needs MIN_VOTES keypoint votes, thumbnails THUMB_WORTH alike, hashes within SURE_HASH bits or an
    embedding link (a copy keeps most of its keypoints; two unrelated photos share almost none)."""
    if not (feats[p[0]].textured and feats[p[1]].textured):
        return p in cand.signals
    return (cand.votes.get(p, 0.0) >= MIN_VOTES or "embedding" in cand.signals.get(p, ())
            or cand.thumb.get(p, -1.0) >= THUMB_WORTH or hamming_of(codes, *p) <= SURE_HASH)


def _star_order(walk: "_StarWalk", rank: np.ndarray, *, progress: bool) -> tuple[dict[Pair, Link], int]:
    """Verify, a wave of images at a time in keep-policy order (WAVE, then twice as many each time), each
    untaken image against its untaken neighbours, then the images its new duplicates reach against it (never
    duplicate against duplicate)."""
    from retrieval.progress import progress_bar
    order = [k for k in np.argsort(rank, kind="stable").tolist() if k in walk.nbrs]
    with progress_bar(len(order), desc="verifying", enabled=progress) as bar:
        start, size = 0, WAVE
        while start < len(order):
            walk.wave(order[start:start + size])
            bar.update(len(order[start:start + size]))
            start, size = start + size, 2 * size
    return walk.links, len(walk.done)


class _StarWalk:
    """The state of verification in star order: links found, pairs matched, images taken into a group."""

    def __init__(self, nbrs: dict[int, set[int]], links: dict[Pair, Link], codes: np.ndarray,
                 feats: Sequence[Any], thresholds: Any, workers: int | None,
                 verdicts: dict[str, list] | None = None, contents: Sequence[str | None] = (),
                 blobs: Sequence[bytes] | None = None, mapper: Any = None):
        self.nbrs, self.links, self.codes, self.feats = nbrs, links, codes, feats
        self.thresholds, self.workers, self.mapper = thresholds, workers, mapper
        self._blobs = blobs
        self.verdicts, self.contents = verdicts, contents
        self.taken: set[int] = set()
        self.done: set[Pair] = set()

    def _key(self, p: Pair) -> str | None:
        if self.verdicts is None or not self.contents[p[0]] or not self.contents[p[1]]:
            return None
        return "|".join(sorted((self.contents[p[0]], self.contents[p[1]])))

    def _record(self, p: Pair, reason: Reason, inliers: int | None) -> None:
        self.done.add(p)
        if reason.links or reason == Reason.UNTEXTURED:
            self.links[p] = Link(reason, hamming_of(self.codes, *p),
                                 inliers if reason in (Reason.VERIFIED, Reason.OTHER_SHOT) else None)

    def run(self, pairs: list[Pair]) -> None:
        """Decide the pairs not decided yet: from the stored verdicts, else matched over all cores; record
        each link (and each untextured pair)."""
        from retrieval.dedupe.verify import verify_pairs
        todo = []
        for p in sorted({p for p in pairs if p not in self.done and p not in self.links}):
            known = self.verdicts.get(self._key(p)) if self._key(p) else None
            if known is None:
                todo.append(p)
            else:
                self._record(p, Reason(known[0]), known[1])
        if not todo:
            return
        if self._blobs is None:  # made once: every round shares the same object
            from retrieval.dedupe.verify import feature_blobs
            self._blobs = feature_blobs(self.feats)
        for p, v in zip(todo, verify_pairs(todo, self.feats, blobs=self._blobs, thresholds=self.thresholds,
                                           workers=self.workers, mapper=self.mapper)):
            self._record(p, v.reason, v.inliers)
            if self._key(p):
                self.verdicts[self._key(p)] = [v.reason.value, v.inliers]

    def copy(self, a: int, b: int) -> bool:
        link = self.links.get(_pair(a, b))
        return link is not None and link.reason.kind in (Kind.EXACT, Kind.COPY)

    def wave(self, images: list[int]) -> None:
        wave = [a for a in images if a not in self.taken]
        self.run([_pair(a, b) for a in wave for b in self.nbrs[a] if b not in self.taken])
        stars = []
        for a in wave:
            if a not in self.taken:
                dups = [b for b in self.nbrs[a] if b not in self.taken and self.copy(a, b)]
                self.taken.update([a, *dups])
                stars.append((a, dups))
        # images a new duplicate reaches, that its kept image did not: verified against the kept image
        reach = [(a, c) for a, dups in stars for b in dups for c in self.nbrs[b]
                 if c not in self.taken and c not in self.nbrs[a]]
        self.run([_pair(a, c) for a, c in reach])
        self.taken.update(c for a, c in reach if self.copy(a, c))


def _pair(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


def grouping(items: Sequence[Item], links: dict[Pair, Link], low: dict[int, str], rank: np.ndarray, checked: int,
             opts: DedupeOptions, errors: Sequence[tuple[str, str]] = (),
             aliases: Sequence[tuple[str, str]] = ()) -> DedupeResult:
    """Stage 3: star groups of copies around the kept image, then similar groups of the kept images."""
    copies = sorted(p for p, link in links.items() if link.reason.kind in (Kind.EXACT, Kind.COPY))
    # verification checked every pair a star needs (an image a duplicate reaches against the kept image
    # too), so stars over its copy links are the groups it built
    stars = star_groups(len(items), edges_of(copies), rank)
    groups = sorted((_group(items, keep, dups, links) for keep, dups in stars), key=lambda g: g.keep.path)
    shot_links = _shot_links(links, stars, len(items))
    similar = sorted((_group(items, keep, dups, shot_links)
                      for keep, dups in star_groups(len(items), edges_of(shot_links), rank)),
                     key=lambda g: g.keep.path)
    unverified = sorted((Unverified(items[a], items[b], int(link.distance), UNTEXTURED)
                         for (a, b), link in links.items() if link.reason == Reason.UNTEXTURED),
                        key=lambda u: (u.a.path, u.b.path))
    low_info = sorted((LowInfo(items[k], r) for k, r in low.items()), key=lambda x: x.item.path)
    return DedupeResult(len(items), groups, opts, list(errors), list(aliases), low_info, unverified, checked,
                        [(items[a].path, items[b].path) for a, b in copies], similar,
                        [(items[a].path, items[b].path) for a, b in sorted(shot_links)])


def _shot_links(links: dict[Pair, Link], stars: list[tuple[int, list[int]]], n: int) -> dict[Pair, Link]:
    """Other-shot links between the kept images of different copy groups (each image stands for its group;
    the strongest link per pair of groups)."""
    rep = np.arange(n)
    for keep, dups in stars:
        rep[dups] = keep
    out: dict[Pair, Link] = {}
    for (a, b), link in links.items():
        if link.reason == Reason.OTHER_SHOT and rep[a] != rep[b]:
            p = _pair(int(rep[a]), int(rep[b]))
            if p not in out or (link.inliers or 0) > (out[p].inliers or 0):
                out[p] = link
    return out


def _group(items: Sequence[Item], keep: int, dups: Sequence[int], links: dict[Pair, Link]) -> Group:
    out = [Duplicate(items[m], links[_pair(m, keep)].distance, links[_pair(m, keep)].reason,
                     links[_pair(m, keep)].inliers) for m in dups]
    out.sort(key=lambda d: (d.distance, d.item.path))
    return Group(items[keep], tuple(out))
