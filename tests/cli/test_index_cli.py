import json

from typer.testing import CliRunner

from cli.main import app
from tests.conftest import ODD, TINY_MODEL

runner = CliRunner()
TINY = ["--model", TINY_MODEL, "--random-weights", "--workers", "0"]


def build(photos, ix, *extra):
    return runner.invoke(app, ["index", "build", str(photos), "--index", str(ix), *TINY, *extra])


def test_build_query_info_json_keys(tmp_path, photos):
    (photos / "bad.jpg").write_bytes(b"")
    result = build(photos, tmp_path / "ix", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"added", "updated", "removed", "total", "skipped"}
    assert report["added"] == 12 and report["skipped"][0]["path"].endswith("bad.jpg")
    assert set(report["skipped"][0]) == {"path", "error"}

    result = runner.invoke(app, ["query", str(photos / "chelsea.jpg"), str(photos / "coffee.jpg"),
                                 "--index", str(tmp_path / "ix"), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["query"] for d in data] == [str(photos / "chelsea.jpg"), str(photos / "coffee.jpg")]
    assert set(data[0]["results"][0]) == {"rank", "id", "path", "score"}
    assert data[0]["results"][0]["path"] == str(photos / "chelsea.jpg") and len(data[0]["results"]) == 3

    result = runner.invoke(app, ["index", "info", "--index", str(tmp_path / "ix"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert {"images", "vectors", "errors", "model", "dim", "index_type", "bytes"} <= set(info)
    assert (info["images"], info["vectors"], info["errors"], info["model"]) == (12, 12, 1, TINY_MODEL)


def test_table_and_html_contact_sheet(tmp_path, photos):
    assert build(photos, tmp_path / "ix").exit_code == 0
    result = runner.invoke(app, ["query", str(photos / "rocket.jpg"), "--index", str(tmp_path / "ix"), "-k", "2",
                                 "--html", str(tmp_path / "q.html")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["rank", "score", "path"] and lines[2].split()[2] == str(photos / "rocket.jpg")
    page = (tmp_path / "q.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 3  # the query and two results, inlined


def test_errors_are_one_line_with_exit_code_1(tmp_path, photos):
    result = runner.invoke(app, ["index", "build", str(tmp_path / "nope"), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 1 and "no such file or folder" in result.output
    assert "Traceback" not in result.output
    assert build(photos, tmp_path / "ix").exit_code == 0
    for args, message in (
            (["query", str(tmp_path / "missing.jpg")], "query image not found"),
            (["query", str(ODD / "corrupt.jpg")], "cannot read query image"),
            (["query", str(photos / "coffee.jpg"), "--model", "test_resnet"], "model mismatch")):
        result = runner.invoke(app, [*args, "--index", str(tmp_path / "ix")])
        assert result.exit_code == 1, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_usage_errors_exit_2_and_help_explains():
    assert runner.invoke(app, ["query"]).exit_code == 2
    result = runner.invoke(app, ["index", "build", "--help"])
    assert result.exit_code == 0 and "--index-type" in result.output and "Incremental" in result.output
