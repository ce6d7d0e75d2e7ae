"""`retr query`: nearest catalog images of one or more query images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli import render
from cli.errors import user_errors
from cli.options import (DEFAULT_INDEX, DbUrl, Device, HtmlOut, IndexDir, JsonOut, ModelSpec, Neighbours, Precision,
                         Runtime, WeightsFile, inference_settings, prefetch_model, weights_path)

# region search
RegionsFlag = Annotated[bool, typer.Option("--regions", help="Search the region index: images ranked by their "
                                           "best region, each with the matching box.")]
QueryBox = Annotated[str | None, typer.Option("--box", help="Query with this crop of the query image: x0,y0,x1,y1.")]
Detect = Annotated[bool, typer.Option("--detect", help="Find regions in the query image (the index's region "
                                      "source) and search with each.")]


def query(images: Annotated[list[Path], typer.Argument(help="Query image file(s).")],
          index: IndexDir = DEFAULT_INDEX, k: Neighbours = 10, json_out: JsonOut = False, html: HtmlOut = None,
          nprobe: Annotated[int | None, typer.Option("--nprobe", min=1, help="IVF lists to visit "
                                                     "(default: tuned at build for recall@10 >= 0.95).")] = None,
          ef: Annotated[int | None, typer.Option("--ef", min=1, help="HNSW efSearch (default: tuned at build).")] = None,
          model: ModelSpec = None, weights: WeightsFile = None, device: Device = "auto", runtime: Runtime = "auto",
          precision: Precision = "f32", db: DbUrl = None,
          regions: RegionsFlag = False, box: QueryBox = None, detect: Detect = False) -> None:
    """Find the K catalog images most like each query image. Similarity is cosine."""
    from retrieval.images.decode import load_queries
    from retrieval.regions.proposal import check_region_query
    with user_errors():  # user errors are said before torch and the model load: they cost no start-up
        pictures = load_queries(images)
        weights_file = weights_path(weights)
        check_region_query(box, detect)
        settings = inference_settings(device, runtime, precision)
        with prefetch_model(index, model, weights_file, settings):  # the model opens while the rest imports
            results = _search(pictures, images, index, db, model, weights_file, settings, k=k, nprobe=nprobe,
                              ef=ef, regions=regions, box=box, detect=detect)
        if html is not None:
            render.write_query_gallery(html, results)
    if json_out:
        return render.print_json([r.to_json() for r in results])
    typer.echo(render.query_results(results))


def _search(pictures: list, images: list[Path], index: Path, db: str | None, model: str | None,
            weights_file: str | None, settings: Any, **query: Any) -> list:
    from index.directory import IndexStore
    from retrieval.collection.checks import refuse_other_model, searched_regions
    with IndexStore.open(index, db) as store:  # a missing, damaged or empty index; another model; no regions
        refuse_other_model(store.manifest, index, model)
        if query["regions"]:
            searched_regions(store, index)
    from retrieval.collection.api import Collection
    with Collection(index, db_url=db, model=model, weights=weights_file, inference=settings) as col:
        return col.query(pictures, names=[str(p) for p in images], **query)
