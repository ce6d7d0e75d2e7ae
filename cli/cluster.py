"""`retr cluster`: k-medoids on the index's vectors, stored in its catalog."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_INDEX, DbUrl, IndexDir, JsonOut, Quiet, print_json, show_progress, user_errors

Method = Annotated[str, typer.Option("--method", help="fasterpam (kmedoids package), or pam / alternate "
                                     "(scikit-learn-extra, the optional sklearn-extra extra).")]


def cluster(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None,
            k: Annotated[int | None, typer.Option("-k", min=1, help="Number of clusters.")] = None,
            k_min: Annotated[int | None, typer.Option("--k-min", min=1, help="Try k from here ...")] = None,
            k_max: Annotated[int | None, typer.Option("--k-max", min=1, help="... to here; keep the best "
                                                      "medoid silhouette and write the elbow PNG.")] = None,
            method: Method = "fasterpam",
            sample: Annotated[int | None, typer.Option("--sample", min=2, help="Cluster a random sample of N "
                                                       "and assign the rest to the nearest medoid.")] = None,
            seed: Annotated[int, typer.Option("--seed", help="Random seed (initial medoids, sample).")] = 0,
            html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report (medoid first).")] = None,
            json_out: JsonOut = False, quiet: Quiet = False) -> None:
    """Cluster the index's images with k-medoids (cosine distance). The run is stored in the catalog."""
    from retrieval.clustering.run import ClusterOptions, cluster_index
    progress = None
    if show_progress(quiet):
        from retrieval.progress import progress_bar

        def progress(ks):
            return progress_bar(iterable=ks, unit="k", desc="clustering")
    opts = ClusterOptions(k=k, k_min=k_min, k_max=k_max, method=method, sample=sample, seed=seed, html=html, db_url=db)
    with user_errors():
        report = cluster_index(index, opts, progress=progress)
    if json_out:
        print_json(report.to_json())
        return
    _print(report)


def _print(report) -> None:
    best = report.best
    sil = "n/a" if best.silhouette is None else f"{best.silhouette:.4f}"
    typer.echo(f"k={best.k} ({best.method}{', sampled' if best.sampled else ''}): loss {best.loss:.4f}, "
               f"medoid silhouette {sil}, run {report.run_id} [{report.seconds:.1f}s]")
    if len(report.per_k) > 1:
        typer.echo(f"{'k':>4} {'loss':>12} {'silhouette':>11}")
        for r in report.per_k:
            typer.echo(f"{r.k:>4} {r.loss:>12.4f} {r.silhouette if r.silhouette is not None else float('nan'):>11.4f}"
                       + ("  <- best" if r.k == best.k else ""))
    typer.echo(f"{'id':>4} {'size':>7}  medoid")
    for c in report.clusters:
        typer.echo(f"{c.id:>4} {len(c.members):>7}  {c.medoid}")
    for label, path in (("html report", report.html), ("elbow curve", report.elbow)):
        if path is not None:
            typer.echo(f"{label}: {path}")


def register(app: typer.Typer) -> None:
    app.command("cluster")(cluster)
