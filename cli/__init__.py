"""The `retr` command line (typer)."""
