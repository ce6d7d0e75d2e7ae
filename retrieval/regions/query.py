"""`retr query --regions / --box / --detect`: the parts of a query image searched, and region results.

What is queried: the whole query image, a ``--box`` crop of it, or each region ``--detect`` finds
with the index's region source. What is searched (retrieval.collection.query): the region index
(``--regions``: parent images ranked by their best region) or the whole-image index.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from PIL import Image

from index.errors import RetrError
from index.directory import Hit, IndexStore
from index.regions import RegionHit
from retrieval.collection.checks import searched_regions
from retrieval.regions.embed import region_crops
from retrieval.regions.postprocess import clip_box
from retrieval.regions.proposal import Box
from retrieval.regions.settings import RegionSettings
from retrieval.regions.sources import make_source
from retrieval.regions.sources.base import RegionSource, SourceOptions


@dataclasses.dataclass(frozen=True)
class QueryPart:
    """One picture to embed and search with: a query image, or a part of it."""

    query: str  # the query file
    image: Image.Image
    box: Box | None = None  # the part of the query image (None: all of it)
    label: str | None = None


@dataclasses.dataclass
class RegionQueryResult:
    query: str
    box: Box | None  # the part of the query image that was searched (None: all of it)
    label: str | None
    results: list[RegionHit] | list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "query_box": None if self.box is None else [round(v, 2) for v in self.box],
                "query_label": self.label,
                "results": [h.to_json() if isinstance(h, RegionHit) else dataclasses.asdict(h) for h in self.results]}


def _box_part(path: str, image: Image.Image, box: Box) -> QueryPart:
    clipped = clip_box(box, image.width, image.height)
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        text = ",".join(f"{v:g}" for v in box)
        raise RetrError(f"--box {text} lies outside the query image ({image.width}x{image.height})")
    return QueryPart(path, image.crop(tuple(int(round(v)) for v in clipped)), clipped)


def _detected_parts(path: str, image: Image.Image, source: RegionSource, settings: RegionSettings) -> list[QueryPart]:
    proposals, crops = region_crops(image, source, settings)
    if not crops:  # nothing found: the whole image stands in, so the query still answers
        return [QueryPart(path, image)]
    return [QueryPart(path, c, p.box, p.label) for p, c in zip(proposals, crops)]


def _query_source(state: dict[str, Any], device: str) -> RegionSource:
    """The index's region source, for finding regions in a query image."""
    source = make_source(state["spec"], SourceOptions(detector_weights=state.get("detector_weights"), device=device))
    if not source.detects:
        raise RetrError(f"the index's regions come from {state['spec']}, which cannot find regions in "
                        "a new image; use --box x0,y0,x1,y1")
    return source


def query_parts(store: IndexStore, index_dir: object, paths: Sequence[str], pictures: Sequence[Image.Image], *,
                box: Box | None, detect: bool, device: str) -> list[QueryPart]:
    """What each query image searches with: its ``box`` crop, each region found in it, or all of it."""
    if box is not None:
        return [_box_part(path, picture, box) for path, picture in zip(paths, pictures)]
    if detect:
        state = searched_regions(store, index_dir).state
        source, settings = _query_source(state, device), RegionSettings(**state["settings"])
        return [part for path, picture in zip(paths, pictures)
                for part in _detected_parts(path, picture, source, settings)]
    return [QueryPart(path, picture) for path, picture in zip(paths, pictures)]
