"""`retr cluster`: k-medoids on the index's vectors, stored in its catalog."""
from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.errors import user_errors
from cli.options import DEFAULT_INDEX, DbUrl, HtmlOut, IndexDir, JsonOut, Quiet, Seed, show_progress
from retrieval.clustering.engines import ENGINES

Method = Annotated[str, typer.Option("--method", help=", ".join(f"{name} ({ENGINES.get(name).description})"
                                                               for name in ENGINES) + ".")]


def cluster(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None,
            k: Annotated[int | None, typer.Option("-k", min=1, help="Number of clusters.")] = None,
            k_min: Annotated[int | None, typer.Option("--k-min", min=1, help="Try k from here ...")] = None,
            k_max: Annotated[int | None, typer.Option("--k-max", min=1, help="... to here; choose k by the "
                                                      "silhouette and write the elbow PNG.")] = None,
            method: Method = "fasterpam",
            sample: Annotated[int | None, typer.Option("--sample", min=2, help="Cluster a random sample of N "
                                                       "and assign the rest to the nearest medoid.")] = None,
            seed: Seed = 0, html: HtmlOut = None, json_out: JsonOut = False, quiet: Quiet = False) -> None:
    """Cluster the index's images with k-medoids (cosine distance). The run is stored in the catalog."""
    from retrieval.clustering.run import ClusterOptions, cluster_index
    opts = ClusterOptions(k=k, k_min=k_min, k_max=k_max, method=method, sample=sample, seed=seed, html=html, db_url=db)
    with user_errors():
        report = cluster_index(index, opts, progress=_bar if show_progress(quiet) else None)
    if json_out:
        return render.print_json(report.to_json())
    typer.echo(render.cluster_report(report))


def _bar(ks):
    """A progress bar over the values of k being tried."""
    from retrieval.progress import progress_bar
    return progress_bar(desc="clustering", unit="k", iterable=ks)
