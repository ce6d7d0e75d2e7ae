"""`retr query`: nearest catalog images of one or more query images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_INDEX, DbUrl, Device, IndexDir, JsonOut, ModelSpec, WeightsFile, print_json, user_errors

# region search (issue 6)
RegionsFlag = Annotated[bool, typer.Option("--regions", help="Search the region index: images ranked by their "
                                           "best region, each with the matching box.")]
QueryBox = Annotated[str | None, typer.Option("--box", help="Query with this crop of the query image: x0,y0,x1,y1.")]
Detect = Annotated[bool, typer.Option("--detect", help="Find regions in the query image (the index's region "
                                      "source) and search with each.")]


def query(images: Annotated[list[Path], typer.Argument(help="Query image file(s).")],
          index: IndexDir = DEFAULT_INDEX,
          k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
          json_out: JsonOut = False,
          html: Annotated[Path | None, typer.Option("--html", help="Write a contact sheet with thumbnails.")] = None,
          nprobe: Annotated[int | None, typer.Option("--nprobe", min=1, help="IVF lists to visit "
                                                     "(default: tuned at build for recall@10 >= 0.95).")] = None,
          ef: Annotated[int | None, typer.Option("--ef", min=1, help="HNSW efSearch (default: tuned at build).")] = None,
          model: ModelSpec = None, weights: WeightsFile = None, device: Device = "auto", db: DbUrl = None,
          regions: RegionsFlag = False, box: QueryBox = None, detect: Detect = False) -> None:
    """Find the K catalog images most like each query image. Similarity is cosine."""
    from retrieval.images.decode import check_files
    with user_errors():  # a missing query image is said before torch and the model are loaded
        check_files(images, "query image")
    if regions or box is not None or detect:
        return _region_query(images, index, k, json_out, html, nprobe, ef, model, weights, device, db, regions, box,
                             detect)
    from retrieval.images.gallery import Tile, write_gallery
    from retrieval.images.decode import shown
    from retrieval.collection.query import query_index
    with user_errors():
        results = query_index(index, [str(p) for p in images], k=k, nprobe=nprobe, ef=ef, model=model,
                              weights=str(weights) if weights else None, device=device, db_url=db)
        if html is not None:
            write_gallery(html, "retr query", [
                (f"query: {r.query}", [Tile(r.query, "query")] +
                 [Tile(h.path, f"#{h.rank}  {h.score:.3f}") for h in r.results]) for r in results])
    if json_out:
        print_json([r.to_json() for r in results])
        return
    for r in results:
        typer.echo(f"query: {shown(r.query)}")
        typer.echo(f"  {'rank':>4}  {'score':>6}  path")
        for h in r.results:
            typer.echo(f"  {h.rank:>4}  {h.score:6.3f}  {shown(h.path)}")


def _region_query(images, index, k, json_out, html, nprobe, ef, model, weights, device, db, regions, box,
                  detect) -> None:
    """--regions / --box / --detect: search with crops of the query; region hits carry their box."""
    from retrieval.images.gallery import Tile, write_gallery
    from retrieval.images.decode import shown
    from retrieval.regions.query import query_regions
    with user_errors():
        results = query_regions(index, [str(p) for p in images], k=k, regions=regions, box=box, detect=detect,
                                model=model, weights=str(weights) if weights else None, device=device, db_url=db,
                                nprobe=nprobe, ef=ef)
        if html is not None:
            write_gallery(html, "retr query", [
                (f"query: {r.query}" + (f" {r.label or 'box'} {[round(v) for v in r.box]}" if r.box else ""),
                 [Tile(r.query, "query", r.box)] +
                 [Tile(h.path, f"#{h.rank}  {h.score:.3f}", getattr(h, "region", None) and h.region.box)
                  for h in r.results]) for r in results])
    if json_out:
        print_json([r.to_json() for r in results])
        return
    for r in results:
        typer.echo(f"query: {shown(r.query)}" + (f"  box {[round(v) for v in r.box]} {r.label or ''}" if r.box else ""))
        typer.echo(f"  {'rank':>4}  {'score':>6}  path")
        for h in r.results:
            where = f"  box {[round(v) for v in h.region.box]} {h.region.label or ''}" if hasattr(h, "region") else ""
            typer.echo(f"  {h.rank:>4}  {h.score:6.3f}  {shown(h.path)}{where}")


def register(app: typer.Typer) -> None:
    app.command("query")(query)
