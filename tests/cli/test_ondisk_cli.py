"""An index built on disk (RETR_ONDISK_MIN_BYTES forced low) through the CLI: `retr index build --json` stays
clean JSON, `retr query`, `retr index info` and Collection answer from the memory-mapped lists as a flat index
of the same photos does."""
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.conftest import TINY_MODEL

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", TINY_MODEL, "--random-weights", "--workers", "0"]


def top(ix, photos, names, k=5):
    result = runner.invoke(app, ["query", *[str(photos / n) for n in names], "--index", str(ix), "-k", str(k),
                                 "--json"])
    assert result.exit_code == 0, result.output
    return [[(r["path"], round(r["score"], 4)) for r in q["results"]] for q in json.loads(result.stdout)]


def test_an_on_disk_index_answers_as_a_flat_one(tmp_path, photos, monkeypatch):
    flat = runner.invoke(app, ["index", "build", str(photos), "--index", str(tmp_path / "flat"), *TINY,
                               "--index-type", "flat"])
    assert flat.exit_code == 0, flat.output
    env = {**os.environ, "RETR_ONDISK_MIN_BYTES": "1", "RETR_ONDISK_WORKERS": "2",
           "RETR_ONDISK_SHARD_BYTES": str(4 * 4 * 32)}  # a few vectors a shard: several shards, two processes
    done = subprocess.run([sys.executable, "-m", "cli.main", "index", "build", str(photos), "--index",
                           str(tmp_path / "disk"), *TINY, "--index-type", "IVF2,Flat", "--json", "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 12  # nothing but the report on stdout

    monkeypatch.setenv("RETR_ONDISK_MIN_BYTES", "1")
    info = runner.invoke(app, ["index", "info", "--index", str(tmp_path / "disk"), "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.stdout)
    assert data["factory"] == "IVF2,Flat" and data["search"] == {"nprobe": 2}
    assert data["ivfdata"]["file"].endswith(".ivfdata") and data["ivfdata"]["bytes"] > 0
    assert "memory-mapped" in runner.invoke(app, ["index", "info", "--index", str(tmp_path / "disk")]).stdout

    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert top(tmp_path / "disk", photos, names) == top(tmp_path / "flat", photos, names)

    from retrieval.collection.api import Collection
    from index.ann.searcher import lists_on_disk
    with Collection(tmp_path / "disk") as col:
        assert lists_on_disk(col.store.searcher().cpu)
        hits = col.query(str(photos / "chelsea.jpg"), k=3)[0].results
        assert [h.path for h in hits] == [p for p, _ in top(tmp_path / "flat", photos, ["chelsea.jpg"], 3)[0]]
