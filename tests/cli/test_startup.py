"""Start-up and the error rule: help, `index info` and usage or user errors import no torch, help text is
not cut at 80 columns, and no bad option value or input file ends in a traceback."""
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
from tests.conftest import ODD, PHOTOS, TINY_MODEL, copy_photos

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
        # user errors of the commands that embed or train: said before torch loads
        (["index", "build", str(tmp_path / "missing")], 1, f"error: no such file or folder: {tmp_path / 'missing'}"),
        (["index", "build", str(PHOTOS), "--index-type", "bogus"], 1, "error: invalid --index-type 'bogus'"),
        (["index", "build", str(PHOTOS), "--regions", "bogus"], 1, "error: unknown region source 'bogus'; known:"),
        (["index", "build", str(PHOTOS), "--region-score", "0.5"], 1, "error: region settings need a region source"),
        (["index", "build", str(PHOTOS), "--index", str(small_index), "--model", "mobilenetv2_100"], 1,
         "error: model mismatch: the index at"),
        (["query", str(PHOTOS / "coffee.jpg"), "--index", str(tmp_path / "missing")], 1, "error: no index at"),
        (["query", str(PHOTOS / "coffee.jpg"), "--index", str(small_index), "--box", "1,2,3"], 1,
         "error: bad --box '1,2,3'"),
        (["query", str(ODD / "corrupt.jpg"), "--index", str(small_index)], 1, "error: cannot read query image"),
        (["query", str(PHOTOS / "coffee.jpg"), "--index", str(small_index), "--model", "mobilenetv2_100"], 1,
         "error: model mismatch: the index at"),
        (["query", str(PHOTOS / "coffee.jpg"), "--index", str(small_index), "--regions"], 1, "has no regions"),
        (["query", str(PHOTOS / "coffee.jpg"), "--index", str(small_index), "--weights", str(tmp_path / "w.st")], 2,
         "weights file not found"),
        (["train", "triplet", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], 1,
         "error: no such file or folder"),
        (["train", "triplet", str(PHOTOS), "--out", str(tmp_path / "o"), "--optimizer", "bogus"], 1,
         "error: unknown --optimizer 'bogus'; use adamw or sgd"),
        (["train", "triplet", str(PHOTOS), "--out", str(tmp_path / "o"), "--miner", "bogus"], 1,
         "error: unknown --miner 'bogus'; known:"),
        (["train", "simclr", str(PHOTOS), "--out", str(tmp_path / "o"), "--jitter-p", "2"], 1,
         "error: jitter_p is a probability, got 2.0"),
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


def test_with_a_checked_export_cached_the_commands_that_embed_import_no_torch(tmp_path, small_index):
    """The small index was built here (its export checked against torch); a fresh process then queries it,
    builds another index with the same model, evaluates recall and checks a duplicate by embedding, and never
    imports torch, torchvision or timm."""
    classes = tmp_path / "classes"
    copy_photos(classes / "a", ("coffee", "chelsea"))
    copy_photos(classes / "b", ("rocket", "camera"))
    other = tmp_path / "other"
    runs, heavy = run_fresh([
        ["query", str(PHOTOS / "coffee.jpg"), "--index", str(small_index), "-k", "2", "--json"],
        ["index", "build", str(classes), "--index", str(other), *TINY, "--json"],
        ["eval", "recall", str(classes), *TINY, "-k", "1", "--json"],
        ["dedupe", "--check", str(PHOTOS / "chelsea.jpg"), "--index", str(small_index), "--embeddings", "--json"],
    ])
    for run in runs[:3]:
        assert run["code"] == 0 and run["exception"] is None, run
    assert runs[3]["code"] == 3, runs[3]  # --check: a duplicate was found (the photo itself is catalogued)
    assert json.loads(runs[0]["output"])[0]["results"][0]["path"].endswith("coffee.jpg")
    assert json.loads(runs[1]["output"])["added"] == 4
    assert json.loads(runs[2]["output"])["n"] == 4
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
    assert "Image to keep per group: original, largest, highest-resolution, oldest, first." in _unwrapped(find)
    assert "--blank-background / --keep-background" in runner.invoke(app, ["index", "build", "--help"]).output
    wide = subprocess.run([sys.executable, "-m", "cli.main", "dedupe", "find", "--help"], cwd=ROOT, timeout=60,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}).stdout.splitlines()
    assert 80 < max(map(len, wide)) <= 120  # a 200-column terminal gets 120 columns (max_content_width)


