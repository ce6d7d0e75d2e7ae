"""The command-line reference page, generated from the typer app: `python -m tests.docs.cli_reference` writes it.

`make docs` runs this before building the site; tests/docs/test_cli_reference.py fails when the page in
the tree differs from what the app generates now.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "cli.md"
TITLE = "Command-line reference"
NOTE = ("This page is generated from the `retr` application itself (`make docs`), so it lists every command "
        "and option of this version. Every command also explains itself with `--help`.")


def generate() -> str:
    """The page's Markdown, from typer's own documentation generator run over `cli.main`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETR_")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.md"
        subprocess.run([sys.executable, "-m", "typer", "cli.main", "utils", "docs", "--name", "retr",
                        "--title", TITLE, "--output", str(out)], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True)
        text = out.read_text()
    head, rest = text.split("\n", 1)
    return f"{head}\n\n{NOTE}\n{rest}"


if __name__ == "__main__":
    PAGE.write_text(generate())
    print(f"wrote {PAGE.relative_to(ROOT)}")
