"""--runtime and --precision on every command that embeds, defined once and passed through to the library."""
from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import copy_photos

runner = CliRunner()
EMBEDDING_COMMANDS = [["index", "build"], ["query"], ["eval", "recall"], ["dedupe", "find"]]


@pytest.mark.parametrize("command", EMBEDDING_COMMANDS, ids=" ".join)
def test_every_embedding_command_takes_runtime_and_precision(command):
    out = runner.invoke(app, [*command, "--help"], terminal_width=200).output
    assert "--runtime" in out and "--precision" in out
    bad = runner.invoke(app, [*command, "x.jpg", "--runtime", "tensorrt"])
    assert bad.exit_code == 2 and "'tensorrt' is not a runtime: use auto, torch, openvino, onnx" in bad.output
    bad = runner.invoke(app, [*command, "x.jpg", "--precision", "int4"])
    assert bad.exit_code == 2 and "'int4' is not a precision: use f32, bf16" in bad.output


def test_dedupe_embeddings_on_folders_embeds_with_the_runtime_asked_for(tmp_path):
    lib = copy_photos(tmp_path / "lib", ("coffee", "chelsea", "rocket"))
    Image.open(lib / "coffee.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(lib / "mirrored.jpg")
    res = runner.invoke(app, ["dedupe", str(lib), "--embeddings", "--similarity", "0.9", "--no-verify",
                              "--threshold", "0", "--runtime", "onnx", "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)["groups"]
    assert [sorted(p.rsplit("/", 1)[1] for p in [g["keep"], *(d["path"] for d in g["duplicates"])])
            for g in groups] == [["coffee.jpg", "mirrored.jpg"]]
    assert groups[0]["duplicates"][0]["reason"] == "embedding"  # threshold 0: only the vectors join them
