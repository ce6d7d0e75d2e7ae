"""`retr eval recall` and `retr eval index`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import user_errors
from cli.options import (DEFAULT_INDEX, BatchSize, DbUrl, Device, IndexDir, JsonOut, ModelSpec, Neighbours, Precision,
                         Quiet, RandomWeights, RayActors, RayAddress, Runtime, WeightsFile, Workers, index_option,
                         inference_settings, ray_options,
                         show_progress, weights_path)
from index.errors import RetrError

eval_app = typer.Typer(help="Evaluate embeddings (recall@K) and the served index. The index is compared with exact "
                            "search.",
                       no_args_is_help=True)


def parse_ks(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` -> (1, 2, 4, 8); a bad value is a one-line error."""
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise RetrError(f"-k must be comma-separated integers like 1,2,4,8, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise RetrError(f"-k values must be at least 1, got {text!r}")
    return ks


@eval_app.command("recall")
def recall(data: Annotated[Path | None, typer.Argument(help="Class folders or a path,label CSV.")] = None,
           model: ModelSpec = None, weights: WeightsFile = None, random_weights: RandomWeights = False,
           index: Annotated[Path | None, index_option("Use this index's stored vectors instead of embedding with "
                                                      "a model.", envvar=False)] = None,
           labels: Annotated[Path | None, typer.Option("--labels", help="With --index: class folders or a "
                                                       "path,label CSV (same as DATA).")] = None,
           k: Annotated[str, typer.Option("-k", help="Comma-separated K values for recall@K.")] = "1,2,4,8",
           queries: Annotated[Path | None, typer.Option("--queries", help="Labelled queries (with --gallery).")] = None,
           gallery: Annotated[Path | None, typer.Option("--gallery", help="Labelled gallery to search.")] = None,
           clusters: Annotated[bool, typer.Option("--clusters", help="Also NMI/AMI of the index's latest "
                                                  "clustering against the labels (needs --index).")] = False,
           db: DbUrl = None, batch_size: BatchSize = 32, workers: Workers = None, device: Device = "auto",
           runtime: Runtime = "auto", precision: Precision = "f32", json_out: JsonOut = False, quiet: Quiet = False,
           ray: RayAddress = None, ray_actors: RayActors = None) -> None:
    """recall@K, precision@1, R-precision and MAP@R of embeddings. Each image queries all the others
    (never itself). With --ray the images are embedded on a Ray cluster."""
    from retrieval.evaluation.recall import RecallOptions, Split, run_recall
    with user_errors():
        if labels is not None and data is not None:
            raise RetrError("give the labels either as DATA or with --labels, not both")
        if ray is not None and index is not None:
            raise RetrError("--ray embeds the images; with --index the index's stored vectors are used: "
                            "give one of them")
        opts = RecallOptions(ks=parse_ks(k), model=model, weights=weights_path(weights),
                             random_weights=random_weights, index_dir=index, db_url=db, clusters=clusters,
                             inference=inference_settings(device, runtime, precision, batch_size, workers),
                             progress=show_progress(quiet), ray=ray_options(ray, ray_actors))
        report, missing = run_recall(Split.read(data or labels, queries, gallery), opts)
    if missing or report.excluded:
        typer.echo(render.recall_left_out(missing, report.excluded), err=True)
    if json_out:
        return render.print_json(report.to_json())
    typer.echo(render.recall_report(report))


@eval_app.command("index")
def index_cmd(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None,
              sample: Annotated[int, typer.Option("--sample", min=1, help="Catalog vectors to query.")] = 1000,
              k: Neighbours = 10, json_out: JsonOut = False) -> None:
    """recall@k and queries/s of the served index against exact search. One row per nprobe/ef value."""
    from retrieval.evaluation.index_accuracy import index_accuracy
    with user_errors():
        result = index_accuracy(index, db_url=db, sample=sample, k=k)
    if json_out:
        return render.print_json(result.to_json())
    typer.echo(render.index_accuracy(result))
