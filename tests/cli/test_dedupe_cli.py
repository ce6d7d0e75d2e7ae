import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from cli.main import app
from index.catalog.database import Catalog
from index.catalog.hashes import hash_counts
from tests.conftest import PHOTOS, copy_photos
from tests.retrieval.dedupe.photos import digest, make_library

runner = CliRunner()


@pytest.fixture
def lib(tmp_path):
    return tmp_path, make_library(tmp_path / "lib")


def _catalog_index(tmp_path, files):
    """An index directory holding only catalog rows (what `retr index build` records, minus vectors)."""
    cat = Catalog.for_index(tmp_path / "idx")
    cat.write_images([{"path": str(p), "sha256": digest(p), "bytes": p.stat().st_size, "width": 1, "height": 1,
                       "mtime": p.stat().st_mtime, "status": "ok"} for k, p in files.items() if k != "astro_q40"])
    cat.close()
    return tmp_path / "idx"


def test_paths_json_has_the_issue_keys(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--json", "--workers", "1", "--csv", str(tmp / "d.csv"),
                              "--html", str(tmp / "d.html")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"n_images", "n_duplicates", "groups"}
    assert data["n_images"] == 8 and data["n_duplicates"] == 4
    dup = data["groups"][0]["duplicates"][0]
    assert set(dup) == {"path", "distance", "reason"}
    assert (tmp / "d.csv").read_text().startswith("group,role,path,reason,distance")
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
    assert all(p.exists() for p in files.values())


