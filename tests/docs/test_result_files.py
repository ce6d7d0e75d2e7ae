"""benchmarks/_common.py's record_result: what a benchmark prints is kept with its command, machine and date."""
from __future__ import annotations

import json
import sys

import pytest

from tests.docs.examples import ROOT


@pytest.fixture
def common(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _common
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    return _common


def _run(common, monkeypatch, argv, body):
    monkeypatch.setattr(sys, "argv", ["benchmarks/fake_bench.py", *argv])
    with common.record_result("benchmarks/fake_bench.py"):
        body()


def test_a_run_keeps_what_it_printed_with_the_command_and_machine(common, monkeypatch, tmp_path, capsys):
    _run(common, monkeypatch, ["--rounds", "3"], lambda: print("figure 1.25x"))
    assert "figure 1.25x" in capsys.readouterr().out  # still printed
    [path] = (tmp_path / "fake_bench").glob("*.json")
    record = json.loads(path.read_text())
    assert record["command"] == "python benchmarks/fake_bench.py --rounds 3"
    assert record["output"] == "figure 1.25x\n"
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["date"].endswith("UTC")
    assert path.name == f"{common.machine_slug(record['machine'])}--rounds-3.json"
    page = (tmp_path / "fake_bench" / "README.md").read_text()
    assert "figure 1.25x" in page and "`python benchmarks/fake_bench.py --rounds 3`" in page


def test_the_same_command_replaces_its_file_and_another_adds_one(common, monkeypatch, tmp_path):
    _run(common, monkeypatch, [], lambda: print("first"))
    _run(common, monkeypatch, [], lambda: print("second"))
    _run(common, monkeypatch, ["--n", "10"], lambda: print("small"))
    files = sorted((tmp_path / "fake_bench").glob("*.json"))
    assert len(files) == 2
    page = (tmp_path / "fake_bench" / "README.md").read_text()
    assert "second" in page and "small" in page and "first" not in page


def test_a_failed_run_a_help_and_a_child_process_write_nothing(common, monkeypatch, tmp_path):
    def fail():
        print("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _run(common, monkeypatch, [], fail)
    with pytest.raises(SystemExit):
        _run(common, monkeypatch, ["--help"], lambda: sys.exit(0))
    _run(common, monkeypatch, ["--child", "{}"], lambda: print("child"))
    assert not (tmp_path / "fake_bench").exists()
    assert sys.stdout is sys.__stdout__ or not hasattr(sys.stdout, "parts")  # stdout given back
