import json
import shutil

from typer.testing import CliRunner

from cli.main import app
from tests.conftest import DATA, TINY_MODEL, copy_photos

runner = CliRunner()
TINY = ["--model", TINY_MODEL, "--random-weights", "--workers", "0"]


def photos_dir(tmp_path):
    return copy_photos(tmp_path / "photos", ("astronaut", "chelsea", "rocket"))


def test_build_with_regions_then_query_regions_json_box_and_html(tmp_path):
    photos, ix = photos_dir(tmp_path), str(tmp_path / "ix")
    result = runner.invoke(app, ["index", "build", str(photos), "--index", ix, *TINY, "--regions", "grid:1,2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["regions"]["images"] == 3 and report["regions"]["total"] == 15 and report["added"] == 3
    out = runner.invoke(app, ["index", "info", "--index", ix]).stdout
    table = dict(line.split(None, 1) for line in out.splitlines())
    assert table["regions"] == "grid:1,2: 15 region vectors from 3 image(s), Flat"
    assert table["search"] == "none (exact)" and table["cluster_run"] == "none"

    result = runner.invoke(app, ["query", str(photos / "rocket.jpg"), "--index", ix, "--regions", "-k", "2",
                                 "--json", "--html", str(tmp_path / "q.html")])
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.stdout)
    top = answer["results"][0]
    assert top["path"] == str(photos / "rocket.jpg") and top["rank"] == 1 and len(answer["results"]) == 2
    assert set(top["region"]) == {"id", "box", "label", "score"} and len(top["region"]["box"]) == 4
    assert top["region"]["box"] == [0.0, 0.0, 384.0, 256.0]  # the whole-image region matches itself best
    page = (tmp_path / "q.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 3

    result = runner.invoke(app, ["query", str(photos / "rocket.jpg"), "--index", ix, "--regions", "-k", "1",
                                 "--box", "192,0,384,128"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "box [192, 0, 384, 128]" in lines[0]
    assert lines[2].split()[2] == str(photos / "rocket.jpg") and "box [192, 0, 384, 128] grid2" in lines[2]

    result = runner.invoke(app, ["query", str(photos / "astronaut.jpg"), "--index", ix, "--detect", "--regions",
                                 "-k", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 5  # grid:1,2 finds 5 regions in the query: one search each


def test_region_errors_are_one_line(tmp_path):
    photos, ix = photos_dir(tmp_path), str(tmp_path / "ix")
    for args, words in [(["--regions", "nosuch"], "unknown region source"),
                        (["--region-score", "0.3"], "need a region source"),
                        (["--regions", "grid", "--region-padding", "5"], "padding")]:
        result = runner.invoke(app, ["index", "build", str(photos), "--index", ix, *TINY, *args])
        assert result.exit_code == 1 and words in result.output and len(result.output.strip().splitlines()) == 1
    coco = tmp_path / "ann.json"
    shutil.copy(DATA / "regions_coco.json", coco)
    result = runner.invoke(app, ["index", "build", str(photos), "--index", ix, *TINY, "--regions", f"coco:{coco}"])
    assert result.exit_code == 0, result.output
    assert "regions (coco:" in result.output and ": 5 from 3 image(s)" in result.output
    for args, words in [(["--detect"], "cannot find regions in a new image"), (["--box", "1,2,3"], "x0,y0,x1,y1"),
                        (["--box", "500,500,600,600"], "outside the query image")]:
        result = runner.invoke(app, ["query", str(photos / "rocket.jpg"), "--index", ix, "--regions", *args])
        assert result.exit_code == 1 and words in result.output, result.output