def test_delete_without_yes_is_refused(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--workers", "1", "--delete"])
    assert res.exit_code == 1
    assert "--yes" in res.output and all(p.exists() for p in files.values())


def test_index_dedupe_updates_the_catalog_and_check_exit_codes(lib):
    tmp, files = lib
    idx = _catalog_index(tmp, files)
    res = runner.invoke(app, ["dedupe", "--index", str(idx), "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_duplicates"] == 3
    assert hash_counts(Catalog.for_index(idx)) == {("phash", 8): 7}  # computed once, stored

    res = runner.invoke(app, ["dedupe", "--check", str(files["astro_q40"]), "--index", str(idx), "--json"])
    assert res.exit_code == 3, res.output
    found = json.loads(res.output)
    assert found["duplicate"] and {m["path"] for m in found["matches"]} >= {str(files["astro"])}
    other = tmp / "other.jpg"
    from tests.retrieval.dedupe.photos import photo
    photo("camera").save(other)
    res = runner.invoke(app, ["dedupe", "--check", str(other), "--index", str(idx)])
    assert res.exit_code == 0, res.output
    assert res.output == f"{other}: no duplicate in the catalog\n"

    res = runner.invoke(app, ["dedupe", "--index", str(idx), "--delete", "--yes", "--workers", "1"])
    assert res.exit_code == 0, res.output
    rows = Catalog.for_index(idx).image_rows()
    assert len(rows) == 4 and all(os.path.exists(p) for p in rows)


def test_calibrate_subcommand(lib):
    tmp, files = lib
    csv = tmp / "pairs.csv"
    csv.write_text(f"path_a,path_b,is_duplicate\n{files['astro']},{files['astro_small']},1\n"
                   f"{files['astro']},{files['rocket']},0\n")
    res = runner.invoke(app, ["dedupe", "calibrate", str(csv), "--hash", "phash", "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["hashes"]["phash"]["precision"] == 1.0 and data["pairs"] == 2
    res = runner.invoke(app, ["dedupe", "calibrate", str(csv), "--hash", "phash", "--workers", "1"])
    assert res.exit_code == 0 and "phash" in res.output


def test_usage_errors(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--keep", "newest"])
    assert res.exit_code == 1 and "unknown --keep policy 'newest'" in res.output
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--hash", "bogus"])
    assert res.exit_code == 1 and "unknown --hash 'bogus'" in res.output
    assert runner.invoke(app, ["dedupe", str(tmp / "lib"), "--index", str(tmp)]).exit_code == 2
    assert runner.invoke(app, ["dedupe", str(tmp / "nope")]).exit_code == 1


def test_check_with_embeddings_finds_what_the_hash_misses(lib, tmp_path):
    from PIL import ImageOps

    from tests.conftest import TINY_MODEL
    from tests.retrieval.dedupe.photos import photo
    _, files = lib
    idx = tmp_path / "emb-idx"
    res = runner.invoke(app, ["index", "build", str(tmp_path / "lib"), "--index", str(idx), "--model", TINY_MODEL,
                              "--random-weights", "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    mirrored = tmp_path / "mirrored.jpg"  # a mirror image: its phash is far from the original's
    ImageOps.mirror(photo("astronaut")).save(mirrored, quality=80)
    args = ["dedupe", "--check", str(mirrored), "--index", str(idx), "--threshold", "4", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and json.loads(res.output)["matches"] == [], res.output
    res = runner.invoke(app, args + ["--embeddings", "--similarity", "0.5"])
    assert res.exit_code == 3, res.output
    matches = json.loads(res.output)["matches"]
    assert {m["reason"] for m in matches} == {"embedding"}
    astro = {str(files[k]) for k in ("astro", "astro_small", "astro_q40", "astro_crop")}
    assert {m["path"] for m in matches[:4]} == astro  # the astronaut's copies are the nearest
    assert [m["distance"] for m in matches] == sorted(m["distance"] for m in matches)
    assert all(0 <= m["distance"] <= 0.5 for m in matches)


def test_bad_threshold_or_similarity_is_a_one_line_error(lib):
    tmp, files = lib
    res = runner.invoke(app, ["dedupe", str(tmp / "lib"), "--threshold", "99", "--workers", "1"])
    assert res.exit_code == 1 and "--threshold 99 is outside 0..64" in res.output
    res = runner.invoke(app, ["dedupe", "--check", str(files["astro"]), "--index", str(tmp / "idx"),
                              "--embeddings", "--similarity", "0"])
    assert res.exit_code == 1 and "--similarity must be in (0, 1]" in res.output


def _linked_library(tmp_path):
    """lib/x.jpg, lib/album/x.jpg -> ../x.jpg (the same file), and lib/z_copy.jpg (a real copy)."""
    lib = tmp_path / "lib"
    (lib / "album").mkdir(parents=True)
    shutil.copyfile(PHOTOS / "coffee.jpg", lib / "x.jpg")
    (lib / "album" / "x.jpg").symlink_to(os.path.join("..", "x.jpg"))
    shutil.copyfile(PHOTOS / "coffee.jpg", lib / "z_copy.jpg")
    shutil.copyfile(PHOTOS / "brick.jpg", lib / "brick.jpg")
    return lib


@pytest.mark.parametrize("mode", ["folder", "index"])
@pytest.mark.parametrize("act", ["delete", "move"])
def test_a_symlink_and_its_target_are_one_image(tmp_path, mode, act):
    lib = _linked_library(tmp_path)
    files = {k: lib / k for k in ("x.jpg", "album/x.jpg", "z_copy.jpg", "brick.jpg")}
    source = [str(lib)] if mode == "folder" else ["--index", str(_catalog_index(tmp_path, files))]
    action = ["--delete", "--yes"] if act == "delete" else ["--move-to", str(tmp_path / "q"),
                                                            "--manifest", str(tmp_path / "m.jsonl")]
    res = runner.invoke(app, ["dedupe", *source, "--workers", "1", "--json", *action])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["n_images"] == 3 and data["aliases"] == [{"path": str(files["album/x.jpg"]),
                                                          "same_file_as": str(files["x.jpg"])}]
    assert [(g["keep"], [d["path"] for d in g["duplicates"]]) for g in data["groups"]] == \
        [(str(files["x.jpg"]), [str(files["z_copy.jpg"])])]
    assert [d["path"] for d in data["action"]["done"]] == [str(files["z_copy.jpg"])]
    assert not files["z_copy.jpg"].exists()
    assert files["album/x.jpg"].is_symlink() and digest(files["album/x.jpg"]) == digest(PHOTOS / "coffee.jpg")
    if mode == "index":
        assert set(Catalog.for_index(tmp_path / "idx").image_rows()) == \
            {str(files[k]) for k in ("x.jpg", "album/x.jpg", "brick.jpg")}
    if act == "move":
        res = runner.invoke(app, ["dedupe", "--undo", str(tmp_path / "m.jsonl")])
        assert res.exit_code == 0 and "restored 1 file(s)" in res.output, res.output
        assert files["z_copy.jpg"].read_bytes() == files["x.jpg"].read_bytes()


def test_a_duplicate_that_other_paths_reach_is_left_in_place(tmp_path):
    lib = _linked_library(tmp_path)
    (lib / "x.jpg").rename(lib / "zz.jpg")  # now z_copy.jpg is kept (path order) and zz.jpg is its duplicate
    (lib / "album" / "x.jpg").unlink()
    (lib / "album" / "x.jpg").symlink_to(os.path.join("..", "zz.jpg"))
    res = runner.invoke(app, ["dedupe", str(lib), "--workers", "1", "--json", "--delete", "--yes"])
    assert res.exit_code == 0, res.output
    skipped = json.loads(res.output)["action"]["skipped"]
    assert skipped == [{"path": str(lib / "zz.jpg"),
                        "reason": f"the same file is also reached as {lib / 'album' / 'x.jpg'}; left in place"}]
    assert (lib / "zz.jpg").exists() and (lib / "album" / "x.jpg").exists()


def test_a_stale_catalog_is_checked_before_any_delete(tmp_path):
    from tests.conftest import TINY_MODEL
    dd = tmp_path / "dd"
    for sub in ("orig", "sub", "sub2"):
        copy_photos(dd / sub, ("coffee",))
    copy_photos(dd / "orig", ("brick", "rocket"))
    copy_photos(dd / "sub", ("brick",))
    idx = str(tmp_path / "idd")
    res = runner.invoke(app, ["index", "build", str(dd), "--index", idx, "--model", TINY_MODEL, "--random-weights",
                              "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["dedupe", "--index", idx, "--json", "--workers", "1"])
    assert res.exit_code == 0 and json.loads(res.output)["n_duplicates"] == 3, res.output

    (dd / "orig" / "coffee.jpg").unlink()  # the kept copy is gone
    shutil.copyfile(PHOTOS / "camera.jpg", dd / "sub" / "brick.jpg")  # a duplicate is now a new, unique photo
    res = runner.invoke(app, ["dedupe", "--index", idx, "--delete", "--yes", "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    action = json.loads(res.output)["action"]
    assert action["done"] == [] and action["catalog_rows"] == 0
    reasons = {s["path"]: s["reason"] for s in action["skipped"]}
    assert reasons == {
        str(dd / "sub" / "coffee.jpg"): f"its kept copy {dd / 'orig' / 'coffee.jpg'} no longer exists; left in place",
        str(dd / "sub2" / "coffee.jpg"): f"its kept copy {dd / 'orig' / 'coffee.jpg'} no longer exists; left in place",
        str(dd / "sub" / "brick.jpg"): "changed since it was hashed (sha256 differs); left in place"}
    assert (dd / "sub" / "coffee.jpg").exists() and (dd / "sub2" / "coffee.jpg").exists()
    assert digest(dd / "sub" / "brick.jpg") == digest(PHOTOS / "camera.jpg")
    res = runner.invoke(app, ["dedupe", "--index", idx, "--delete", "--yes", "--workers", "1"])
    assert res.exit_code == 0 and "deleted 0 file(s)" in res.output and "changed since it was hashed" in res.output


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
    idx = _catalog_index(tmp, files)
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
