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
from index.regions import RegionIndex
from retrieval.collection.model import index_model
from retrieval.embed import Embedder, embed_images
from retrieval.images.decode import load_queries
from retrieval.regions.proposal import Box, check_region_query
from retrieval.collection.checks import searched_regions
from retrieval.regions.query import RegionQueryResult, query_parts
from retrieval.runtimes.settings import InferenceSettings


@dataclasses.dataclass
class QueryResult:
    query: str
    results: list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "results": [dataclasses.asdict(h) for h in self.results]}


def query_index(index_dir: str | Path, images: Sequence[str | Path], *, k: int = 10,
                nprobe: int | None = None, ef: int | None = None, model: str | None = None,
                weights: str | None = None, db_url: str | None = None, regions: bool = False,
                box: str | None = None, detect: bool = False,
                inference: InferenceSettings = InferenceSettings()) -> list[QueryResult] | list[RegionQueryResult]:
    """The k nearest catalog images of each query image (or of its ``box`` crop, or of each region
    ``detect`` finds), best first; ``regions`` searches the region index (images ranked by their best region).
    """
    if k < 1:
        raise RetrError(f"-k must be at least 1, got {k}")
    the_box = check_region_query(box, detect)
    pictures = load_queries(images)
    paths = [str(p) for p in images]
    with IndexStore.open(index_dir, db_url) as store:
        check_not_empty(store, index_dir)
        region_index = searched_regions(store, index_dir) if regions else None
        embedder = Embedder(index_model(store, model, weights), inference)
        return search_pictures(store, embedder, paths, pictures, k=k, nprobe=nprobe, ef=ef,
                               region_index=region_index, box=the_box, detect=detect)


def check_not_empty(store: IndexStore, index_dir: str | Path) -> None:
    """Refuse an index that holds no images yet."""
    if store.manifest is None or store.manifest.vectors == 0 and not store.catalog.counts()["images"]:
        raise RetrError(f"the index at {index_dir} holds no images yet")


def search_pictures(store: IndexStore, embedder: Embedder, names: Sequence[str], pictures: Sequence[Image.Image], *,
                    k: int, nprobe: int | None = None, ef: int | None = None, region_index: RegionIndex | None = None,
                    box: Box | None = None, detect: bool = False) -> list[QueryResult] | list[RegionQueryResult]:
    """The one query path: decoded query pictures (named ``names``) -> parts -> ``embedder`` -> the image
    index (or ``region_index``) of an open ``store``; used by `retr query` and the warm Collection alike."""
    parts = query_parts(store, store.dir, names, pictures, box=box, detect=detect, device=embedder.settings.device)
    vectors = embed_images(None, [part.image for part in parts], embedder=embedder)
    hits = region_index.search(vectors, k) if region_index is not None \
        else store.search(vectors, k, nprobe=nprobe, ef=ef)
    if region_index is not None or box is not None or detect:
        return [RegionQueryResult(p.query, p.box, p.label, h) for p, h in zip(parts, hits)]
    return [QueryResult(p.query, h) for p, h in zip(parts, hits)]
