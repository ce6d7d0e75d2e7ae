"""Exactness: an export is used only if its vectors agree with torch's on a probe batch."""
from __future__ import annotations

import numpy as np
import torch

EXACT_COSINE = 0.9999  # the least cosine between a runtime's vector and torch's for the same image
PROBE_BATCH = 3  # not the export's example size: the probe also checks that the batch size is dynamic


def probe_batch(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """uint8 [PROBE_BATCH, 3, H, W] of smooth random pictures (blobs and edges, like photos, unlike noise)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(PROBE_BATCH, 3, 7, 7, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
    grain = torch.rand(PROBE_BATCH, 3, *size, generator=gen) * 0.1
    return ((smooth + grain).clamp(0, 1) * 255).to(torch.uint8)


def min_cosine(reference: np.ndarray, got: np.ndarray) -> float:
    """The least cosine between matching rows (vectors are L2-normalised; a shape mismatch is -1)."""
    if reference.shape != got.shape or not np.isfinite(got).all():
        return -1.0
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    out = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    return float((ref * out).sum(axis=1).min())
