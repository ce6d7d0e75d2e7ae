"""Geometric verification of candidate duplicate pairs with local features (OpenCV ORB + RANSAC).

Cheap signals (sha256, perceptual hashes at a loose radius, embedding neighbours) only propose pairs;
this module decides. Each image is decoded once (bounded decoding), turned grey, downscaled so its
longer side is ``SIDE`` pixels, and described by ORB keypoints. A pair is verified when enough ratio-test
matches agree with one similarity transform (rotation, uniform scale, translation) fitted by RANSAC
(``cv2.estimateAffinePartial2D``): at least ``min_inliers`` inliers that are at least ``min_ratio`` of
the ratio-test matches, with a sane scale, spread over the picture (or, for a picture whose corners lie
in one band, with the two images agreeing once warped by the fit). That survives crops (the kept part still matches), rotations,
rescaling, overlaid text (a few lost keypoints) and JPEG artefacts, while two different photos rarely
agree on one transform. Thresholds come from ``retr dedupe calibrate`` on labelled pairs
(benchmarks/dedupe_quality.py picks them on one set and reports on another).

Low-information images (flat, near-uniform, tiny) are flagged from the grey level spread and entropy and
never compared. A smooth picture with too few keypoints (a gradient wallpaper) is compared densely: its
small grey image is aligned onto the other's by ECC (an affine warp of plausible scale), and the pair is
"aligned" when both the aligned and the plain centre correlations are very high; otherwise the pair is
reported as unverified, not merged.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
from typing import Iterable, Iterator, Sequence

import numpy as np

from retrieval.images.decode import ImageLoadError, decode_sized, read_bytes
from retrieval.progress import progress_bar
from retrieval.workers import process_pool_workers

SIDE = 512  # longer side of the grey image keypoints are found on
N_FEATURES = 1000
RATIO = 0.8  # Lowe's ratio test
FAST_THRESHOLD = 10  # ORB's corner threshold (grey levels) ...
FAST_THRESHOLD_SMOOTH = 3  # ... and for an image that yields fewer than FEW_KEYPOINTS with it
FEW_KEYPOINTS = 300
MIN_SIDE = 32  # smaller images (pixels, shorter side) are too small to tell apart
MIN_STD = 6.0  # grey-level standard deviation (0..255) below which an image is near-uniform
MIN_ENTROPY = 2.0  # bits of the grey-level histogram below which an image is flat (few levels)
MIN_KEYPOINTS = 25  # fewer keypoints: too little texture to verify a pair
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
# (calibration half of benchmarks/dedupe_quality.py, candidate pairs with a smooth side: 30 copies reach ECC
# 0.9993-0.9999 and centre correlation 0.992-1.0; the other pairs at most ECC 0.952 and correlation 0.70)
CAMERA_TAGS = (0x010F, 0x0110)  # EXIF Make, Model


@dataclasses.dataclass(frozen=True)
class VerifyThresholds:
    """When a pair is verified: inliers of one similarity transform, and their share of the matches."""

    min_inliers: int = 10
    min_ratio: float = 0.15
    reproj: float = 3.0  # RANSAC reprojection threshold, pixels on the SIDE-pixel image


DEFAULT_THRESHOLDS = VerifyThresholds()


@dataclasses.dataclass(frozen=True)
class Features:
    path: str
    points: np.ndarray  # float32 [n, 2], on the downscaled image
    descriptors: np.ndarray  # uint8 [n, 32]
    std: float
    entropy: float
    width: int  # full resolution
    height: int
    camera: bool  # EXIF names a camera make or model (an original rather than an edited re-save)
    error: str | None = None
    shape: tuple[int, int] = (0, 0)  # (height, width) of the downscaled grey image the points lie on
    small: np.ndarray | None = None  # uint8 [ALIGN_SIDE, ALIGN_SIDE] grey image, for smooth pictures

    @property
    def low_info(self) -> str | None:
        """Why this image holds too little to compare (flat, near-uniform, tiny), or None."""
        if self.error is not None:
            return None
        if min(self.width, self.height) < MIN_SIDE:
            return f"tiny ({self.width}x{self.height})"
        if self.textured:  # a dark photo (a night sky) has a low spread but plenty of keypoints
            return None
        if self.std < MIN_STD:
            return f"near-uniform (grey std {self.std:.1f})"
        if self.entropy < MIN_ENTROPY:
            return f"flat (entropy {self.entropy:.2f} bits)"
        return None

    @property
    def textured(self) -> bool:
        return self.error is None and len(self.points) >= MIN_KEYPOINTS


@dataclasses.dataclass(frozen=True)
class Verdict:
    verified: bool
    inliers: int
    matches: int
    reason: str  # verified | aligned (smooth, dense check) | rejected | untextured (too few keypoints) | error
    correlation: float | None = None  # the dense check's ECC correlation, when it ran

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0


def _camera(data: bytes) -> bool:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            return any(str(exif.get(tag) or "").strip() for tag in CAMERA_TAGS)
    except Exception:  # noqa: BLE001 - EXIF is a hint; an unreadable block means "no camera data"
        return False


def grey_stats(grey: np.ndarray) -> tuple[float, float]:
    """(standard deviation, histogram entropy in bits) of a uint8 grey image."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(grey.std()), float(-(p * np.log2(p)).sum())


