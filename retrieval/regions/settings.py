"""Region settings: what is kept of a source's proposals and how each is cropped, and the `--regions` options
of a build (checked without torch)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from index.errors import RetrError
from retrieval.regions.sources import SOURCES, make_source, parse_spec

if TYPE_CHECKING:
    from retrieval.regions.sources.base import RegionSource


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


@dataclasses.dataclass(frozen=True)
class RegionOptions:
    """``--regions NAME`` and its settings, as the build path receives them."""

    spec: str
    settings: RegionSettings = RegionSettings()
    detector_weights: str | None = None
    index_type: str | None = None  # None: the region index's current type, else the image index's

    def source(self, device: str = "auto") -> RegionSource:
        from retrieval.regions.sources.base import SourceOptions
        return make_source(self.spec, SourceOptions(detector_weights=self.detector_weights, device=device))


def make_region_options(spec: str | None, *, score: float | None = None, nms: float | None = None,
                        max_regions: int | None = None, min_size: float | None = None,
                        padding: float | None = None, blank_background: bool | None = None,
                        detector_weights: str | None = None) -> RegionOptions | None:
    """RegionOptions from command-line values (None: the default); None when no source is named."""
    given = {"score_threshold": score, "nms_iou": nms, "max_regions": max_regions, "min_size": min_size,
             "padding": padding, "blank_background": blank_background}
    given = {k: v for k, v in given.items() if v is not None}
    if spec is None:
        if given or detector_weights:
            raise RetrError("region settings need a region source: add --regions NAME")
        return None
    SOURCES.get(parse_spec(spec)[0])  # an unknown source is an error that lists the known ones
    if given.get("nms_iou") == 0:
        given["nms_iou"] = None  # 0 turns suppression off
    try:
        settings = RegionSettings(**given)
    except ValueError as exc:
        raise RetrError(str(exc)) from None
    return RegionOptions(spec=spec, settings=settings, detector_weights=detector_weights)
