"""Region settings: what is kept of a source's proposals and how each is cropped."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RegionSettings:
    score_threshold: float = 0.5  # scored proposals below this are dropped (unscored ones are kept)
    nms_iou: float | None = 0.5  # per-label non-maximum suppression of scored proposals; None: off
    max_regions: int | None = None  # per image, best scores first; None: every proposal kept
    min_size: float = 16.0  # pixels: boxes narrower or shorter than this are dropped
    padding: float = 0.0  # each side grows by this fraction of the box's width / height (clipped)
    blank_background: bool = True  # with a mask: pixels outside it are blanked before embedding

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score threshold must be within [0, 1], got {self.score_threshold}")
        if self.nms_iou is not None and not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"NMS IoU must be within (0, 1], got {self.nms_iou}")
        if self.max_regions is not None and self.max_regions < 1:
            raise ValueError(f"max regions must be at least 1, got {self.max_regions}")
        if self.min_size < 0:
            raise ValueError(f"min box size must be >= 0, got {self.min_size}")
        if not 0.0 <= self.padding <= 2.0:
            raise ValueError(f"box padding must be within [0, 2] (a fraction of the box), got {self.padding}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
