"""`retr query`: nearest catalog images of one or more query images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DEFAULT_INDEX, DbUrl, Device, IndexDir, JsonOut, ModelSpec, WeightsFile, print_json, user_errors
from retrieval.gallery import Tile, write_gallery
from retrieval.search import query_index


def query(images: Annotated[list[Path], typer.Argument(help="Query image file(s).")],
          index: IndexDir = DEFAULT_INDEX,
          k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
          json_out: JsonOut = False,
          html: Annotated[Path | None, typer.Option("--html", help="Write a contact sheet with thumbnails.")] = None,
          nprobe: Annotated[int | None, typer.Option("--nprobe", min=1, help="IVF lists to visit "
                                                     "(default: tuned at build for recall@10 >= 0.95).")] = None,
          ef: Annotated[int | None, typer.Option("--ef", min=1, help="HNSW efSearch (default: tuned at build).")] = None,
          model: ModelSpec = None, weights: WeightsFile = None, device: Device = "auto", db: DbUrl = None) -> None:
    """Find the K most similar catalog images to each query image (cosine similarity)."""
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
        typer.echo(f"query: {r.query}")
        typer.echo(f"  {'rank':>4}  {'score':>6}  path")
        for h in r.results:
            typer.echo(f"  {h.rank:>4}  {h.score:6.3f}  {h.path}")


def register(app: typer.Typer) -> None:
    app.command("query")(query)
