"""The command-line reference in docs/ is what the typer app generates now."""
from __future__ import annotations

from tests.docs.cli_reference import PAGE, generate


def test_cli_reference_is_current():
    assert PAGE.read_text() == generate(), "docs/reference/cli.md is stale: run `make docs` and commit it"


def test_cli_reference_lists_every_command():
    import click
    import typer.main

    from cli.main import app
    text = PAGE.read_text()

    def walk(cmd: click.Command, prefix: str):
        yield prefix
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{prefix} {name}")

    for path in walk(typer.main.get_command(app), "retr"):
        if path != "retr":
            assert f"## `{path}`" in text, path
