"""Verifying a candidate pair with local features (ORB + RANSAC), then telling an edited copy from another
shot of the same scene.

Cheap signals only propose pairs; this module decides, from each image's features
(retrieval.dedupe.features: ORB keypoints on a grey image of SIDE pixels, a small grey image). A pair fits
one picture when enough ratio-test matches agree with one similarity transform (rotation, uniform scale,
translation) fitted by RANSAC (``cv2.estimateAffinePartial2D``): at least ``min_inliers`` inliers that are
at least ``min_ratio`` of the matches, with a sane scale, spread over the picture (or, for a picture whose
corners lie in one band, with the two images agreeing once warped by the fit). Two different photos rarely
agree on one transform. Thresholds come from ``retr dedupe calibrate`` on labelled pairs
(benchmarks/dedupe_quality.py picks them on one set and reports on another).

Then the kind: aligned by that transform, an edited copy agrees with its original over nearly all of
their overlap (``disagreement``), or differs one-sidedly where an overlay was added; another shot of the
scene differs where something moved or where parallax shifts near objects against far ones: reason
``other shot`` (kind similar) instead of ``verified`` (kind copy).

A smooth picture with too few keypoints (a gradient wallpaper) is compared densely: its small grey image is
aligned onto the other's by ECC (an affine warp of plausible scale), and the pair is "aligned" when both
the aligned and the plain centre correlations are very high; otherwise the pair is reported as
unverified, not merged. Low-information images never get here (the finder drops them first).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterable, Iterator, Sequence

import numpy as np

from retrieval.dedupe.features import Features
from retrieval.dedupe.reasons import Reason
from retrieval.progress import progress_bar

RATIO = 0.8  # Lowe's ratio test
SCALE_RANGE = (0.2, 5.0)  # a fitted scale outside this is not a plausible copy
# inliers bunched along a line or in one spot prove nothing: two photos carrying the same watermark text
# agree on it (one line of glyphs: about 0.03 of the height), and a degenerate fit maps many points onto one
MIN_COVER = 0.05
# ... or at least MIN_COVER_WARPED when the pictures themselves agree: warped by the fitted transform, the
# small grey images correlate at least MIN_WARPED over their overlap (a band of a landscape, a horizon, holds
# all the corners of a copy; two photos sharing a watermark agree on its glyphs, not on the rest). Calibration
# half of benchmarks/dedupe_quality.py, pairs with a spread of 0.03-0.05: copies of banded pictures 0.97-1.0,
# other pairs at most 0.90
MIN_COVER_WARPED = 0.03
MIN_WARPED = 0.95
# smooth pictures (too few keypoints on either side) are compared densely instead: the grey image at
# ALIGN_SIDE x ALIGN_SIDE (aspect ignored), its centre aligned onto the other by ECC (an affine warp), both ways
ALIGN_SIDE = 96
ALIGN_MARGIN = 0.15  # share of each side left out of the template (crops and rotated corners)
ALIGN_SCALES = (0.5, 2.0)  # a plausible ECC warp scales the template by this much at most, either way
MIN_ALIGNED = 0.997  # ECC correlation after alignment ...
MIN_GLOBAL = 0.95  # ... and plain correlation of the two images' centres, both required
# copy or other shot: the aligned small grey images compared block by block (BLOCK x BLOCK pixels of the
# SMALL-pixel image, blurred by BLOCK_BLUR); a textured block (grey std >= BLOCK_MIN_STD on either side)
# differs when its patterns correlate below BLOCK_MIN_NCC or one side is far flatter (std ratio below
# BLOCK_MIN_CONTRAST)
BLOCK = 8
BLOCK_BLUR = 1.0
BLOCK_MIN_STD = 4.0
BLOCK_MIN_NCC = 0.5
BLOCK_MIN_CONTRAST = 0.35
MIN_BLOCKS = 8
PAD_STD = 1.5  # grey levels: a turn's fill (after JPEG) is flatter than this over 3x3 pixels
PAD_GROW = 3
PAD_BAND = 0.12  # of each side: the corners a turn of up to about 8 degrees fills
# a verified pair is an edited copy when at most MAX_DISAGREE of the blocks differ, or at most MAX_OVERLAY
# and the differences are one-sided (at least MIN_ONE_SIDED: an overlay); else another shot of the scene.
# Calibration half of benchmarks/dedupe_quality.py (pairs that keypoints verify): copies differ in a median
# 0 of blocks, those with text in 0.13 but at one-sidedness 1.0 (25th percentile 0.88); other shots (video
# frames 0.5-1 s apart) differ in 0.03-0.63, one-sided at most 0.36 in three of four
MAX_DISAGREE = 0.03
MAX_OVERLAY = 0.5
MIN_ONE_SIDED = 0.9
MIN_ONE_SIDED_BLOCKS = 10
# ... or every differing block lies in one band of rows LINE_HEIGHT of the picture tall, at most MAX_LINE of the
# blocks: a line of text over a busy picture, where the busier side changes from block to block. Calibration
# half of benchmarks/dedupe_quality.py (its copies and its video frames, every pair of versions): of the
# choices that take at most one pair of other shots, the one that misses the fewest copies (21)
LINE_HEIGHT = 0.15
MAX_LINE = 0.3
# (calibration half of benchmarks/dedupe_quality.py, candidate pairs with a smooth side: 30 copies reach ECC
# 0.9993-0.9999 and centre correlation 0.992-1.0; the other pairs at most ECC 0.952 and correlation 0.70)


@dataclasses.dataclass(frozen=True)
class VerifyThresholds:
    """When a pair is verified: inliers of one similarity transform, and their share of the matches."""

    min_inliers: int = 10
    min_ratio: float = 0.15
    reproj: float = 3.0  # RANSAC reprojection threshold, pixels on the SIDE-pixel image


DEFAULT_THRESHOLDS = VerifyThresholds()


@dataclasses.dataclass(frozen=True)
class Verdict:
    reason: Reason  # verified | aligned | other shot | rejected | untextured | error
    inliers: int = 0
    matches: int = 0
    correlation: float | None = None  # the dense check's ECC correlation, when it ran
    disagree: float | None = None  # share of the aligned pictures' textured blocks that differ, when it ran

    @property
    def verified(self) -> bool:
        """The two show one picture (an edited copy)."""
        return self.reason in (Reason.VERIFIED, Reason.ALIGNED)

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    """(a's keypoints, b's) of the matches that pass Lowe's ratio test: the two nearest descriptors of each
    of a's by Hamming distance (a faiss binary flat search: several times OpenCV's brute-force matcher)."""
    import faiss
    if len(a.descriptors) == 0 or len(b.descriptors) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = faiss.IndexBinaryFlat(8 * a.descriptors.shape[1])
    index.add(np.ascontiguousarray(b.descriptors))
    dist, nn = index.search(np.ascontiguousarray(a.descriptors), 2)
    ok = (nn[:, 1] >= 0) & (dist[:, 0] < RATIO * dist[:, 1])
    return np.flatnonzero(ok), nn[ok, 0]


def verify(a: Features, b: Features, th: VerifyThresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """Do ``a`` and ``b`` show the same picture (up to crop, rotation, scale, overlay, compression), another
    shot of the same scene, or neither?"""
    import cv2
    if a.error or b.error:
        return Verdict(Reason.ERROR)
    if not (a.textured and b.textured):
        return _aligned(a, b)
    qa, qb = _matches(a, b)
    if len(qa) < max(4, th.min_inliers):
        return Verdict(Reason.REJECTED, 0, len(qa))
    good = qa
    src, dst = a.points[qa], b.points[qb]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=th.reproj,
                                              maxIters=2000, confidence=0.99)
    if model is None or mask is None:
        return Verdict(Reason.REJECTED, 0, len(good))
    keep = mask.ravel().astype(bool)
    # distinct points on each side: two different photos "agree" on a degenerate transform that maps
    # many keypoints onto one point (scale near 0); a copy's inliers spread over the picture
    inliers = min(_distinct(src[keep]), _distinct(dst[keep]))
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    ok = (inliers >= th.min_inliers and inliers >= th.min_ratio * len(good)
          and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
          and _spread_ok(min(_cover(src[keep], a.shape), _cover(dst[keep], b.shape)), a, b, model))
    if not ok:
        return Verdict(Reason.REJECTED, inliers, len(good))
    diff = disagreement(a, b, model)
    # too few textured blocks to compare one by one (a faint paper texture, a dark sky): the whole overlap
    # must agree instead
    same = diff.same_picture if diff.share is not None else warped_correlation(a, b, model) >= MIN_WARPED
    return Verdict(Reason.VERIFIED if same else Reason.OTHER_SHOT, inliers, len(good),
                   disagree=None if diff.share is None else round(diff.share, 4))


def _distinct(points: np.ndarray) -> int:
    """Distinct points once rounded to whole pixels (one key per point: a 1-D unique is 10x one by rows)."""
    if not len(points):
        return 0
    r = np.round(points).astype(np.int64)
    return len(np.unique(r[:, 0] * 1_000_003 + r[:, 1]))


def _spread_ok(cover: float, a: Features, b: Features, model: np.ndarray) -> bool:
    if cover >= MIN_COVER:
        return True
    return cover >= MIN_COVER_WARPED and warped_correlation(a, b, model) >= MIN_WARPED


def _warp_to_a(a: Features, b: Features, model: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(a's small grey image, b's warped into its frame by ``model`` (2x3, from a's keypoint coordinates to
    b's), the mask of pixels b covers), all float32; None when a side has no small image."""
    import cv2
    if a.small is None or b.small is None or not all(a.shape) or not all(b.shape):
        return None
    to_a = np.diag([a.small.shape[1] / a.shape[1], a.small.shape[0] / a.shape[0], 1.0])
    to_b = np.diag([b.small.shape[1] / b.shape[1], b.small.shape[0] / b.shape[0], 1.0])
    full = to_b @ np.vstack([model, [0, 0, 1]]) @ np.linalg.inv(to_a)  # small a -> small b
    size = (a.small.shape[1], a.small.shape[0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(b.small.astype(np.float32), full[:2], size, flags=flags)
    content = (~_padding(b.small)).astype(np.float32)
    inside = (cv2.warpAffine(content, full[:2], size, flags=flags) > 0.99) & ~_padding(a.small)
    return a.small.astype(np.float32), warped, inside


_PADDING: dict[int, tuple[np.ndarray, np.ndarray]] | None = None  # while a task runs: id of a small grey image -> (it, its padding)


def _padding(grey: np.ndarray) -> np.ndarray:
    """The fill a turn or a crop left at a picture's frame: flat pixels (local grey spread under PAD_STD)
    connected to the border and within PAD_BAND of it, widened by PAD_GROW pixels to cover the edge they make
    with the picture. A turned copy of a cropped picture has black corners where its original shows the
    scene; they say nothing of whether the two are one picture. Kept per image while a task runs."""
    got = _PADDING.get(id(grey)) if _PADDING is not None else None
    if got is not None and got[0] is grey:
        return got[1]
    import cv2
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (3, 3))
    flat = (cv2.blur(g * g, (3, 3)) - mean * mean < PAD_STD * PAD_STD).astype(np.uint8)
    h, w = grey.shape
    bh, bw = max(1, int(PAD_BAND * h)), max(1, int(PAD_BAND * w))
    band = np.ones_like(flat)
    band[bh:h - bh, bw:w - bw] = 0
    n, labels = cv2.connectedComponents(flat & band, connectivity=4)
    pad = np.zeros(grey.shape, bool)
    if n > 1:
        touching = np.zeros(n, bool)
        touching[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
        touching[0] = False
        pad = touching[labels]
        if pad.any():
            pad = cv2.dilate(pad.astype(np.uint8), np.ones((2 * PAD_GROW + 1, 2 * PAD_GROW + 1), np.uint8)) > 0
    if _PADDING is not None:
        _PADDING[id(grey)] = (grey, pad)
    return pad


def warped_correlation(a: Features, b: Features, model: np.ndarray) -> float:
    """Correlation of ``a``'s small grey image with ``b``'s warped into its frame by ``model``, over the
    part both cover; -1 when they overlap too little."""
    import cv2
    got = _warp_to_a(a, b, model)
    if got is None or got[2].mean() < 0.5:
        return -1.0
    x, y, inside = got
    return _correlation(cv2.GaussianBlur(x, (0, 0), 1.0)[inside], cv2.GaussianBlur(y, (0, 0), 1.0)[inside])


@dataclasses.dataclass(frozen=True)
class Difference:
    """Where two aligned pictures differ, block by block (``disagreement``)."""

    share: float | None  # of the textured blocks of the overlap, those that differ (None: too few to tell)
    one_sided: float = 1.0  # 1 when the same side is the busier one in every differing block
    blocks: int = 0  # differing blocks
    outside_line: int = 0  # differing blocks outside the band of rows (LINE_HEIGHT of the picture) holding most

    @property
    def overlay(self) -> bool:
        """The differences look like something laid over one picture: one-sided over at least
        MIN_ONE_SIDED_BLOCKS blocks, or all in one thin band (a caption, a line of text)."""
        if self.share is None or self.share > MAX_OVERLAY:
            return False
        if self.one_sided >= MIN_ONE_SIDED and self.blocks >= MIN_ONE_SIDED_BLOCKS:
            return True
        return self.share <= MAX_LINE and self.outside_line == 0

    @property
    def same_picture(self) -> bool:
        """An edited copy: nearly no difference, or an overlay."""
        return self.share is not None and (self.share <= MAX_DISAGREE or self.overlay)


def disagreement(a: Features, b: Features, model: np.ndarray) -> Difference:
    """Where ``a`` and ``b``, aligned by ``model``, differ: the share of the textured blocks of the overlap
    that differ, how one-sided those differences are (1 when the same side is the busier one in every
    differing block), and the shape of the largest connected patch of them.

    An edited copy agrees with its original over nearly all of their overlap once aligned: a tone change,
    recompression or blur keeps every block's pattern (normalised correlation is blind to gain and offset).
    An overlay (text, a logo) adds structure to one side only, in one place: where they differ the same side
    is busier, or the differences lie in one line-shaped patch. Another shot of the scene differs where
    something moved (the subject leaves one place and arrives at another: each side is the busier one
    somewhere) and where parallax shifts near objects against far ones (a similarity fit aligns one depth
    only). The fill that a turn leaves at a picture's frame is left out (``_padding``).
    """
    import cv2
    got = _warp_to_a(a, b, model)
    if got is None:
        return Difference(None)
    x, y, inside = got
    x, y = cv2.GaussianBlur(x, (0, 0), BLOCK_BLUR), cv2.GaussianBlur(y, (0, 0), BLOCK_BLUR)
    gh, gw = x.shape[0] // BLOCK, x.shape[1] // BLOCK
    if not gh or not gw:
        return Difference(None)

    def blocks(z: np.ndarray) -> np.ndarray:
        return z[:gh * BLOCK, :gw * BLOCK].reshape(gh, BLOCK, gw, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK * BLOCK)
    bx, by, bin_ = blocks(x), blocks(y), blocks(inside.astype(np.float32))
    bx = bx - bx.mean(axis=1, keepdims=True)
    by = by - by.mean(axis=1, keepdims=True)
    sx, sy = np.sqrt((bx * bx).mean(axis=1)), np.sqrt((by * by).mean(axis=1))
    # blocks wholly inside the overlap; a flat patch (sky, wall) tells nothing either way
    textured = (bin_.min(axis=1) > 0.5) & (np.maximum(sx, sy) >= BLOCK_MIN_STD)
    if textured.sum() < MIN_BLOCKS:
        return Difference(None)
    ncc = (bx * by).mean(axis=1) / np.maximum(sx * sy, 1e-6)
    # a block agrees when its patterns correlate and neither side is far flatter than the other
    differ = textured & ((ncc < BLOCK_MIN_NCC) | (np.minimum(sx, sy) < BLOCK_MIN_CONTRAST * np.maximum(sx, sy)))
    if not differ.any():
        return Difference(0.0)
    busier = np.sign(np.log((sy[differ] + 1.0) / (sx[differ] + 1.0)))
    rows = min(gh, max(1, int(LINE_HEIGHT * gh + 0.5)))
    per_band = np.convolve(differ.reshape(gh, gw).sum(axis=1), np.ones(rows, np.int64), "valid")
    return Difference(float(differ.sum() / textured.sum()), float(abs(busier.mean())), int(differ.sum()),
                      int(differ.sum() - per_band.max()))


def _square(f: Features) -> np.ndarray:
    import cv2
    return cv2.resize(f.small, (ALIGN_SIDE, ALIGN_SIDE), interpolation=cv2.INTER_AREA)


def _aligned(a: Features, b: Features) -> Verdict:
    """The dense check for a pair too smooth for keypoints: "aligned" when the centre of each small grey
    image, warped by ECC onto the other, correlates at least MIN_ALIGNED and the images correlate at least
    MIN_GLOBAL as they are; "untextured" otherwise (reported, never merged). Low-information images never
    get here (the caller drops them first)."""
    if a.small is None or b.small is None or a.low_info or b.low_info:
        return Verdict(Reason.UNTEXTURED)
    sa, sb = _square(a), _square(b)
    m = int(round(ALIGN_SIDE * ALIGN_MARGIN))
    glob = _correlation(sa[m:-m, m:-m], sb[m:-m, m:-m])  # centres: rotated corners left out
    if glob < MIN_GLOBAL:
        return Verdict(Reason.UNTEXTURED, correlation=round(glob, 4))
    cc = min(1.0, max(_ecc(sa, sb), _ecc(sb, sa)))
    return Verdict(Reason.ALIGNED if cc >= MIN_ALIGNED else Reason.UNTEXTURED, correlation=round(cc, 4))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float32).ravel() - x.mean()
    y = y.astype(np.float32).ravel() - y.mean()
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / norm if norm > 1e-6 else 0.0


def _ecc(template: np.ndarray, image: np.ndarray) -> float:
    """ECC correlation of ``template``'s centre warped (affine) onto ``image``; -1 when it does not converge."""
    import cv2
    m = int(round(ALIGN_SIDE * ALIGN_MARGIN))
    centre = template[m:ALIGN_SIDE - m, m:ALIGN_SIDE - m].astype(np.float32)
    warp = np.array([[1, 0, m], [0, 1, m]], np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    try:
        cc, warp = cv2.findTransformECC(centre, image.astype(np.float32), warp, cv2.MOTION_AFFINE, criteria, None,
                                        5)
    except cv2.error:  # no convergence (or a flat template): not aligned
        return -1.0
    # a warp that shrinks the template onto a patch (or stretches it) "aligns" anything smooth
    sv = np.linalg.svd(warp[:, :2], compute_uv=False)
    return float(cc) if ALIGN_SCALES[0] <= sv.min() and sv.max() <= ALIGN_SCALES[1] else -1.0


def _cover(points: np.ndarray, shape: tuple[int, int]) -> float:
    """How far the inliers spread: the smaller of their standard deviations along x and y, each as a share
    of the image's width and height (0.29 for points spread evenly over the whole picture)."""
    if len(points) < 2 or not shape[0] or not shape[1]:
        return 0.0
    sx, sy = points.std(axis=0)
    return float(min(sx / shape[1], sy / shape[0]))


PAIR_CHUNK = 64  # pairs per verification task


def feature_blobs(feats: Sequence[Features]) -> list[bytes]:
    """The stored form of each image's features (``Features.to_bytes``): what verification tasks share."""
    return [f.to_bytes() for f in feats]


def _verify_chunk(shared: tuple[Sequence[bytes], VerifyThresholds], pairs: Sequence[tuple[int, int]]) -> list[Verdict]:
    """One task of ``verify_pairs`` (top level: a worker process calls it): ``shared`` holds every image's
    feature blob once, a task only positions into it."""
    blobs, th = shared
    cache: dict[int, Features] = {}

    def feat(k: int) -> Features:
        if k not in cache:
            cache[k] = Features.from_bytes(blobs[k], "", None, None, None)
        return cache[k]
    global _PADDING
    _PADDING = {}
    try:
        with single_threaded():
            return [verify(feat(a), feat(b), th) for a, b in pairs]
    finally:
        _PADDING = None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """OpenCV and faiss on one thread for the block (tasks run in parallel; each small fit and search stays
    on its core), as they were after it."""
    import cv2
    import faiss
    cv, omp = cv2.getNumThreads(), faiss.omp_get_max_threads()
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv)
        faiss.omp_set_num_threads(omp)


def verify_pairs(pairs: Sequence[tuple[int, int]], feats: Sequence[Features] | None = None, *,
                 blobs: Sequence[bytes] | None = None, thresholds: VerifyThresholds = DEFAULT_THRESHOLDS,
                 workers: int | None = None, progress: bool = False, mapper=None) -> Iterator[Verdict]:
    """Verdicts for ``pairs`` of positions into ``feats`` (or their stored ``blobs``, which are shared as they
    are), in input order: chunks of PAIR_CHUNK pairs through ``mapper`` (default
    retrieval.workers.ordered_map over ``workers`` processes; None: one per core)."""
    from retrieval.dedupe.features import processes
    from retrieval.workers import ordered_map
    if not pairs:
        return
    if blobs is None:
        blobs = feature_blobs(feats)
    chunks = [(list(pairs[k:k + PAIR_CHUNK]),) for k in range(0, len(pairs), PAIR_CHUNK)]
    with progress_bar(len(pairs), desc="verifying: pairs", enabled=progress) as bar:
        for got in (mapper or ordered_map)(_verify_chunk, chunks, shared=(blobs, thresholds),
                                           workers=processes(workers, len(chunks))):
            bar.update(len(got))
            yield from got


def pair_list(i: Iterable[int], j: Iterable[int]) -> list[tuple[int, int]]:
    """Unique unordered pairs (smaller position first), self-pairs dropped, sorted."""
    return sorted({(min(a, b), max(a, b)) for a, b in zip(i, j) if a != b})