def features_of_bytes(data: bytes, path: str = "") -> Features:
    import cv2
    try:
        img, width, height = decode_sized(data, draft_size=SIDE // 2)
    except ImageLoadError as exc:
        return Features(path, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), 0.0, 0.0, 0, 0, False,
                        str(exc))
    grey = np.asarray(img.convert("L"))
    scale = SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    std, entropy = grey_stats(grey)
    kps, desc = _orb(grey, FAST_THRESHOLD)
    if len(kps) < FEW_KEYPOINTS:  # a smooth picture (a gradient wallpaper, a faint nebula): lower the bar
        kps, desc = _orb(grey, FAST_THRESHOLD_SMOOTH)
    desc = desc if desc is not None else np.zeros((0, 32), np.uint8)
    strongest = np.argsort([-k.response for k in kps], kind="stable")  # keypoint candidates use the first
    points = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)[strongest]
    desc = desc[strongest] if len(desc) else desc
    small = cv2.resize(grey, (ALIGN_SIDE, ALIGN_SIDE), interpolation=cv2.INTER_AREA)
    return Features(path, points, desc, std, entropy, width, height, _camera(data), shape=grey.shape[:2],
                    small=small)


def _orb(grey: np.ndarray, fast_threshold: int):
    import cv2
    orb = cv2.ORB_create(nfeatures=N_FEATURES, edgeThreshold=15, patchSize=31, fastThreshold=fast_threshold)
    return orb.detectAndCompute(grey, None)


def features_of(path: str) -> Features:
    try:
        data = read_bytes(path)
    except ImageLoadError as exc:
        return Features(path, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), 0.0, 0.0, 0, 0, False,
                        str(exc))
    return features_of_bytes(data, path)


THUMB = 24  # side of the grey thumbnail descriptor
THUMB_CENTRE = 0.8  # share of each side kept (the centre survives crops; rotated corners are left out)
THUMB_BLUR = 1.0  # Gaussian sigma (thumbnail pixels): small shifts and rotations barely move the descriptor


