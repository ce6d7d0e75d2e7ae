"""Sliding windows over an image pyramid: needs no weights, finds anything at some scale."""
from __future__ import annotations

from typing import Sequence

from PIL import Image

from index.errors import RetrError
from retrieval.regions.proposal import Proposal
from retrieval.regions.sources.base import RegionSource

GRID_LEVELS = (1, 2, 3, 4)  # cells per side at each pyramid level (1: the whole image)
WINDOW_SIZES = (0.6, 0.4, 0.25)  # square window sides as fractions of the shorter image side


def _positions(length: float, window: float, stride: float) -> list[float]:
    """Window starts from 0 to the far edge (the last one flush with it)."""
    if window >= length:
        return [0.0]
    starts, x = [], 0.0
    while x + window < length - 1e-6:
        starts.append(x)
        x += stride
    starts.append(length - window)
    return starts


def grid_boxes(width: int, height: int, levels: Sequence[int] = GRID_LEVELS) -> list[tuple[float, ...]]:
    """Non-overlapping cells of an n x n grid for each level n."""
    boxes = []
    for n in levels:
        for row in range(n):
            for col in range(n):
                boxes.append((col * width / n, row * height / n, (col + 1) * width / n, (row + 1) * height / n))
    return boxes


def window_boxes(width: int, height: int, sizes: Sequence[float] = WINDOW_SIZES,
                 overlap: float = 0.5) -> list[tuple[float, ...]]:
    """Square windows of each size (fraction of the shorter side), ``overlap`` shared between neighbours."""
    boxes = [(0.0, 0.0, float(width), float(height))]
    short = min(width, height)
    for frac in sizes:
        side = frac * short
        stride = max(1.0, side * (1.0 - overlap))
        for y in _positions(height, side, stride):
            for x in _positions(width, side, stride):
                boxes.append((x, y, min(x + side, width), min(y + side, height)))
    return boxes


def _numbers(arg: str, kind: type, what: str) -> tuple:
    try:
        values = tuple(kind(v) for v in arg.split(",") if v.strip())
    except ValueError:
        raise RetrError(f"bad {what} {arg!r}: expected comma-separated numbers") from None
    if not values:
        raise RetrError(f"bad {what} {arg!r}: expected comma-separated numbers")
    return values


class GridSource(RegionSource):
    """``grid[:1,2,3,4]``: every cell of an n x n grid at each level n of the pyramid."""

    in_workers = True

    def __init__(self, levels: Sequence[int] = GRID_LEVELS):
        if any(n < 1 or n > 32 for n in levels):
            raise RetrError(f"grid levels must be between 1 and 32 cells per side, got {list(levels)}")
        self.levels = tuple(sorted(set(int(n) for n in levels)))
        super().__init__("grid:" + ",".join(map(str, self.levels)))

    @classmethod
    def from_arg(cls, arg: str | None, _options) -> "GridSource":
        return cls(_numbers(arg, int, "grid levels") if arg else GRID_LEVELS)

    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        return [Proposal(box, label=f"grid{n}") for n, box in self._labelled(image.width, image.height)]

    def _labelled(self, width: int, height: int):
        for n in self.levels:
            for box in grid_boxes(width, height, (n,)):
                yield n, box


class WindowSource(RegionSource):
    """``windows[:0.6,0.4,0.25]``: square windows (fractions of the shorter side), half-overlapping,
    plus the whole image."""

    in_workers = True

    def __init__(self, sizes: Sequence[float] = WINDOW_SIZES):
        if any(not 0.0 < s <= 1.0 for s in sizes):
            raise RetrError(f"window sizes must be fractions within (0, 1], got {list(sizes)}")
        self.sizes = tuple(sorted(set(float(s) for s in sizes), reverse=True))
        super().__init__("windows:" + ",".join(f"{s:g}" for s in self.sizes))

    @classmethod
    def from_arg(cls, arg: str | None, _options) -> "WindowSource":
        return cls(_numbers(arg, float, "window sizes") if arg else WINDOW_SIZES)

    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        return [Proposal(box, label="window") for box in window_boxes(image.width, image.height, self.sizes)]
