"""A proposed region of an image: a box, and optionally a label, a score and a mask."""
from __future__ import annotations

import dataclasses

import numpy as np

from index.errors import RetrError

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


def parse_box(text: str) -> Box:
    """``x0,y0,x1,y1`` in query-image pixels."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise RetrError(f"bad --box {text!r}: expected x0,y0,x1,y1 in pixels")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise RetrError(f"bad --box {text!r}: x1 must exceed x0 and y1 must exceed y0")
    return values  # type: ignore[return-value]


def check_region_query(box: str | None, detect: bool) -> Box | None:
    """The parsed ``--box``, refused together with ``--detect``."""
    if box is not None and detect:
        raise RetrError("--box and --detect cannot be combined: query with one crop or with every detected region")
    return parse_box(box) if box is not None else None
