"""A proposed region of an image: a box, and optionally a label, a score and a mask."""
from __future__ import annotations

import dataclasses

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (x1, y1 exclusive)


@dataclasses.dataclass(frozen=True, eq=False)
class Proposal:
    box: Box
    label: str | None = None
    score: float | None = None  # None: the source does not score (grid windows, annotations)
    mask: np.ndarray | None = None  # bool [H, W] over the whole image, for segmenters and polygons

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def mask_area(self) -> float | None:
        return float(self.mask.sum()) if self.mask is not None else None

    def with_box(self, box: Box) -> "Proposal":
        return dataclasses.replace(self, box=tuple(float(v) for v in box))
