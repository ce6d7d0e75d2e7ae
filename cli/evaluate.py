"""`retr eval recall` and `retr eval index`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import (DEFAULT_INDEX, BatchSize, DbUrl, Device, IndexDir, JsonOut, ModelSpec, Quiet,
                        RandomWeights, WeightsFile, Workers, print_json, show_progress, user_errors)
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
           index: Annotated[Path | None, typer.Option("--index", "-i", help="Use this index's stored vectors "
                                                      "instead of embedding with a model.")] = None,
           labels: Annotated[Path | None, typer.Option("--labels", help="With --index: class folders or a "
                                                       "path,label CSV (same as DATA).")] = None,
           k: Annotated[str, typer.Option("-k", help="Comma-separated K values for recall@K.")] = "1,2,4,8",
           queries: Annotated[Path | None, typer.Option("--queries", help="Labelled queries (with --gallery).")] = None,
           gallery: Annotated[Path | None, typer.Option("--gallery", help="Labelled gallery to search.")] = None,
           clusters: Annotated[bool, typer.Option("--clusters", help="Also NMI/AMI of the index's latest "
                                                  "clustering against the labels (needs --index).")] = False,
           db: DbUrl = None, batch_size: BatchSize = 32, workers: Workers = None, device: Device = "auto",
           json_out: JsonOut = False, quiet: Quiet = False) -> None:
    """recall@K, precision@1, R-precision and MAP@R of embeddings. Each image queries all the others
    (never itself)."""
    from retrieval.evaluation.recall import RecallOptions, Split, run_recall
    with user_errors():
        if labels is not None and data is not None:
            raise RetrError("give the labels either as DATA or with --labels, not both")
        opts = RecallOptions(ks=parse_ks(k), model=model, weights=str(weights) if weights else None,
                             random_weights=random_weights, index_dir=index, db_url=db, clusters=clusters,
                             batch_size=batch_size, workers=workers, device=device, progress=show_progress(quiet))
        report, missing = run_recall(Split.read(data or labels, queries, gallery), opts)
    if missing or report.excluded:
        typer.echo(f"note: {missing} labelled image(s) without a vector and {report.excluded} query(ies) "
                   "with no other image of their class were left out", err=True)
    if json_out:
        print_json(report.to_json())
        return
    _print_recall(report)


def _print_recall(report) -> None:
    head = report.to_json()
    for key in [key for key in head if key != "per_class"]:
        typer.echo(f"{key:12} {head[key]:.4f}" if isinstance(head[key], float) else f"{key:12} {head[key]}")
    metrics = [m for m in next(iter(report.per_class.values())) if m != "n"]
    typer.echo("\n" + f"{'class':20} {'n':>6} " + " ".join(f"{m:>11}" for m in metrics))
    for name, row in report.per_class.items():
        typer.echo(f"{name[:20]:20} {row['n']:>6} " + " ".join(f"{row[m]:>11.4f}" for m in metrics))
    s = report.seconds
    typer.echo(f"\n{s.get('total', 0):.1f}s: embedding {s.get('embed', 0):.1f}s, k-NN search "
               f"{s.get('search', 0):.2f}s")


@eval_app.command("index")
def index_cmd(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None,
              sample: Annotated[int, typer.Option("--sample", min=1, help="Catalog vectors to query.")] = 1000,
              k: Annotated[int, typer.Option("-k", min=1, help="Neighbours compared per query.")] = 10,
              json_out: JsonOut = False) -> None:
    """recall@k and queries/s of the served index against exact search. One row per nprobe/ef value."""
    from retrieval.evaluation.index_accuracy import index_accuracy
    with user_errors():
        result = index_accuracy(index, db_url=db, sample=sample, k=k)
    if json_out:
        print_json(result.to_json())
        return
    typer.echo(f"{result.factory}: {result.n} vectors, {result.sample} queries, k={result.k}; "
               f"exact search {result.flat_qps:,.0f} queries/s")
    typer.echo(f"{'setting':>14} {'recall@' + str(k):>10} {'queries/s':>12} {'speed-up':>9}")
    for s in result.settings:
        name = f"{s.param}={s.value}" if s.param else "(served)"
        mark = " *" if s.tuned and s.param else ""
        typer.echo(f"{name:>14} {s.recall:>10.4f} {s.qps:>12,.0f} {s.qps / result.flat_qps:>8.1f}x{mark}")
    if any(s.tuned and s.param for s in result.settings):
        typer.echo("* the index's default (tuned at build time)")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
