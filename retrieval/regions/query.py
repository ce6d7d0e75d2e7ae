"""`retr query --regions / --box / --detect`: search with crops of the query, in either index.

What is queried: the whole query image, a ``--box`` crop of it, or each region ``--detect`` finds
with the index's region source. What is searched: the region index (``--regions``: parent images
ranked by their best region) or the whole-image index.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from index.errors import RetrError
from index.regions import RegionHit, RegionIndex
from index.directory import Hit, IndexStore
from retrieval.embed import Embedder, embed_images
from retrieval.collection.build import BuildOptions, model_for_index
from retrieval.regions.embed import region_crops
from retrieval.regions.postprocess import clip_box
from retrieval.regions.proposal import Box
from retrieval.regions.settings import RegionSettings
from retrieval.regions.sources.base import SourceOptions, make_source
from retrieval.collection.query import load_queries


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


def _box_crop(image: Image.Image, box: Box, text: str) -> tuple[Box, Image.Image]:
    clipped = clip_box(box, image.width, image.height)
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise RetrError(f"--box {text} lies outside the query image ({image.width}x{image.height})")
    return clipped, image.crop(tuple(int(round(v)) for v in clipped))


def query_regions(index_dir: str | Path, images: Sequence[str | Path], *, k: int = 10, regions: bool = True,
                  box: str | None = None, detect: bool = False, model: str | None = None,
                  weights: str | None = None, device: str = "auto", db_url: str | None = None,
                  nprobe: int | None = None, ef: int | None = None) -> list[RegionQueryResult]:
    """Search with the query images (or their ``box`` crop, or each detected region)."""
    if k < 1:
        raise RetrError(f"-k must be at least 1, got {k}")
    if box is not None and detect:
        raise RetrError("--box and --detect cannot be combined: query with one crop or with every detected region")
    the_box = parse_box(box) if box is not None else None
    pictures = load_queries(images)
    with IndexStore.open(index_dir, db_url) as store:
        if store.manifest is None or store.manifest.vectors == 0 and not store.catalog.counts()["images"]:
            raise RetrError(f"the index at {index_dir} holds no images yet")
        loaded = model_for_index(store, BuildOptions(model=model, weights=weights, device=device))
        region_index = RegionIndex(store)
        state = region_index.state
        if (regions or detect) and state is None:
            raise RetrError(f"the index at {index_dir} has no regions: build it with "
                            "`retr index build PATH --regions NAME`")
        source = None
        if detect:
            source = make_source(state["spec"], SourceOptions(detector_weights=state.get("detector_weights"),
                                                              device=device))
            if not source.detects:
                raise RetrError(f"the index's regions come from {state['spec']}, which cannot find regions in "
                                "a new image; use --box x0,y0,x1,y1")
        settings = RegionSettings(**state["settings"]) if detect else None
        queries: list[tuple[str, Box | None, str | None, Image.Image]] = []
        for path, picture in zip(images, pictures):
            if the_box is not None:
                clipped, piece = _box_crop(picture, the_box, box)
                queries.append((str(path), clipped, None, piece))
            elif source is not None:
                proposals, crops = region_crops(picture, source, settings)
                if not crops:  # nothing found: the whole image stands in, so the query still answers
                    queries.append((str(path), None, None, picture))
                queries += [(str(path), p.box, p.label, c) for p, c in zip(proposals, crops)]
            else:
                queries.append((str(path), None, None, picture))
        vectors = embed_images(loaded, [q[3] for q in queries], embedder=Embedder(loaded, device))
        hits = region_index.search(vectors, k) if regions else store.search(vectors, k, nprobe=nprobe, ef=ef)
    return [RegionQueryResult(q[0], q[1], q[2], h) for q, h in zip(queries, hits)]
