"""The options of a dedupe run and their defaults, validated in one place.

Light on purpose (no numpy, faiss or imagehash at import): the CLI reads the defaults for its help text.
"""
from __future__ import annotations

import dataclasses

from index.errors import RetrError
from retrieval.dedupe.hashers import DEFAULT_HASH, get_hasher
from retrieval.dedupe.keep import DEFAULT_KEEP, policy

DEFAULT_SIMILARITY = 0.95
LOOSE_SHARE = 0.34  # with verification, hash candidates come from this share of the bits (22 of 64)


@dataclasses.dataclass(frozen=True)
class DedupeOptions:
    hash: str = DEFAULT_HASH
    hash_size: int | None = None  # None: the hasher's default
    threshold: int | None = None  # Hamming radius; None: the hasher's documented default
    embeddings: bool = False
    similarity: float = DEFAULT_SIMILARITY
    keep: str = DEFAULT_KEEP
    method: str = "auto"  # binary range search method (index.hamming.METHODS)
    verify: bool = True  # geometric verification decides; off: a hash within --threshold is enough
    min_inliers: int | None = None  # verification thresholds (None: retrieval.dedupe.verify's calibrated ones)
    min_ratio: float | None = None
    runtime: str = "auto"  # what --embeddings embeds with (retrieval.runtimes)
    precision: str = "f32"

    def candidate_radius(self) -> int:
        """Hamming radius for candidate pairs: loose when verification decides, else --threshold."""
        if not self.verify:
            return int(self.threshold)
        bits = get_hasher(self.hash).bits(self.hash_size)
        return max(int(self.threshold), int(round(LOOSE_SHARE * bits)))

    def thresholds(self):
        """The verification thresholds (retrieval.dedupe.verify.VerifyThresholds) these options ask for."""
        from retrieval.dedupe.verify import DEFAULT_THRESHOLDS
        return dataclasses.replace(
            DEFAULT_THRESHOLDS,
            **({"min_inliers": int(self.min_inliers)} if self.min_inliers is not None else {}),
            **({"min_ratio": float(self.min_ratio)} if self.min_ratio is not None else {}))

    def validated(self) -> "DedupeOptions":
        """These options with the hasher's defaults filled in; a RetrError names the first bad value."""
        from index.hamming import METHODS, gpu_count
        hasher = get_hasher(self.hash)
        size = hasher.size(self.hash_size)
        threshold = hasher.threshold(size) if self.threshold is None else int(self.threshold)
        if not 0 <= threshold <= hasher.bits(size):
            raise RetrError(f"--threshold {threshold} is outside 0..{hasher.bits(size)} for a "
                            f"{hasher.bits(size)}-bit {self.hash}")
        if not 0.0 < self.similarity <= 1.0:
            raise RetrError(f"--similarity must be in (0, 1], got {self.similarity}")
        policy(self.keep)
        if self.min_inliers is not None and self.min_inliers < 4:
            raise RetrError(f"--min-inliers must be at least 4 (a transform needs them), got {self.min_inliers}")
        if self.min_ratio is not None and not 0.0 <= self.min_ratio <= 1.0:
            raise RetrError(f"--min-ratio must be in [0, 1], got {self.min_ratio}")
        if self.method not in METHODS:
            raise RetrError(f"unknown --search method {self.method!r}; known: {', '.join(METHODS)}")
        if self.method == "gpu" and gpu_count() == 0:
            raise RetrError("--search gpu asked for, but faiss sees no GPU")
        return dataclasses.replace(self, hash_size=size, threshold=threshold)
