"""The `retr` application: one typer app, each command group in its own module.

Command modules import only typer and light constants at module level; torch, timm, faiss and the
catalog are imported inside command bodies, so `--help` and usage errors start instantly
(tests/cli/test_startup.py).
"""
from __future__ import annotations

import typer

from cli import cluster, dedupe, evaluate, index_cmd, query, train
from cli.options import HELP_SETTINGS

app = typer.Typer(
    name="retr",
    help="Image embedding search and retrieval: index a folder of photos, query it, train embedding "
         "models, find near-duplicates, cluster and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    **HELP_SETTINGS,
)

for module in (index_cmd, query, train, evaluate, cluster, dedupe):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
