import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.retrieval.dedupe.libraries import catalog_index, linked_library
from tests.retrieval.dedupe.photos import make_library, photo

runner = CliRunner()


@pytest.fixture
def lib(tmp_path):
    return tmp_path, make_library(tmp_path / "lib")


def test_paths_json_has_the_issue_keys(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--json", "--workers", "1", "--csv", str(tmp / "d.csv"),
                              "--html", str(tmp / "d.html")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"n_images", "n_duplicates", "n_similar", "groups", "similar", "low_information", "unverified"}
    assert data["n_images"] == 8 and data["n_duplicates"] == 4
    dup = data["groups"][0]["duplicates"][0]
    assert set(dup) == {"path", "kind", "distance", "reason", "inliers"}
    assert (tmp / "d.csv").read_text().startswith("group,role,path,kind,reason,distance")
    html = (tmp / "d.html").read_text()
    assert html.count("data:image/jpeg;base64") == 6 and html.count("KEEP") == 2  # 2 groups: 4 + 2 images


def test_table_move_and_undo(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", "--move-to", str(tmp / "q"),
                              "--manifest", str(tmp / "m.jsonl")])
    assert res.exit_code == 0, res.output
    assert "moved 4 file(s)" in res.output and "retr dedupe --undo" in res.output
    assert sum(p.exists() for p in files.values()) == 4
    res = runner.invoke(app, ["dedupe", "--undo", str(tmp / "m.jsonl")])
    assert res.exit_code == 0, res.output
    assert res.output == "restored 4 file(s); catalog rows restored: 0\n"
    assert all(p.exists() for p in files.values())


