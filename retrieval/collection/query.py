"""`retr query`: the one query path. Query images (or parts of them) -> the index's model -> the image
index or the region index -> results, best first.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from index.errors import RetrError
from index.directory import Hit, IndexStore
from retrieval.collection.model import index_model
from retrieval.embed import embed_images
from retrieval.images.decode import ImageLoadError, check_files, load_image
from retrieval.regions.query import QueryPart, RegionQueryResult, check_region_query, query_parts, searched_regions


@dataclasses.dataclass
class QueryResult:
    query: str
    results: list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "results": [dataclasses.asdict(h) for h in self.results]}


def load_queries(images: Sequence[str | Path]) -> list[Image.Image]:
    """The query images, decoded; a missing or unreadable one is a one-line error."""
    check_files(images, "query image")
    loaded = []
    for path in images:
        try:
            loaded.append(load_image(path))
        except ImageLoadError as exc:
            raise RetrError(f"cannot read query image {exc}") from exc
    return loaded


def query_index(index_dir: str | Path, images: Sequence[str | Path], *, k: int = 10,
                nprobe: int | None = None, ef: int | None = None, model: str | None = None,
                weights: str | None = None, device: str = "auto", db_url: str | None = None,
                regions: bool = False, box: str | None = None, detect: bool = False
                ) -> list[QueryResult] | list[RegionQueryResult]:
    """The k nearest catalog images of each query image (or of its ``box`` crop, or of each region
    ``detect`` finds), best first; ``regions`` searches the region index (images ranked by their best region).
    """
    if k < 1:
        raise RetrError(f"-k must be at least 1, got {k}")
    the_box = check_region_query(box, detect)
    pictures = load_queries(images)
    paths = [str(p) for p in images]
    with IndexStore.open(index_dir, db_url) as store:
        if store.manifest is None or store.manifest.vectors == 0 and not store.catalog.counts()["images"]:
            raise RetrError(f"the index at {index_dir} holds no images yet")
        loaded = index_model(store, model, weights)
        region_index = searched_regions(store, index_dir) if regions else None
        parts = query_parts(store, index_dir, paths, pictures, box=the_box, detect=detect, device=device)
        vectors = embed_images(loaded, [part.image for part in parts], device=device)
        hits = region_index.search(vectors, k) if region_index is not None \
            else store.search(vectors, k, nprobe=nprobe, ef=ef)
    if regions or box is not None or detect:
        return [RegionQueryResult(p.query, p.box, p.label, h) for p, h in zip(parts, hits)]
    return [QueryResult(p.query, h) for p, h in zip(parts, hits)]
