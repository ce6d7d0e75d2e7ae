"""`retr train ...` through the CLI: JSON keys, one-line errors, SimCLR on an unlabelled folder."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from tests.retrieval.train.conftest import colour_images, write_folder

TINY = ["--model", "test_vit", "--random-weights", "--image-size", "32", "--embedding-dim", "8", "--epochs", "1",
        "--steps-per-epoch", "1", "--workers", "0", "--quiet"]


def test_triplet_json(tmp_path):
    write_folder(tmp_path / "data", per_class=6, classes=3)
    (tmp_path / "data" / "lonely").mkdir()
    colour_images(per_class=1)[0][0].save(tmp_path / "data" / "lonely" / "x.png")
    result = CliRunner().invoke(app, ["train", "triplet", str(tmp_path / "data"), "--out", str(tmp_path / "m"),
                                      "-P", "2", "-K", "2", "--miner", "semi-hard", "--min-crop", "0.9", "--json",
                                      *TINY])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"out", "epochs", "step", "metrics", "initial", "history", "skipped"} <= set(data)
    assert data["step"] == 1 and "recall@1" in data["metrics"]
    assert data["skipped"] == [{"class": "lonely", "reason": "only 1 image(s); a class needs 2 for positive pairs"}]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["training"]["min_crop"] == 0.9 and config["training"]["miner"] == "semi-hard"


def test_bad_inputs_are_one_line_errors(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", "contrastive", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), *TINY])
    assert result.exit_code == 1 and "holds no class folders" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    write_folder(tmp_path / "data", per_class=4, classes=3)
    result = runner.invoke(app, ["train", "triplet", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                                 "-P", "3", "-K", "4", "--batch-size", "8", *TINY])
    assert result.exit_code == 1 and "smaller than P x K = 3 x 4 = 12" in result.output
    result = runner.invoke(app, ["train", "simclr", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                                 "--blur-p", "2", *TINY])
    assert result.exit_code == 1 and "blur_p is a probability" in result.output


def test_simclr_on_an_unlabelled_folder(tmp_path):
    images, _ = colour_images(per_class=3)
    (tmp_path / "photos" / "deeper").mkdir(parents=True)
    for i, img in enumerate(images):
        img.save(tmp_path / "photos" / ("deeper" if i % 2 else "") / f"{i}.png")
    result = CliRunner().invoke(app, ["train", "simclr", str(tmp_path / "photos"), "--out", str(tmp_path / "s"),
                                      "--batch-size", "4", *TINY])
    assert result.exit_code == 0, result.output
    assert "checkpoint:" in result.output and "12 training images" in result.output
