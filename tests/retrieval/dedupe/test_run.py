"""The dedupe runs (retrieval/dedupe/run.py): an index or folders, actions and their safety checks, undo,
and checking one image against the catalog."""
from __future__ import annotations

import os
import shutil

import pytest

from index.catalog.database import Catalog
from index.catalog.hashes import hash_counts
from retrieval.collection.build import BuildOptions, build_index
from retrieval.runtimes.settings import InferenceSettings
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.run import Action, check_image, dedupe_index, dedupe_paths, undo_manifest
from tests.conftest import PHOTOS, TINY_MODEL, copy_photos
from tests.retrieval.dedupe.libraries import catalog_index, linked_library
from tests.retrieval.dedupe.photos import digest, make_library, photo

TINY = BuildOptions(model=TINY_MODEL, random_weights=True, inference=InferenceSettings(workers=0))


def test_an_index_is_hashed_once_checked_and_deduplicated(tmp_path):
    files = make_library(tmp_path / "lib")
    idx = catalog_index(tmp_path, files)
    result, _ = dedupe_index(idx, DedupeOptions(), workers=1)
    assert result.n_duplicates == 3
    assert hash_counts(Catalog.for_index(idx)) == {("phash", 8): 7}  # computed once, stored

    matches = check_image(files["astro_q40"], idx, DedupeOptions())
    assert {m.path for m in matches} >= {str(files["astro"])}
    other = tmp_path / "other.jpg"
    photo("camera").save(other)
    assert check_image(other, idx, DedupeOptions()) == []

    dedupe_index(idx, DedupeOptions(), Action(delete=True, yes=True), workers=1)
    rows = Catalog.for_index(idx).image_rows()
    assert len(rows) == 4 and all(os.path.exists(p) for p in rows)


def test_check_with_embeddings_finds_what_the_hash_misses(tmp_path):
    from PIL import ImageOps
    files = make_library(tmp_path / "lib")
    idx = tmp_path / "emb-idx"
    build_index([tmp_path / "lib"], idx, TINY)
    mirrored = tmp_path / "mirrored.jpg"  # a mirror image: its phash is far from the original's
    ImageOps.mirror(photo("astronaut")).save(mirrored, quality=80)
    assert check_image(mirrored, idx, DedupeOptions(threshold=4, verify=False)) == []
    # local features do not match a mirror image (no similarity transform maps one onto the other)
    assert check_image(mirrored, idx, DedupeOptions(threshold=4, embeddings=True, similarity=0.5)) == []
    matches = [m.to_json() for m in check_image(mirrored, idx, DedupeOptions(threshold=4, embeddings=True,
                                                                             similarity=0.5, verify=False))]
    assert {m["reason"] for m in matches} == {"embedding"}
    astro = {str(files[k]) for k in ("astro", "astro_small", "astro_q40", "astro_crop")}
    assert {m["path"] for m in matches[:4]} == astro  # the astronaut's copies are the nearest
    assert [m["distance"] for m in matches] == sorted(m["distance"] for m in matches)
    assert all(0 <= m["distance"] <= 0.5 for m in matches)


@pytest.mark.parametrize("mode", ["folder", "index"])
@pytest.mark.parametrize("act", ["delete", "move"])
def test_a_symlink_and_its_target_are_one_image(tmp_path, mode, act):
    lib = linked_library(tmp_path)
    files = {k: lib / k for k in ("x.jpg", "album/x.jpg", "z_copy.jpg", "brick.jpg")}
    action = Action(delete=True, yes=True) if act == "delete" else \
        Action(move_to=str(tmp_path / "q"), manifest=str(tmp_path / "m.jsonl"))
    if mode == "folder":
        result, done = dedupe_paths([lib], DedupeOptions(), action, workers=1)
    else:
        result, done = dedupe_index(catalog_index(tmp_path, files), DedupeOptions(), action, workers=1)
    data = result.to_json()
    assert data["n_images"] == 3 and data["aliases"] == [{"path": str(files["album/x.jpg"]),
                                                          "same_file_as": str(files["x.jpg"])}]
    assert [(g["keep"], [d["path"] for d in g["duplicates"]]) for g in data["groups"]] == \
        [(str(files["x.jpg"]), [str(files["z_copy.jpg"])])]
    assert [d["path"] for d in done.to_json()["done"]] == [str(files["z_copy.jpg"])]
    assert not files["z_copy.jpg"].exists()
    assert files["album/x.jpg"].is_symlink() and digest(files["album/x.jpg"]) == digest(PHOTOS / "coffee.jpg")
    if mode == "index":
        assert set(Catalog.for_index(tmp_path / "idx").image_rows()) == \
            {str(files[k]) for k in ("x.jpg", "album/x.jpg", "brick.jpg")}
    if act == "move":
        assert len(undo_manifest(tmp_path / "m.jsonl").done) == 1
        assert files["z_copy.jpg"].read_bytes() == files["x.jpg"].read_bytes()


def test_a_duplicate_that_other_paths_reach_is_left_in_place(tmp_path):
    lib = linked_library(tmp_path)
    (lib / "x.jpg").rename(lib / "zz.jpg")  # now z_copy.jpg is kept (path order) and zz.jpg is its duplicate
    (lib / "album" / "x.jpg").unlink()
    (lib / "album" / "x.jpg").symlink_to(os.path.join("..", "zz.jpg"))
    _, done = dedupe_paths([lib], DedupeOptions(keep="first"), Action(delete=True, yes=True), workers=1)
    assert done.to_json()["skipped"] == [
        {"path": str(lib / "zz.jpg"),
         "reason": f"the same file is also reached as {lib / 'album' / 'x.jpg'}; left in place"}]
    assert (lib / "zz.jpg").exists() and (lib / "album" / "x.jpg").exists()


def test_a_stale_catalog_is_checked_before_any_delete(tmp_path):
    dd = tmp_path / "dd"
    for sub in ("orig", "sub", "sub2"):
        copy_photos(dd / sub, ("coffee",))
    copy_photos(dd / "orig", ("brick", "rocket"))
    copy_photos(dd / "sub", ("brick",))
    idx = tmp_path / "idd"
    build_index([dd], idx, TINY)
    assert dedupe_index(idx, DedupeOptions(), workers=1)[0].n_duplicates == 3

    (dd / "orig" / "coffee.jpg").unlink()  # the kept copy is gone
    shutil.copyfile(PHOTOS / "camera.jpg", dd / "sub" / "brick.jpg")  # a duplicate is now a new, unique photo
    _, done = dedupe_index(idx, DedupeOptions(), Action(delete=True, yes=True), workers=1)
    action = done.to_json()
    assert action["done"] == [] and action["catalog_rows"] == 0
    reasons = {s["path"]: s["reason"] for s in action["skipped"]}
    assert reasons == {
        str(dd / "sub" / "coffee.jpg"): f"its kept copy {dd / 'orig' / 'coffee.jpg'} no longer exists; left in place",
        str(dd / "sub2" / "coffee.jpg"): f"its kept copy {dd / 'orig' / 'coffee.jpg'} no longer exists; left in place",
        str(dd / "sub" / "brick.jpg"): "changed since it was hashed (sha256 differs); left in place"}
    assert (dd / "sub" / "coffee.jpg").exists() and (dd / "sub2" / "coffee.jpg").exists()
    assert digest(dd / "sub" / "brick.jpg") == digest(PHOTOS / "camera.jpg")
