"""`retr query`: embed query images with the index's model and search the index."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from index.errors import RetrError
from index.directory import Hit, IndexStore
from retrieval.embed import embed_images
from retrieval.images.decode import ImageLoadError, check_files, load_image
from retrieval.collection.build import BuildOptions, model_for_index


@dataclasses.dataclass
class QueryResult:
    query: str
    results: list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "results": [dataclasses.asdict(h) for h in self.results]}


def load_queries(images: Sequence[str | Path]):
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
                weights: str | None = None, device: str = "auto", db_url: str | None = None) -> list[QueryResult]:
    """The k nearest catalog images of each query image, best first."""
    if k < 1:
        raise RetrError(f"-k must be at least 1, got {k}")
    pictures = load_queries(images)
    with IndexStore.open(index_dir, db_url) as store:
        if store.manifest is None or store.manifest.vectors == 0 and not store.catalog.counts()["images"]:
            raise RetrError(f"the index at {index_dir} holds no images yet")
        loaded = model_for_index(store, BuildOptions(model=model, weights=weights, device=device))
        vectors = embed_images(loaded, pictures, device=device)
        hits = store.search(vectors, k, nprobe=nprobe, ef=ef)
    return [QueryResult(str(q), h) for q, h in zip(images, hits)]
