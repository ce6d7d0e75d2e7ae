"""Per-image dedupe features, computed once from one read and one reduced-size decode of each file.

One pass gives everything the later stages need: the sha256 and size (exact copies), the perceptual hash
(hash candidates), a blurred grey thumbnail (thumbnail candidates), ORB keypoints and descriptors on a grey
image of ``SIDE`` pixels (keypoint candidates and verification), a small grey image (the dense checks), the
grey-level spread and entropy (low-information images) and whether EXIF names a camera (the keep policy).
JPEGs are decoded at reduced scale (PIL draft mode): nothing here looks at more than ``SIDE`` pixels.

``Features.to_bytes`` / ``from_bytes`` are the form the catalog stores (index.catalog.features), so a
second run over an unchanged catalog decodes nothing; ``RECIPE`` names this recipe, and features made by
another recipe are computed again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
from typing import Callable, Iterator, Sequence

import numpy as np

from retrieval.dedupe.hashers import get_hasher
from retrieval.images.decode import ImageLoadError, decode_sized, read_bytes
from retrieval.progress import progress_bar
from retrieval.workers import process_pool_workers

RECIPE = "orb384-grid-v2"  # changes whenever what is computed below changes
SIDE = 384  # longer side of the grey image keypoints are found on
N_FEATURES = 500
DETECT = 1500  # corners detected, of which N_FEATURES are kept spread over a GRID x GRID grid
GRID = 4
LEVELS = 5
FAST_THRESHOLD = 10  # ORB's corner threshold (grey levels) ...
FAST_THRESHOLD_SMOOTH = 3  # ... and for an image that yields fewer than FEW_KEYPOINTS with it
FEW_KEYPOINTS = 150
SMALL = 128  # longer side of the small grey image the dense checks compare
THUMB = 24  # side of the grey thumbnail descriptor
THUMB_CENTRE = 0.8  # share of each side kept (the centre survives crops; rotated corners are left out)
THUMB_BLUR = 1.0  # Gaussian sigma (thumbnail pixels): small shifts and rotations barely move the descriptor
MIN_SIDE = 32  # smaller images (pixels, shorter side) are too small to tell apart
MIN_STD = 6.0  # grey-level standard deviation (0..255) below which an image is near-uniform
MIN_ENTROPY = 2.0  # bits of the grey-level histogram below which an image is flat (few levels)
MIN_KEYPOINTS = 25  # fewer keypoints: too little texture to verify a pair with keypoints
CAMERA_TAGS = (0x010F, 0x0110)  # EXIF Make, Model


@dataclasses.dataclass(frozen=True)
class FeatureJob:
    """Which perceptual hash to compute alongside (picklable; the hasher comes from its registry name)."""

    hash: str = "phash"
    hash_size: int = 8


@dataclasses.dataclass(frozen=True)
class Features:
    path: str
    sha256: str | None
    bytes: int | None
    width: int  # full resolution (0 when the file could not be decoded)
    height: int
    bits: bytes | None  # the packed perceptual hash
    thumb: np.ndarray | None  # float32 [THUMB * THUMB], zero-mean and L2-normalised (all zeros: flat)
    points: np.ndarray  # float32 [n, 2] on the SIDE-pixel grey image, strongest first
    descriptors: np.ndarray  # uint8 [n, 32]
    std: float
    entropy: float
    camera: bool  # EXIF names a camera make or model (an original rather than an edited re-save)
    shape: tuple[int, int] = (0, 0)  # (height, width) of the grey image the points lie on
    small: np.ndarray | None = None  # uint8 grey image, longer side SMALL, for the dense checks
    error: str | None = None
    blob: bytes | None = dataclasses.field(default=None, repr=False, compare=False)  # the stored form, when read from it

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

    def to_bytes(self) -> bytes:
        """The stored form (``from_bytes`` reads it back; the arrays of what it reads are views of it)."""
        if self.blob is not None:
            return self.blob
        small = self.small if self.small is not None else np.zeros((0, 0), np.uint8)
        thumb = self.thumb if self.thumb is not None else np.zeros(0, np.float32)
        meta = json.dumps({"w": self.width, "h": self.height, "std": self.std, "ent": self.entropy,
                           "cam": self.camera, "shape": list(self.shape), "small": list(small.shape),
                           "n": len(self.points), "thumb": len(thumb)}).encode()
        return b"".join([struct.pack("<I", len(meta)), meta, np.ascontiguousarray(thumb, np.float32).tobytes(),
                         np.ascontiguousarray(self.points, np.float32).tobytes(),
                         np.ascontiguousarray(self.descriptors, np.uint8).tobytes(), np.ascontiguousarray(small).tobytes()])

    @classmethod
    def from_bytes(cls, blob: bytes, path: str, sha256: str | None, nbytes: int | None,
                   bits: bytes | None) -> "Features":
        (n_meta,) = struct.unpack_from("<I", blob)
        meta = json.loads(blob[4:4 + n_meta])
        at = 4 + n_meta
        n, t = meta["n"], meta["thumb"]
        thumb = np.frombuffer(blob, np.float32, t, at) if t else None
        at += 4 * t
        points = np.frombuffer(blob, np.float32, 2 * n, at).reshape(n, 2)
        at += 8 * n
        desc = np.frombuffer(blob, np.uint8, 32 * n, at).reshape(n, 32)
        at += 32 * n
        sh = tuple(meta["small"])
        small = np.frombuffer(blob, np.uint8, sh[0] * sh[1], at).reshape(sh) if sh[0] else None
        return cls(path, sha256, nbytes, meta["w"], meta["h"], bits, thumb, points, desc, meta["std"], meta["ent"],
                   meta["cam"], tuple(meta["shape"]), small, blob=bytes(blob) if not isinstance(blob, bytes) else blob)


# the stored form starts with what candidates need: a 4-byte length, the JSON meta, then the thumbnail;
# this many bytes of it always hold them (``thumbnail_of`` reads them; the rest is for verification)
HEAD_BYTES = 4 + 512 + 4 * THUMB * THUMB


def head_of(head: bytes, path: str = "") -> "Features":
    """What candidates need from the first HEAD_BYTES of a stored form (or all of it): the thumbnail and
    what ``low_info`` reads (the keypoints' count, not the keypoints: ``points`` is zeros)."""
    (n_meta,) = struct.unpack_from("<I", head)
    meta = json.loads(head[4:4 + n_meta])
    t = meta["thumb"]
    thumb = np.frombuffer(head, np.float32, t, 4 + n_meta).copy() if t else None
    return Features(path, None, None, meta["w"], meta["h"], None, thumb, np.zeros((meta["n"], 2), np.float32),
                    np.zeros((0, 32), np.uint8), meta["std"], meta["ent"], meta["cam"], tuple(meta["shape"]))


def failed(path: str, error: str, sha256: str | None = None, nbytes: int | None = None) -> Features:
    return Features(path, sha256, nbytes, 0, 0, None, None, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8),
                    0.0, 0.0, False, error=error)


