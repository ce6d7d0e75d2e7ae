import json

import pytest
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


def test_read_commands_refuse_a_missing_catalog_in_one_line_and_write_nothing(tmp_path, photos):
    ix = tmp_path / "ix"
    assert build(photos, ix).exit_code == 0
    before = {p.name: p.read_bytes() for p in ix.iterdir() if p.is_file()}
    (ix / "catalog.sqlite").rename(tmp_path / "away.sqlite")
    for args in (["query", str(photos / "coffee.jpg")], ["index", "info"], ["cluster", "-k", "2"],
                 ["dedupe"], ["eval", "index"]):
        result = runner.invoke(app, [*args, "--index", str(ix)])
        assert result.exit_code == 1, (args, result.output)
        assert "does not exist but the manifest of" in result.output and "records 12 vectors" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert {p.name: p.read_bytes() for p in ix.iterdir() if p.is_file()} == {
        k: v for k, v in before.items() if k != "catalog.sqlite"}
    typo = tmp_path / "typo.sqlite"
    result = runner.invoke(app, ["index", "info", "--index", str(ix), "--db", f"sqlite:///{typo}"])
    assert result.exit_code == 1 and "typo.sqlite does not exist" in result.output
    assert not typo.exists()


def test_a_garbled_faiss_file_is_said_on_stderr_and_rebuilt_by_the_next_build(tmp_path, photos):
    ix = tmp_path / "ix"
    assert build(photos, ix).exit_code == 0
    data = bytearray((ix / "vectors.faiss").read_bytes())
    data[len(data) // 2:len(data) // 2 + 256] = bytes(range(256))
    (ix / "vectors.faiss").write_bytes(bytes(data))
    result = runner.invoke(app, ["query", str(photos / "coffee.jpg"), "--index", str(ix), "-k", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["results"][0]["score"] < 1.0001
    assert "warning: " in result.stderr and "does not match its checksum" in result.stderr
    result = build(photos, ix, "--json")
    assert result.exit_code == 0, result.output
    assert "rebuilt it from the catalog's 12 vectors" in json.loads(result.stdout)["repaired"][0]
    assert "warning: " in result.stderr
    result = runner.invoke(app, ["query", str(photos / "coffee.jpg"), "--index", str(ix), "-k", "1"])
    assert result.exit_code == 0 and result.stderr == ""


def test_a_damaged_manifest_is_one_line(tmp_path, photos):
    ix = tmp_path / "ix"
    assert build(photos, ix).exit_code == 0
    (ix / "manifest.json").write_text("[]")
    for args in (["index", "info", "--index", str(ix)], ["index", "build", str(photos), "--index", str(ix), *TINY]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert "manifest.json is damaged: it holds a JSON list, not an object" in result.output


def test_a_newline_in_a_file_name_keeps_query_and_skip_lines_one_per_file(tmp_path, photos):
    odd = photos / "two\nlines.jpg"
    (photos / "rocket.jpg").rename(odd)
    (photos / "bad\nname.jpg").write_bytes(b"not an image")
    result = build(photos, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "  " + str(photos / "bad\\nname.jpg") + ": " in result.stdout  # the skip, escaped on one line
    result = runner.invoke(app, ["query", str(odd), "--index", str(tmp_path / "ix"), "-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[0] == "query: " + str(photos / "two\\nlines.jpg")
    assert lines[2].split()[2] == str(photos / "two\\nlines.jpg")
    result = runner.invoke(app, ["query", str(odd), "--index", str(tmp_path / "ix"), "-k", "1", "--json"])
    assert json.loads(result.stdout)[0]["results"][0]["path"] == str(odd)  # JSON keeps the real name


@pytest.mark.parametrize("start", [100, 4096])  # the schema page, then the pages that hold the rows
def test_a_damaged_catalog_file_is_one_line_for_every_read(tmp_path, photos, start):
    ix = tmp_path / "ix"
    assert build(photos, ix).exit_code == 0
    db = ix / "catalog.sqlite"
    data = bytearray(db.read_bytes())
    data[start:start + 8192] = b"\xab" * len(data[start:start + 8192])
    db.write_bytes(bytes(data))
    for args in (["query", str(photos / "coffee.jpg")], ["index", "info"], ["cluster", "-k", "2"], ["dedupe"]):
        result = runner.invoke(app, [*args, "--index", str(ix)])
        assert isinstance(result.exception, SystemExit) and result.exit_code == 1, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "the catalog file is damaged" in result.output and "Traceback" not in result.output
