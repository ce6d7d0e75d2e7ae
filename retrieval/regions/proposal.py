"""A proposed region of an image: a box, and optionally a label, a score and a mask."""
from __future__ import annotations

import dataclasses
import math
import re

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


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
MAX_BOX_TEXT = 200  # characters; a box is four numbers, and a longer text is never parsed or echoed whole


def parse_box(text: str) -> Box:
    """``x0,y0,x1,y1`` in query-image pixels: four plain decimal numbers, finite (no NaN, infinity or
    ``1_0``), x1 > x0 and y1 > y0."""
    shown = repr(text) if len(text) <= 60 else repr(text[:57]) + "..."
    parts = text.split(",") if len(text) <= MAX_BOX_TEXT else []
    values = tuple(float(v) for v in parts if _NUMBER.fullmatch(v.strip()))
    if len(parts) != 4 or len(values) != 4 or not all(map(math.isfinite, values)):
        raise RetrError(f"bad --box {shown}: expected x0,y0,x1,y1 in pixels (four finite numbers)")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise RetrError(f"bad --box {shown}: x1 must exceed x0 and y1 must exceed y0")
    return values  # type: ignore[return-value]


def check_region_query(box: str | None, detect: bool) -> Box | None:
    """The parsed ``--box``, refused together with ``--detect``."""
    if box is not None and detect:
        raise RetrError("--box and --detect cannot be combined: query with one crop or with every detected region")
    return parse_box(box) if box is not None else None