def grey_stats(grey: np.ndarray) -> tuple[float, float]:
    """(standard deviation, histogram entropy in bits) of a uint8 grey image."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(grey.std()), float(-(p * np.log2(p)).sum())


def _camera(img) -> bool:
    try:
        exif = img.getexif()
        return any(str(exif.get(tag) or "").strip() for tag in CAMERA_TAGS)
    except Exception:  # noqa: BLE001 - EXIF is a hint; an unreadable block means "no camera data"
        return False


def _camera_of_bytes(data: bytes) -> bool:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _camera(img)
    except Exception:  # noqa: BLE001 - as above
        return False


def _orb(grey: np.ndarray, fast_threshold: int):
    """ORB keypoints spread over the picture: DETECT strongest corners, then at most N_FEATURES / GRID^2 of
    them per cell of a GRID x GRID grid (an overlay's glyphs, the strongest corners of a copy, cannot take
    every keypoint of a picture), described."""
    import cv2
    # every image is brought to SIDE pixels first, so a resized copy meets its original at one scale: a short
    # pyramid (1.2^4, about 2x: a heavy crop) finds the same corners at a third less cost than the default 8
    orb = cv2.ORB_create(nfeatures=DETECT, edgeThreshold=15, patchSize=31, fastThreshold=fast_threshold,
                         nlevels=LEVELS)
    kps = orb.detect(grey, None)
    if len(kps) > N_FEATURES:
        h, w = grey.shape[:2]
        cell = np.array([min(GRID - 1, int(k.pt[1] * GRID / h)) * GRID + min(GRID - 1, int(k.pt[0] * GRID / w))
                         for k in kps])
        order = np.lexsort((-np.array([k.response for k in kps]), cell))
        starts = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        chosen = order[rank < N_FEATURES // (GRID * GRID)]
        kps = [kps[k] for k in chosen]
    return orb.compute(grey, kps)


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """The thumbnail descriptor of a uint8 grey image: its blurred centre at THUMB x THUMB, zero-mean and
    L2-normalised (robust to brightness, contrast, compression and small crops or turns); zeros when flat."""
    import cv2
    g = grey.astype(np.float32)
    h, w = g.shape
    dy, dx = int(h * (1 - THUMB_CENTRE) / 2), int(w * (1 - THUMB_CENTRE) / 2)
    g = cv2.resize(g[dy:h - dy or h, dx:w - dx or w], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    g = cv2.GaussianBlur(g, (0, 0), THUMB_BLUR)
    g -= g.mean()
    norm = float(np.linalg.norm(g))
    return (g / norm if norm > 1e-3 else np.zeros_like(g)).ravel()


def features_of_bytes(data: bytes, path: str = "", job: FeatureJob = FeatureJob()) -> Features:
    """Every dedupe feature of one file's bytes (never raises for a bad image: ``error`` says why)."""
    import cv2
    from PIL import Image
    digest = hashlib.sha256(data).hexdigest()
    hasher = get_hasher(job.hash)
    draft = hasher.draft_size(job.hash_size)
    try:
        img, width, height = decode_sized(data, draft_size=None if draft is None else max(draft, SIDE // 2))
        grey = np.asarray(img.convert("L"))
        scale = SIDE / max(grey.shape)
        if scale < 1 and draft is not None:
            grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
        # the grey hashers (all but colorhash) hash the grey SIDE-pixel image: it is what they turn the
        # picture into first, at a third of the cost of resizing the decoded colour image
        bits = hasher.packed(Image.fromarray(grey) if hasher.grey and draft is not None else img, job.hash_size)
    except ImageLoadError as exc:
        return failed(path, str(exc), digest, len(data))
    except Exception as exc:  # noqa: BLE001 - one odd file (e.g. a 1-pixel image for whash) must not stop a run
        return failed(path, f"cannot hash: {type(exc).__name__}: {str(exc)[:120]}", digest, len(data))
    if max(grey.shape) > SIDE:
        s = SIDE / max(grey.shape)
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s))),
                          interpolation=cv2.INTER_AREA)
    std, entropy = grey_stats(grey)
    kps, desc = _orb(grey, FAST_THRESHOLD)
    if len(kps) < FEW_KEYPOINTS:  # a smooth picture (a gradient wallpaper, a faint nebula): lower the bar
        kps, desc = _orb(grey, FAST_THRESHOLD_SMOOTH)
    desc = desc if desc is not None else np.zeros((0, 32), np.uint8)
    strongest = np.argsort([-k.response for k in kps], kind="stable")  # keypoint candidates use the first
    points = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)[strongest]
    desc = desc[strongest] if len(desc) else desc
    s = SMALL / max(grey.shape)
    small = cv2.resize(grey, (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    return Features(path, digest, len(data), width, height, bits, thumbnail(grey), points, desc, std, entropy,
                    _camera_of_bytes(data), grey.shape[:2], small)


def features_of(path: str, job: FeatureJob = FeatureJob()) -> Features:
    try:
        data = read_bytes(path)
    except ImageLoadError as exc:
        return failed(path, str(exc))
    return features_of_bytes(data, path, job)


def processes(workers: int | None, n: int) -> int:
    """Worker processes for ``n`` tasks: ``workers`` (None: one per core), 0 when one would do (in process)."""
    k = min(process_pool_workers() if workers is None else int(workers), n)
    return 0 if k <= 1 else k


Mapper = Callable[..., Iterator]  # shaped like retrieval.workers.ordered_map(fn, tasks, shared=, workers=)
CHUNK = 16  # images per feature task


def _features_chunk(job: FeatureJob, paths: Sequence[str]) -> list[Features]:
    """One task of ``compute_features`` (top level: a worker process calls it)."""
    import cv2
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the processes run in parallel; each stays on its core
    try:
        return [_packed(features_of(p, job)) for p in paths]
    finally:
        cv2.setNumThreads(threads)


def _packed(f: Features) -> Features | tuple:
    """What a worker sends back: the stored form and what it leaves out (one buffer, not six arrays)."""
    return f if f.error is not None else (f.to_bytes(), f.path, f.sha256, f.bytes, f.bits)


def _unpacked(got: Features | tuple) -> Features:
    """Features whose arrays are views of the one stored form (kept for verification tasks to share)."""
    return got if isinstance(got, Features) else Features.from_bytes(*got)


def compute_features(paths: Sequence[str], job: FeatureJob = FeatureJob(), *, workers: int | None = None,
                     progress: bool = False, mapper: Mapper | None = None) -> list[Features]:
    """Features of each path (in order): chunks of CHUNK paths through ``mapper`` (default
    retrieval.workers.ordered_map over ``workers`` processes; None: one per core)."""
    from retrieval.workers import ordered_map
    chunks = [(list(paths[k:k + CHUNK]),) for k in range(0, len(paths), CHUNK)]
    out: list[Features] = []
    with progress_bar(len(paths), desc="features", enabled=progress) as bar:
        for got in (mapper or ordered_map)(_features_chunk, chunks, shared=job,
                                           workers=processes(workers, len(chunks))):
            out += map(_unpacked, got)
            bar.update(len(got))
    return out