def _bad_value_cases(tmp: Path, ix: Path) -> list[tuple[list[str], int, str]]:
    """(args, exit code, part of the one error line) for bad option values and input files."""
    photos = copy_photos(tmp / "photos", ("coffee", "chelsea"))
    image, afile, missing = photos / "coffee.jpg", tmp / "a.txt", tmp / "missing"
    afile.write_text("not an image\n")
    classes = tmp / "classes"
    copy_photos(classes / "a", ("coffee", "chelsea"))
    copy_photos(classes / "b", ("rocket", "astronaut"))
    I = ["--index", str(ix)]  # noqa: E741
    train = ["train", "triplet", str(classes), "--out", str(tmp / "out"), *TINY, "-P", "2", "-K", "2", "--split",
             "none"]
    simclr = ["train", "simclr", str(classes), "--out", str(tmp / "out"), *TINY]
    return [
        # index build / info
        (["index", "build", str(missing), *I], 1, "no such file or folder"),
        (["index", "build", str(photos), "--batch-size", "0"], 2, "'--batch-size'"),
        (["index", "build", str(photos), "--workers", "-1"], 2, "'--workers'"),
        (["index", "build", str(photos), "--device", "bogus"], 2, "'bogus' is not a device"),
        (["index", "build", str(photos), *I, *TINY, "--index-type", "bogus"], 1, "invalid --index-type 'bogus'"),
        (["index", "build", str(photos), *I, *TINY, "--regions", "bogus"], 1, "unknown region source 'bogus'"),
        (["index", "build", str(photos), *I, *TINY, "--regions", "grid", "--region-nms", "2"], 1, "NMS IoU"),
        (["index", "build", str(photos), *I, *TINY, "--regions", f"coco:{afile}"], 1, "is not valid JSON"),
        (["index", "build", str(photos), "--max-regions", "0"], 2, "'--max-regions'"),
        (["index", "build", str(photos), "--index", str(image), *TINY], 1, "is not a folder"),
        (["index", "build", str(photos), "--index", str(tmp / "ix2"), "--model", "no_such_model_xyz"], 1,
         "unknown model 'no_such_model_xyz'"),
        (["index", "build", str(photos), "--index", str(tmp / "ix2"), *TINY, "--db", "bogus://x"], 1,
         "cannot open catalog database"),
        (["index", "info", "--index", str(missing)], 1, "no index at"),
        (["index", "info", "--index", str(image)], 1, "is not a retr index directory"),
        (["index", "info", *I, "--db", f"sqlite:///{afile}"], 1, "file is not a database"),
        # query
        (["query", str(missing / "q.jpg"), *I], 1, "query image not found"),
        (["query", str(photos), *I], 1, "not a regular file"),
        (["query", str(ODD / "corrupt.jpg"), *I], 1, "cannot read query image"),
        (["query", str(image), *I, "-k", "0"], 2, "'-k'"),
        (["query", str(image), *I, "--nprobe", "0"], 2, "'--nprobe'"),
        (["query", str(image), *I, "--box", "1,2"], 1, "bad --box '1,2'"),
        (["query", str(image), *I, "--box", "50,50,10,10"], 1, "x1 must exceed x0"),
        (["query", str(image), *I, "--regions"], 1, "has no regions"),
        (["query", str(image), *I, "--device", "cuda:x"], 2, "'cuda:x' is not a device"),
        (["query", str(image), "--index", str(missing)], 1, "no index at"),
        (["query", str(image), *I, "--html", str(photos)], 1, "Is a directory"),
        # cluster
        (["cluster", *I, "-k", "0"], 2, "'-k'"),
        (["cluster", *I, "-k", "100"], 1, "k=100 clusters is not possible"),
        (["cluster", *I, "-k", "2", "--method", "bogus"], 1, "unknown clustering method 'bogus'"),
        (["cluster", *I, "--k-min", "3", "--k-max", "2"], 1, "--k-min 3 is larger than --k-max 2"),
        (["cluster", *I], 1, "give -k K"),
        # dedupe
        (["dedupe", str(photos), "--search", "bogus"], 1, "unknown --search method 'bogus'"),
        (["dedupe", str(photos), "--hash", "bogus"], 1, "unknown --hash 'bogus'"),
        (["dedupe", str(photos), "--keep", "bogus"], 1, "unknown --keep policy 'bogus'"),
        (["dedupe", str(photos), "--threshold", "-1"], 2, "'--threshold'"),
        (["dedupe", str(photos), "--threshold", "999"], 1, "--threshold 999 is outside 0..64"),
        (["dedupe", str(photos), "--hash", "whash", "--hash-size", "6"], 1, "power-of-two"),
        (["dedupe", str(photos), "--similarity", "2"], 2, "'--similarity'"),
        (["dedupe", str(photos), "--delete"], 1, "add --yes"),
        (["dedupe", str(photos), "--move-to", str(afile)], 1, "is not a folder"),
        (["dedupe", str(missing)], 1, "no such file or folder"),
        (["dedupe", "--undo", str(missing / "m.jsonl")], 1, "cannot read manifest"),
        (["dedupe", "--undo", str(afile)], 1, "is not JSON"),
        (["dedupe", "--check", str(missing / "q.jpg"), *I], 1, "no such image"),
        (["dedupe", "--index", str(image)], 1, "is not a retr index directory"),
        (["dedupe", "calibrate", str(missing / "pairs.csv")], 1, "No such file"),
        (["dedupe", "calibrate", str(afile)], 1, "needs the columns path_a,path_b,is_duplicate"),
        (["dedupe", "calibrate", str(afile), "--target-precision", "2"], 2, "'--target-precision'"),
        # eval
        (["eval", "recall", str(classes), "-k", "0"], 1, "-k values must be at least 1"),
        (["eval", "recall", str(classes), "-k", "abc"], 1, "-k must be comma-separated integers"),
        (["eval", "recall", str(missing), *TINY], 1, "no such file or folder"),
        (["eval", "recall", str(photos), *TINY], 1, "holds no class folders"),
        (["eval", "recall", str(afile), *TINY], 1, "must be a CSV with a header"),
        (["eval", "index", *I, "--sample", "0"], 2, "'--sample'"),
        (["eval", "index", "--index", str(missing)], 1, "no index at"),
        # train
        ([*train, "--optimizer", "bogus"], 1, "unknown --optimizer 'bogus'"),
        ([*train, "--miner", "bogus"], 1, "unknown --miner 'bogus'"),
        ([*train[:-1], "bogus"], 1, "unknown --split 'bogus'"),
        ([*train[:-1], "images", "--val-fraction", "2"], 1, "--val-fraction must be between 0 and 1"),
        ([*train, "--batch-size", "3"], 1, "--batch-size 3 is smaller than P x K"),
        ([*train, "--classes-per-batch", "50"], 1, "only 2 classes"),
        ([*train, "--epochs", "0"], 2, "'--epochs'"),
        ([*train, "--image-size", "8"], 2, "'--image-size'"),
        (["train", "triplet", str(classes), "--out", str(afile), *TINY], 1, "is not a folder"),
        (["train", "triplet", str(missing), "--out", str(tmp / "out"), *TINY], 1, "no such file or folder"),
        ([*train, "--resume"], 1, "holds no training state"),
        ([*simclr, "--jitter-p", "2"], 1, "jitter_p is a probability"),
        ([*simclr, "--temperature", "0"], 1, "--temperature must be > 0"),
    ]


def test_bad_option_values_and_inputs_are_one_line_errors(tmp_path, small_index):
    for args, code, message in _bad_value_cases(tmp_path, small_index):
        result = runner.invoke(app, args)
        # CliRunner catches an uncaught exception and keeps its traceback out of the output: a command that
        # crashed shows as a non-SystemExit exception here
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output, (args, result.output)
        if code == 1:
            assert result.stderr.strip().splitlines() == [result.stderr.strip()], (args, result.stderr)
            assert result.stderr.startswith("error: ") and message in result.stderr, (args, result.stderr)
        else:
            said = [line for line in result.output.splitlines() if line.startswith("Error: ")]
            assert len(said) == 1 and message in said[0], (args, result.output)