def thumbnail_of(path: str) -> np.ndarray | None:
    """A cheap global descriptor for candidates: the blurred grey centre of the image at THUMB x THUMB,
    zero-mean and L2-normalised (robust to brightness, contrast, compression and small crops or turns);
    None when the file cannot be read, all zeros for a flat image."""
    import cv2
    try:
        img = decode_sized(read_bytes(path), draft_size=64)[0]
    except ImageLoadError:
        return None
    grey = np.asarray(img.convert("L"), np.float32)
    h, w = grey.shape
    dy, dx = int(h * (1 - THUMB_CENTRE) / 2), int(w * (1 - THUMB_CENTRE) / 2)
    grey = cv2.resize(grey[dy:h - dy or h, dx:w - dx or w], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    grey = cv2.GaussianBlur(grey, (0, 0), THUMB_BLUR)
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return (grey / norm if norm > 1e-3 else np.zeros_like(grey)).ravel()


def compute_thumbnails(paths: Sequence[str], *, workers: int | None = None,
                       progress: bool = False) -> np.ndarray:
    """Thumbnail descriptors of ``paths`` (float32 [n, THUMB*THUMB]; zeros where unreadable), over threads."""
    out = np.zeros((len(paths), THUMB * THUMB), np.float32)
    with progress_bar(len(paths), desc="candidates: thumbnails", enabled=progress) as bar:
        with cf.ThreadPoolExecutor(_threads(workers, len(paths))) as pool:
            for k, t in enumerate(pool.map(thumbnail_of, paths)):
                if t is not None:
                    out[k] = t
                bar.update(1)
    return out


def _threads(workers: int | None, n: int) -> int:
    # OpenCV and Pillow release the GIL while they decode, detect and match: threads use every core
    # without pickling descriptors between processes
    return max(1, min(process_pool_workers() if workers is None else int(workers), n))


def compute_features(paths: Sequence[str], *, workers: int | None = None,
                     progress: bool = False) -> dict[str, Features]:
    """Features of each path, computed over ``workers`` threads."""
    out: dict[str, Features] = {}
    with progress_bar(len(paths), desc="verifying: features", enabled=progress) as bar:
        with cf.ThreadPoolExecutor(_threads(workers, len(paths))) as pool:
            for f in pool.map(features_of, paths):
                out[f.path] = f
                bar.update(1)
    return out


def verify(a: Features, b: Features, th: VerifyThresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """Do ``a`` and ``b`` show the same picture (up to crop, rotation, scale, overlay, compression)?"""
    import cv2
    if a.error or b.error:
        return Verdict(False, 0, 0, "error")
    if not (a.textured and b.textured):
        return _aligned(a, b)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = [m[0] for m in matcher.knnMatch(a.descriptors, b.descriptors, k=2)
            if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < max(4, th.min_inliers):
        return Verdict(False, 0, len(good), "rejected")
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=th.reproj,
                                              maxIters=2000, confidence=0.99)
    if model is None or mask is None:
        return Verdict(False, 0, len(good), "rejected")
    keep = mask.ravel().astype(bool)
    # distinct points on each side: two different photos "agree" on a degenerate transform that maps
    # many keypoints onto one point (scale near 0); a copy's inliers spread over the picture
    inliers = min(_distinct(src[keep]), _distinct(dst[keep]))
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    ok = (inliers >= th.min_inliers and inliers >= th.min_ratio * len(good)
          and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
          and _spread_ok(min(_cover(src[keep], a.shape), _cover(dst[keep], b.shape)), a, b, model))
    return Verdict(ok, inliers, len(good), "verified" if ok else "rejected")


def _distinct(points: np.ndarray) -> int:
    return len(np.unique(np.round(points).astype(np.int32), axis=0)) if len(points) else 0


def _spread_ok(cover: float, a: Features, b: Features, model: np.ndarray) -> bool:
    if cover >= MIN_COVER:
        return True
    return cover >= MIN_COVER_WARPED and warped_correlation(a, b, model) >= MIN_WARPED


def warped_correlation(a: Features, b: Features, model: np.ndarray) -> float:
    """Correlation of ``a``'s small grey image with ``b``'s warped into its frame by ``model`` (2x3, from
    ``a``'s keypoint coordinates to ``b``'s), over the part both cover; -1 when they overlap too little."""
    import cv2
    if a.small is None or b.small is None or not all(a.shape) or not all(b.shape):
        return -1.0
    to_a = np.diag([ALIGN_SIDE / a.shape[1], ALIGN_SIDE / a.shape[0], 1.0])
    to_b = np.diag([ALIGN_SIDE / b.shape[1], ALIGN_SIDE / b.shape[0], 1.0])
    full = to_b @ np.vstack([model, [0, 0, 1]]) @ np.linalg.inv(to_a)  # small a -> small b
    size = (ALIGN_SIDE, ALIGN_SIDE)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(b.small.astype(np.float32), full[:2], size, flags=flags)
    inside = cv2.warpAffine(np.ones_like(b.small, np.float32), full[:2], size, flags=flags) > 0.99
    if inside.mean() < 0.5:
        return -1.0
    x = cv2.GaussianBlur(a.small.astype(np.float32), (0, 0), 1.0)[inside]
    y = cv2.GaussianBlur(warped, (0, 0), 1.0)[inside]
    return _correlation(x, y)


def _aligned(a: Features, b: Features) -> Verdict:
    """The dense check for a pair too smooth for keypoints: "aligned" when the centre of each small grey
    image, warped by ECC onto the other, correlates at least MIN_ALIGNED and the images correlate at least
    MIN_GLOBAL as they are; "untextured" otherwise (reported, never merged). Low-information images never
    get here (the caller drops them first)."""
    if a.small is None or b.small is None or a.low_info or b.low_info:
        return Verdict(False, 0, 0, "untextured")
    m = int(round(ALIGN_SIDE * ALIGN_MARGIN))
    glob = _correlation(a.small[m:-m, m:-m], b.small[m:-m, m:-m])  # centres: rotated corners left out
    if glob < MIN_GLOBAL:
        return Verdict(False, 0, 0, "untextured", round(glob, 4))
    cc = min(1.0, max(_ecc(a.small, b.small), _ecc(b.small, a.small)))
    ok = cc >= MIN_ALIGNED
    return Verdict(ok, 0, 0, "aligned" if ok else "untextured", round(cc, 4))


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


def verify_pairs(pairs: Sequence[tuple[int, int]], feats: Sequence[Features], *,
                 thresholds: VerifyThresholds = DEFAULT_THRESHOLDS, workers: int | None = None,
                 progress: bool = False) -> Iterator[Verdict]:
    """Verdicts for ``pairs`` of positions into ``feats``, in input order, over ``workers`` threads."""
    def one(pair: tuple[int, int]) -> Verdict:
        return verify(feats[pair[0]], feats[pair[1]], thresholds)
    with progress_bar(len(pairs), desc="verifying: pairs", enabled=progress) as bar:
        with cf.ThreadPoolExecutor(_threads(workers, len(pairs))) as pool:
            for v in pool.map(one, pairs, chunksize=1):
                bar.update(1)
                yield v


def pair_list(i: Iterable[int], j: Iterable[int]) -> list[tuple[int, int]]:
    """Unique unordered pairs (smaller position first), self-pairs dropped, sorted."""
    return sorted({(min(a, b), max(a, b)) for a, b in zip(i, j) if a != b})
