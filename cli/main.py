"""The `retr` application: one typer app joining the command groups, each in its own module.

Command modules import only typer and light constants at module level; torch, timm, faiss and the
catalog are imported inside command bodies, so `--help` and usage errors start instantly
(tests/cli/test_startup.py).
"""
from __future__ import annotations

import gc

import typer

from cli import cluster, dedupe, evaluate, index_group, query, serve, train

app = typer.Typer(
    name="retr",
    help="Image embedding search and retrieval: index a folder of photos, query it, train embedding "
         "models, find near-duplicates, cluster and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain (click) help for every command, inherited by the groups: it wraps long option names and choice
    # lists where rich's narrow columns cut them with "...", uses up to 120 columns of a wide terminal, and
    # needs no rich import.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)
app.add_typer(index_group.index_app, name="index")
app.command("query")(query.query)
app.add_typer(train.train_app, name="train")
app.add_typer(evaluate.eval_app, name="eval")
app.command("cluster")(cluster.cluster)
app.add_typer(dedupe.dedupe_app, name="dedupe")
app.command("serve")(serve.serve)


def main() -> None:
    try:
        app()
    finally:
        # what the command made is left to the end of the process: the interpreter's collections at exit then
        # pass over none of it (a tenth to a third of a second of `retr query`, benchmarks/startup.py)
        gc.freeze()


if __name__ == "__main__":
    main()
