"""The manifest records the model, not the runtime: an index built with one runtime is queried with another."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from tests.conftest import PHOTOS

runner = CliRunner()


def _top5(index, runtime: str, queries: list[str]) -> list[list[str]]:
    result = runner.invoke(app, ["query", *queries, "--index", str(index), "-k", "5", "--runtime", runtime,
                                 "--json"])
    assert result.exit_code == 0, result.output
    return [[hit["path"] for hit in r["results"]] for r in json.loads(result.stdout)]


def test_an_index_built_with_openvino_answers_torch_and_onnx_queries_alike(photos, tmp_path):
    index = tmp_path / "index"
    built = runner.invoke(app, ["index", "build", str(photos), "--index", str(index), "--runtime", "openvino",
                                "--workers", "0", "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["added"] == 12
    manifest = json.loads((index / "manifest.json").read_text())
    assert "runtime" not in json.dumps(manifest["model"])
    queries = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))]
    with_torch = _top5(index, "torch", queries)
    assert [hits[0] for hits in with_torch] == [str(photos / p.name) for p in sorted(PHOTOS.glob("*.jpg"))]
    assert _top5(index, "onnx", queries) == with_torch
    assert _top5(index, "openvino", queries) == with_torch
