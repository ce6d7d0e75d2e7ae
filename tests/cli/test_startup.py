"""Start-up: help, `index info` and usage or user errors import no torch; help text is not cut at 80
columns."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import TINY_MODEL, copy_photos

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "timm")
TINY = ["--model", TINY_MODEL, "--random-weights", "--workers", "0"]
runner = CliRunner()

# runs `retr ARGS` in-process for each ARGS, in a fresh interpreter that imported only cli.main
FRESH = """
import json, sys
from typer.testing import CliRunner
from cli.main import app
runner = CliRunner()
runs = []
for args in json.loads(sys.argv[1]):
    r = runner.invoke(app, args, terminal_width=80)
    runs.append({"args": args, "code": r.exit_code, "output": r.output,
                 "exception": None if r.exception is None else type(r.exception).__name__})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"runs": runs, "heavy": heavy}))
""" % (HEAVY,)


def run_fresh(arg_lists: list[list[str]]) -> tuple[list[dict], list[str]]:
    proc = subprocess.run([sys.executable, "-c", FRESH, json.dumps(arg_lists)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data["runs"], data["heavy"]


def command_paths() -> list[list[str]]:
    """Every command and sub-command of `retr`, from the click command tree."""
    def walk(cmd, path):
        yield path
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*path, name])
    return list(walk(typer.main.get_command(app), []))


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> Path:
    """An index of three photos, built in this (parent) process with the tiny random-weight model."""
    tmp = tmp_path_factory.mktemp("startup")
    photos = copy_photos(tmp / "photos", ("coffee", "chelsea", "rocket"))
    result = runner.invoke(app, ["index", "build", str(photos), "--index", str(tmp / "ix"), *TINY, "-q"])
    assert result.exit_code == 0, result.output
    return tmp / "ix"


def test_help_info_and_user_errors_import_no_torch(tmp_path, small_index):
    paths = command_paths()
    assert {" ".join(p) for p in paths} >= {"", "index", "index build", "index info", "query", "train",
                                            "train triplet", "train simclr", "eval recall", "eval index",
                                            "cluster", "dedupe", "dedupe find", "dedupe calibrate"}
    helps = [[*p, "--help"] for p in paths]
    errors = [
        (["index", "info", "--index", str(tmp_path / "missing")], 1, "error: no index at"),
        (["query", str(tmp_path / "missing.jpg"), "--index", str(small_index)], 1,
         f"error: query image not found: {tmp_path / 'missing.jpg'}"),
        (["query", str(tmp_path)], 1, "not a regular file"),
        (["query"], 2, "Missing argument"),
        (["query", "x.jpg", "-k", "0"], 2, "Invalid value for '-k'"),
        (["index", "build", "x", "--device", "bogus"], 2, "'bogus' is not a device"),
        (["train", "triplet", "x", "--out", "o", "--epochs", "0"], 2, "Invalid value for '--epochs'"),
        (["dedupe", "x", "--hash-size", "1"], 2, "Invalid value for '--hash-size'"),
        (["bogus"], 2, "No such command 'bogus'"),
    ]
    info = ["index", "info", "--index", str(small_index)]
    runs, heavy = run_fresh(helps + [args for args, _, _ in errors] + [info])

    for run, args in zip(runs, helps):
        assert run["code"] == 0 and run["exception"] is None, run
        assert run["output"].startswith(f"Usage: {' '.join(['retr', *args[:-1]])} "), run["output"][:200]
    for run, (args, code, message) in zip(runs[len(helps):], errors):
        assert (run["code"], run["exception"]) == (code, "SystemExit"), run
        assert message in run["output"] and "Traceback" not in run["output"], run
    table = dict(line.split(None, 1) for line in runs[-1]["output"].splitlines())
    assert runs[-1]["code"] == 0, runs[-1]
    assert (table["images"], table["vectors"], table["model"]) == ("3", "3", TINY_MODEL)
    assert heavy == [], f"imported {heavy[:5]}"


def _unwrapped(text: str) -> str:
    """Help text with the formatter's line breaks (at spaces and after hyphens) undone."""
    return " ".join(re.sub(r"-\n\s+", "-", text).split())


def test_help_is_wrapped_not_cut():
    for path in command_paths():
        result = runner.invoke(app, [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(map(len, lines)) <= 80, (path, max(lines, key=len))
        cut = [line for line in lines[1:] if line.rstrip().endswith(("...", "\u2026"))]  # [1:]: not Usage
        assert not cut, (path, cut)
    find = runner.invoke(app, ["dedupe", "find", "--help"], terminal_width=80).output
    assert "Image to keep per group: largest, highest-resolution, oldest, first." in _unwrapped(find)
    assert "--blank-background / --keep-background" in runner.invoke(app, ["index", "build", "--help"]).output
    wide = subprocess.run([sys.executable, "-m", "cli.main", "dedupe", "find", "--help"], cwd=ROOT, timeout=60,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}).stdout.splitlines()
    assert 80 < max(map(len, wide)) <= 120  # a 200-column terminal gets 120 columns (max_content_width)