def test_delete_without_yes_is_refused(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", "--delete"])
    assert res.exit_code == 1
    assert "--yes" in res.output and all(p.exists() for p in files.values())


def test_index_dedupe_json_and_check_exit_codes(lib):
    tmp, files = lib
    idx = catalog_index(tmp, files)
    res = runner.invoke(app, ["dedupe", "--index", str(idx), "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_duplicates"] == 3

    res = runner.invoke(app, ["dedupe", "--check", str(files["astro_q40"]), "--index", str(idx), "--json"])
    assert res.exit_code == 3, res.output
    found = json.loads(res.output)
    assert set(found) == {"image", "duplicate", "kinds", "matches"} and found["duplicate"] is True
    assert set(found["matches"][0]) == {"path", "kind", "distance", "reason", "inliers"}
    assert {m["reason"] for m in found["matches"]} <= {"exact", "verified"}
    res = runner.invoke(app, ["dedupe", "--check", str(files["astro_q40"]), "--index", str(idx)])
    assert res.exit_code == 3 and res.output.startswith(f"{files['astro_q40']} duplicates "), res.output
    other = tmp / "other.jpg"
    photo("camera").save(other)
    res = runner.invoke(app, ["dedupe", "--check", str(other), "--index", str(idx)])
    assert res.exit_code == 0, res.output
    assert res.output == f"{other}: no duplicate in the catalog\n"

    res = runner.invoke(app, ["dedupe", "--index", str(idx), "--delete", "--yes", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "deleted 3 file(s); catalog rows removed: 3" in res.output


def test_files_left_in_place_are_listed_after_the_action_line(tmp_path):
    lib = linked_library(tmp_path)
    (lib / "x.jpg").rename(lib / "zz.jpg")  # z_copy.jpg is kept; zz.jpg, its duplicate, is also album/x.jpg
    (lib / "album" / "x.jpg").unlink()
    (lib / "album" / "x.jpg").symlink_to(os.path.join("..", "zz.jpg"))
    res = runner.invoke(app, ["dedupe", str(lib), "--workers", "1", "--delete", "--yes", "--keep", "first"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-2:] == [
        "deleted 0 file(s); catalog rows removed: 0",
        f"  skipped {lib / 'zz.jpg'}: the same file is also reached as {lib / 'album' / 'x.jpg'}; left in place"]


def test_calibrate_subcommand(lib):
    tmp, files = lib
    csv = tmp / "pairs.csv"
    csv.write_text(f"path_a,path_b,is_duplicate\n{files['astro']},{files['astro_small']},1\n"
                   f"{files['astro']},{files['rocket']},0\n")
    res = runner.invoke(app, ["dedupe", "calibrate", str(csv), "--hash", "phash", "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["hashes"]["phash"]["precision"] == 1.0 and data["pairs"] == 2
    v = data["verification"]
    assert v["default_precision"] == 1.0 and v["default_recall"] == 1.0 and v["min_inliers"] >= 4
    res = runner.invoke(app, ["dedupe", "calibrate", str(csv), "--hash", "phash", "--workers", "1"])
    assert res.exit_code == 0 and "phash" in res.output and "verification (inlier ratio >= " in res.output
    assert f"aligned densely (smooth pictures): {v['aligned']['pairs']} pairs" in res.output


def test_usage_errors(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--keep", "newest"])
    assert res.exit_code == 1 and "unknown --keep policy 'newest'" in res.output
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--hash", "bogus"])
    assert res.exit_code == 1 and "unknown --hash 'bogus'" in res.output
    assert runner.invoke(app, ["dedupe", str(tmp / "lib"), "--index", str(tmp)]).exit_code == 2
    assert runner.invoke(app, ["dedupe", str(tmp / "nope")]).exit_code == 1


def test_bad_threshold_or_similarity_is_a_one_line_error(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--threshold", "99", "--workers", "1"])
    assert res.exit_code == 1 and "--threshold 99 is outside 0..64" in res.output
    res = runner.invoke(app, ["dedupe", "--check", str(files["astro"]), "--index", str(tmp / "idx"),
                              "--embeddings", "--similarity", "0"])
    assert res.exit_code == 1 and "--similarity must be in (0, 1]" in res.output


def test_a_newline_in_a_file_name_keeps_the_table_one_line_per_file(lib):
    tmp, files = lib
    odd = tmp / "lib" / "two\nlines\x1b.jpg"
    shutil.copyfile(files["coffee"], odd)
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 1 + 2 + 5  # header, 2 groups, 5 duplicates
    assert any(line.endswith("/lib/two\\nlines\\x1b.jpg") for line in lines)


def test_a_non_utf8_file_name_in_the_reports(lib):
    tmp, files = lib
    bad = os.path.join(os.fsencode(tmp / "lib"), b"bad\xff\xfe.jpg")
    shutil.copyfile(files["coffee"], bad)
    out = ["--html", str(tmp / "d.html"), "--csv", str(tmp / "d.csv")]
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", *out])
    assert res.exit_code == 0, res.output
    assert f"  {tmp}/lib/bad\\xff\\xfe.jpg: file name is not valid UTF-8; rename it to index it" in res.output
    assert (tmp / "d.html").read_text(encoding="utf-8").count("data:image/jpeg;base64") == 6
    assert (tmp / "d.csv").read_text(encoding="utf-8").count("\n") == 1 + 6
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["n_duplicates"] == 4, res.output


def test_a_hostile_undo_manifest_is_a_one_line_error(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", "--move-to", str(tmp / "q"),
                              "--manifest", str(tmp / "m.jsonl")])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (tmp / "m.jsonl").read_text().splitlines()]
    plans = [r for r in records if r.get("op") == "plan"]
    plans[-1]["dst"] = str(tmp / "lib" / "trip" / "coffee.jpg")  # the last plan would move a kept photo away
    (tmp / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    res = runner.invoke(app, ["dedupe", "--undo", str(tmp / "m.jsonl")])
    assert res.exit_code == 1
    assert res.output.startswith(f"error: manifest {tmp / 'm.jsonl'} line ") and res.output.count("\n") == 1
    assert "is not inside the quarantine folder" in res.output and "nothing was moved" in res.output
    assert sum(p.exists() for p in files.values()) == 4  # still 4 in the quarantine


def test_dedupe_actions_take_the_writer_lock_and_reports_do_not(lib):
    from index.lock import FolderLock
    tmp, files = lib
    idx = catalog_index(tmp, files)
    lock = FolderLock(idx, "retr index build")
    lock.acquire()
    try:
        res = runner.invoke(app, ["dedupe", "--index", str(idx), "--json", "--workers", "1"])
        assert res.exit_code == 0, res.output  # a report is a read: never blocked by a writer
        res = runner.invoke(app, ["dedupe", "--index", str(idx), "--delete", "--yes", "--workers", "1"])
        assert res.exit_code == 1
        assert "is writing the index" in res.output and "`retr index build`" in res.output
        assert all(p.exists() for p in files.values())  # nothing was deleted while another process writes
    finally:
        lock.release()
