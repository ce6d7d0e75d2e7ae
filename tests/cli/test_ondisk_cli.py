"""An index built on disk (RETR_ONDISK_MIN_BYTES forced low) through the CLI: `retr index build --json` stays
clean JSON, `retr query`, `retr index info` and Collection answer from the memory-mapped lists as a flat index
of the same photos does."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from index.ann import ondisk
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


ON_DISK = {"RETR_ONDISK_MIN_BYTES": "1", "RETR_ONDISK_WORKERS": "0"}  # in this process: CliRunner sees its stderr


def build(folder, ix, *args, index_type="IVF2,Flat"):
    return runner.invoke(app, ["index", "build", str(folder), "--index", str(ix), *TINY, "--index-type", index_type,
                               *args])


@pytest.fixture
def on_disk_env(monkeypatch):
    for name, value in ON_DISK.items():
        monkeypatch.setenv(name, value)


def copy_photos(photos, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(photos / name, folder / name)


def test_an_on_disk_build_shows_its_stages_and_none_with_json(tmp_path, photos, on_disk_env, monkeypatch):
    import cli.index_group
    monkeypatch.setattr(cli.index_group, "show_progress", lambda quiet: not quiet)  # as on a terminal
    shown = build(photos, tmp_path / "ix")
    assert shown.exit_code == 0, shown.output
    for stage in ondisk.STAGES:
        assert stage in shown.stderr
    assert "filling shards" in shown.stderr and "1/1" in shown.stderr  # 12 small vectors: one shard
    quiet = build(photos, tmp_path / "ix", "--json", index_type="IVF3,Flat")  # a new index type: rebuilt on disk
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.stdout)["total"] == 12 and quiet.stderr == ""
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["factory"] == "IVF3,Flat"


def test_eval_index_measures_an_on_disk_index(tmp_path, photos, on_disk_env):
    assert build(photos, tmp_path / "ix").exit_code == 0
    result = runner.invoke(app, ["eval", "index", "--index", str(tmp_path / "ix"), "--sample", "12", "-k", "3",
                                 "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["factory"] == "IVF2,Flat" and out["n"] == 12
    settings = {s["value"]: s["recall"] for s in out["settings"] if s["param"] == "nprobe"}
    assert settings[2] == 1.0  # both lists probed: exact


def test_serve_searches_an_on_disk_index_as_query_does(tmp_path, photos, on_disk_env):
    from tests.cli.serve_fixtures import serving
    assert build(photos, tmp_path / "ix").exit_code == 0
    expected = [p for p, _ in top(tmp_path / "ix", photos, ["rocket.jpg"], 4)[0]]
    with serving(tmp_path / "ix") as client:
        info = client.get("/api/info").json()
        assert info["ivfdata"]["file"].endswith(".ivfdata") and info["ivfdata"]["bytes"] > 0
        got = client.post("/api/search", params={"k": 4},
                          files={"image": ("q.jpg", (photos / "rocket.jpg").read_bytes(), "image/jpeg")})
        assert got.status_code == 200, got.text
        assert [r["path"] for r in got.json()["results"]] == expected
        by_id = client.get("/api/search", params={"id": 1, "k": 3})
        assert by_id.status_code == 200 and len(by_id.json()["results"]) == 3


def test_an_incremental_build_adds_to_an_on_disk_index_and_a_warm_collection_sees_it(tmp_path, photos, on_disk_env):
    from retrieval.collection.api import Collection
    from index.ann.searcher import lists_on_disk
    names = sorted(p.name for p in photos.glob("*.jpg"))
    folder = tmp_path / "images"
    copy_photos(photos, folder, names[:8])
    assert build(folder, tmp_path / "ix").exit_code == 0
    first = list((tmp_path / "ix").glob("*.ivfdata"))
    with Collection(tmp_path / "ix") as col:
        # 8 vectors are too few to tune on (as in memory): faiss's nprobe 1 until asked for both lists
        assert len(col.query(str(photos / names[0]), k=20, nprobe=2)[0].results) == 8
        copy_photos(photos, folder, names[8:])
        again = build(folder, tmp_path / "ix", "--json")
        assert again.exit_code == 0, again.output
        report = json.loads(again.stdout)
        assert report["added"] == len(names) - 8 and report["total"] == len(names)
        data = list((tmp_path / "ix").glob("*.ivfdata"))
        assert len(data) == 1 and data != first  # a new .ivfdata; the old one tidied away
        assert col.refresh()  # the rebuild by another writer is picked up
        assert lists_on_disk(col.store.searcher().cpu)
        hits = col.query(str(folder / names[-1]), k=len(names))[0].results
        assert len(hits) == len(names) and Path(hits[0].path).name == names[-1]
    assert runner.invoke(app, ["index", "build", str(folder), "--index", str(tmp_path / "flat"), *TINY,
                               "--index-type", "flat"]).exit_code == 0
    assert top(tmp_path / "ix", folder, names[-3:]) == top(tmp_path / "flat", folder, names[-3:])


def test_dedupe_moving_a_copy_rebuilds_the_on_disk_index_showing_its_stages(tmp_path, photos, on_disk_env,
                                                                            monkeypatch):
    import cli.dedupe
    from index.directory import IndexStore
    monkeypatch.setattr(cli.dedupe, "show_progress", lambda quiet: not quiet)  # as on a terminal
    folder = tmp_path / "images"
    copy_photos(photos, folder, sorted(p.name for p in photos.glob("*.jpg")))
    shutil.copy(photos / "chelsea.jpg", folder / "chelsea-copy.jpg")
    assert build(folder, tmp_path / "ix").exit_code == 0
    moved = runner.invoke(app, ["dedupe", "find", "--index", str(tmp_path / "ix"), "--move-to", str(tmp_path / "q")])
    assert moved.exit_code == 0, moved.output
    assert "merging shards" in moved.stderr  # the catalog lost a row: the on-disk index was rebuilt
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.consistent() and store.manifest.vectors == 12 and store.manifest.ivfdata is not None
    assert len(list((tmp_path / "ix").glob("*.ivfdata"))) == 1
    hits = top(tmp_path / "ix", folder, ["chelsea.jpg"], 12)[0]
    assert len(hits) == 12 and not any(p.endswith("chelsea-copy.jpg") for p, _ in hits)
