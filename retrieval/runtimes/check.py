"""Exactness: an export is used only if its vectors agree with torch's on a probe batch."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

EXACT_COSINE = 0.9999  # the least cosine between a runtime's vector and torch's for the same image
PROBE_BATCH = 3  # not the export's example size: the probe also checks that the batch size is dynamic
# what a check covers; a note of an older check is not trusted. 2: a session's stream (OpenVINO's fixed-shape
# throughput compilation) is checked as well as its call
CHECK_VERSION = 2


def probe_batch(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint8 [PROBE_BATCH, 3, H, W] of smooth random pictures (blobs and edges, like photos, unlike noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((PROBE_BATCH, 3, 7, 7), dtype=np.float32)
    smooth = _upsample(_upsample(coarse, size[0], axis=2), size[1], axis=3)
    grain = rng.random((PROBE_BATCH, 3, *size), dtype=np.float32) * 0.1
    return ((smooth + grain).clip(0, 1) * 255).astype(np.uint8)


def _upsample(x: np.ndarray, out: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` to ``out`` samples (pixel centres aligned: align_corners=False)."""
    n = x.shape[axis]
    src = np.maximum((np.arange(out, dtype=np.float64) + 0.5) * n / out - 0.5, 0.0)
    lo = np.minimum(src.astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = out
    w = (src - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def min_cosine(reference: np.ndarray, got: np.ndarray) -> float:
    """The least cosine between matching rows (vectors are L2-normalised; a shape mismatch is -1)."""
    if reference.shape != got.shape or not np.isfinite(got).all():
        return -1.0
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    out = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    return float((ref * out).sum(axis=1).min())


def session_cosine(reference: np.ndarray, session: Any, probe: torch.Tensor) -> float:
    """The least cosine against ``reference`` of a session's vectors of ``probe``: called as one batch and,
    for a session that streams (runs batches on its own compilation), streamed as well."""
    cosine = min_cosine(reference, session(probe))
    stream = getattr(session, "stream", None)
    if stream is not None:
        streamed = [v for v, _ in stream([(probe[:1], None), (probe[1:], None)])]
        cosine = min(cosine, min_cosine(reference, np.concatenate(streamed)))
    return cosine


def _note(folder: Path, precision: str) -> Path:
    return folder / f"checked-{precision}.json"


def checked_cosine(folder: Path, precision: str) -> float | None:
    """The least cosine an earlier check of this export measured at ``precision``; None when unchecked."""
    try:
        note = json.loads(_note(folder, precision).read_text())
        return float(note["min_cosine"]) if note.get("check") == CHECK_VERSION else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def note_checked(folder: Path, precision: str, cosine: float) -> None:
    """Record a passed check in the export's folder (written whole, then renamed: never half a note)."""
    tmp = folder / f".checked-{uuid.uuid4().hex}"
    try:
        tmp.write_text(json.dumps({"min_cosine": cosine, "probe_batch": PROBE_BATCH, "check": CHECK_VERSION}))
        os.replace(tmp, _note(folder, precision))
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache: the check simply runs again next time
