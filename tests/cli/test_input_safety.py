"""Hostile input to `retr index build` and `retr query`: recorded skips or one-line errors, never a
traceback, a hang or the machine's memory (issue 11, items 7, 8 and 10)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from retrieval.models.checkpoint import CONFIG_FILE, save_checkpoint
from retrieval.models.backbones import create_backbone
from retrieval.models.net import EmbeddingNet
from tests.conftest import PHOTOS, TINY_MODEL, copy_photos

runner = CliRunner()
TINY = ["--model", TINY_MODEL, "--random-weights", "--workers", "0"]
ROOT = Path(__file__).resolve().parents[2]

# the build runs in a child process whose address space may grow by 3 GB at most after its imports:
# a regression (the 1 x 100000 PNG resized to 256 x 25,600,000) fails there instead of eating the machine
CAPPED_BUILD = """
import re, resource, sys
from cli.main import app
import retrieval.collection.build  # torch, timm and faiss load before the cap (cli.main no longer imports them)
size = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) << 10
resource.setrlimit(resource.RLIMIT_AS, (size + (3 << 30), size + (3 << 30)))
app(sys.argv[1:])
"""


def build(*args: str):
    return runner.invoke(app, ["index", "build", *args, *TINY])


def test_extreme_aspect_ratios_are_recorded_skips_under_a_memory_cap(tmp_path):
    folder = copy_photos(tmp_path / "in", ("coffee",))
    Image.new("RGB", (1, 100_000)).save(folder / "tall.png")
    Image.new("RGB", (100_000, 1)).save(folder / "wide.png")
    assert (folder / "tall.png").stat().st_size < 1000  # a few hundred bytes on disk
    ix = tmp_path / "ix"
    proc = subprocess.run([sys.executable, "-c", CAPPED_BUILD, "index", "build", str(folder), "--index", str(ix),
                           "--model", TINY_MODEL, "--random-weights", "--workers", "1", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["added"] == 1 and report["total"] == 1
    assert {s["path"]: s["error"] for s in report["skipped"]} == {
        str(folder / "tall.png"): "extreme aspect ratio (1x100000 pixels; limit 50:1)",
        str(folder / "wide.png"): "extreme aspect ratio (100000x1 pixels; limit 50:1)"}
    info = runner.invoke(app, ["index", "info", "--index", str(ix), "--json"])
    assert info.exit_code == 0, info.output
    assert (json.loads(info.stdout)["images"], json.loads(info.stdout)["errors"]) == (1, 2)  # errors recorded


def _non_utf8_folder(tmp_path: Path) -> Path:
    folder = copy_photos(tmp_path / "in", ("coffee",))
    fd = os.open(os.fsencode(folder) + b"/bad\xff\xfe.jpg", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, (PHOTOS / "coffee.jpg").read_bytes())
    os.close(fd)
    return folder


def test_a_non_utf8_name_is_a_recorded_skip_and_the_rest_is_indexed(tmp_path):
    folder = _non_utf8_folder(tmp_path)
    shown = str(folder) + "/bad\\xff\\xfe.jpg"  # the bad bytes escaped, never a lone surrogate
    result = build(str(folder), "--index", str(tmp_path / "ix"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["total"]) == (1, 1)
    assert report["skipped"] == [{"path": shown, "error": "file name is not valid UTF-8; rename it to index it"}]

    result = build(str(folder), "--index", str(tmp_path / "ix"))  # the next build also works, in text
    assert result.exit_code == 0, result.output
    assert "unchanged 1" in result.output
    assert f"  {shown}: file name is not valid UTF-8; rename it to index it" in result.output.splitlines()


@pytest.mark.timeout(60)
def test_a_fifo_named_to_index_build_is_reported(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    result = build(str(tmp_path / "fifo.jpg"), str(PHOTOS / "coffee.jpg"), "--index", str(tmp_path / "ix"),
                   "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 1
    assert report["skipped"] == [{"path": str(tmp_path / "fifo.jpg"), "error": "not a regular file (a FIFO, "
                                  "device, socket or folder); only regular files are read"}]


@pytest.fixture
def small_index(tmp_path: Path) -> Path:
    result = build(str(copy_photos(tmp_path / "in", ("coffee", "brick"))), "--index", str(tmp_path / "ix"))
    assert result.exit_code == 0, result.output
    return tmp_path / "ix"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_folder_as_query_is_a_one_line_error(tmp_path, small_index, kind):
    query = tmp_path / "q.jpg"
    if kind == "fifo":
        os.mkfifo(query)
    else:
        query.mkdir()
    result = runner.invoke(app, ["query", str(query), "--index", str(small_index)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"error: cannot read query image {query}: not a regular file (a FIFO, device, socket or folder); "
        "only regular files are read"]


@pytest.mark.parametrize("field,value,message", [
    ("data_config.input_size", [3, 30000, 30000], "data_config.input_size must be [3, height, width]"),
    ("data_config.mean", None, "data_config.mean must be 3 numbers"),
    ("backbone", None, "backbone must be a timm model name"),
])
def test_a_bad_checkpoint_config_is_a_one_line_error(tmp_path, field, value, message):
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    cfg = {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0}
    ck = save_checkpoint(EmbeddingNet(backbone).eval(), tmp_path / "ck", backbone=TINY_MODEL, data_config=cfg)
    config = json.loads((ck / CONFIG_FILE).read_text())
    *parents, key = field.split(".")
    target = config
    for name in parents:
        target = target[name]
    if value is None:
        del target[key]
    else:
        target[key] = value
    (ck / CONFIG_FILE).write_text(json.dumps(config))
    result = runner.invoke(app, ["index", "build", str(PHOTOS / "coffee.jpg"), "--index", str(tmp_path / "ix"),
                                 "--model", str(ck), "--workers", "0"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ck.resolve() / CONFIG_FILE}: bad checkpoint config: ")
    assert message in lines[0]
