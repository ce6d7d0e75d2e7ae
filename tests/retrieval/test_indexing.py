import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index import vectors as V
from index.errors import RetrError
from index.store import VECTORS_FILE, IndexStore
from retrieval.indexing import BuildOptions, build_index, index_info
from retrieval.search import query_index
from tests.conftest import ODD, TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]


def counting(opts):
    seen = []
    return seen, (lambda n: seen.append(n))


def test_build_indexes_good_files_and_records_bad_ones(tmp_path, photos, tiny_opts):
    shutil.copytree(ODD, photos / "odd")
    report = build_index([photos], tmp_path / "ix", tiny_opts)
    good = 12 + 9  # photos + odd files that decode
    assert report.added == good and report.total == good
    reasons = {Path(p).name: e for p, e in report.skipped}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "corrupt.jpg", "notes.png", "bomb.png"}
    assert "decompression bomb" in reasons["bomb.png"] and "truncated" in reasons["truncated.jpg"]
    with IndexStore.open(tmp_path / "ix") as store:
        rows = store.catalog.image_rows()
        assert rows[str(photos / "odd" / "rotated.jpg")].width == 64  # EXIF-upright size
        assert rows[str(photos / "odd" / "empty.jpg")].status == "error"
        # faiss ids are exactly the catalog ids of embedded rows
        index = V.load(tmp_path / "ix" / VECTORS_FILE)
        assert set(V.ids_of(index)) == {r.id for r in rows.values() if r.status == "ok"}
    info = index_info(tmp_path / "ix")
    assert (info["images"], info["vectors"], info["errors"]) == (good, good, 5)


def test_query_equals_numpy_brute_force_over_catalog_vectors(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    results = query_index(tmp_path / "ix", [photos / "chelsea.jpg", photos / "rocket.jpg"], k=5)
    with IndexStore.open(tmp_path / "ix") as store:
        ids, vecs = next(store.catalog.iter_vectors(store.dim))
        paths = store.catalog.paths_by_id(ids)
        for r in results:
            q = vecs[list(ids).index(next(i for i, p in paths.items() if p == r.query))]
            order = np.argsort(-(vecs @ q))[:5]
            assert [h.id for h in r.results] == [int(ids[i]) for i in order]
            np.testing.assert_allclose([h.score for h in r.results], (vecs @ q)[order], atol=1e-5)
    assert results[0].results[0].path == str(photos / "chelsea.jpg") and results[0].results[0].score > 0.999


def test_rebuild_is_incremental_and_idempotent(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    seen = []
    again = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert (again.added, again.updated, again.removed, again.unchanged, seen) == (0, 0, 0, 12, [])
    # a changed file is re-embedded, a deleted one dropped, a new one added
    Image.open(photos / "coffee.jpg").rotate(180).save(photos / "coffee.jpg")
    os.utime(photos / "coffee.jpg", (1, 1))
    (photos / "rocket.jpg").unlink()
    Image.open(photos / "china.jpg").crop((0, 0, 200, 200)).save(photos / "new.png")
    report = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert (report.added, report.updated, report.removed, report.total, sum(seen)) == (1, 1, 1, 12, 2)
    with IndexStore.open(tmp_path / "ix") as store:
        assert str(photos / "rocket.jpg") not in store.catalog.image_rows()
        assert store.consistent()
        hit = store.search(store.vectors_for([store.catalog.image_rows()[str(photos / "new.png")].id]), 1)
        assert hit[0][0].path == str(photos / "new.png")


def test_interrupted_build_keeps_finished_batches_and_resumes(tmp_path, photos, tiny_opts):
    def stop_after_two(n, calls=[]):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        build_index([photos], tmp_path / "ix", tiny_opts, on_batch=stop_after_two)
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.catalog.counts()["images"] == 8  # two batches of 4 committed
        assert not store.consistent()  # the faiss file lags behind...
    seen = []
    report = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert sum(seen) == 4 and report.added == 4 and report.total == 12  # ...and the resume repairs it


def test_query_path_repairs_an_index_whose_faiss_file_lags(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    with IndexStore.open(tmp_path / "ix") as store:
        row = store.catalog.image_rows()[str(photos / "flower.jpg")]
        store.catalog.delete_images([row.id])  # e.g. another tool deleted a row
    results = query_index(tmp_path / "ix", [photos / "flower.jpg"], k=12)
    assert all(h.path != str(photos / "flower.jpg") for h in results[0].results)
    assert len(results[0].results) == 11


def test_kill_9_mid_build_then_resume(tmp_path, photos):
    # the child process hangs after its second batch is committed; then it is killed with SIGKILL
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "import time\n"
              "from retrieval.indexing import BuildOptions, build_index\n"
              "calls = []\n"
              "def hang(n):\n"
              "    calls.append(n)\n"
              "    if len(calls) == 2:\n"
              "        time.sleep(600)\n"
              f"build_index([{str(photos)!r}], {str(tmp_path / 'ix')!r}, BuildOptions(model={TINY_MODEL!r}, "
              "random_weights=True, workers=0, batch_size=2), on_batch=hang)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    from index.catalog import Catalog
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None and done < 4:
        time.sleep(0.2)
        if (tmp_path / "ix" / "catalog.sqlite").exists():
            try:
                cat = Catalog.for_index(tmp_path / "ix")
                done = cat.counts()["images"]
                cat.close()
            except Exception:  # the child may be creating the database right now
                pass
    proc.kill()
    proc.wait()
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.catalog.counts()["images"] == 4  # two committed batches survive kill -9
        assert not store.consistent()
    seen = []
    report = build_index([photos], tmp_path / "ix", BuildOptions(model=TINY_MODEL, random_weights=True,
                                                                  workers=0, batch_size=8), on_batch=seen.append)
    assert sum(seen) == 12 - 4 and report.added == 8 and report.total == 12


def test_wrong_model_for_an_index_is_refused(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    other = BuildOptions(model="test_resnet", random_weights=True, workers=0)
    with pytest.raises(RetrError, match="model mismatch"):
        build_index([photos], tmp_path / "ix", other)
    with pytest.raises(RetrError, match="model mismatch"):
        query_index(tmp_path / "ix", [photos / "coffee.jpg"], model="test_resnet")
    assert index_info(tmp_path / "ix")["vectors"] == 12  # nothing lost


def test_index_types_and_postgres_catalog(tmp_path, photos, tiny_opts, request):
    import dataclasses
    for kind, factory in (("flat", "Flat"), ("hnsw", "HNSW32"), ("IVF2,Flat", "IVF2,Flat")):
        report = build_index([photos], tmp_path / "ix", dataclasses.replace(tiny_opts, index_type=kind))
        assert report.factory == factory
        hit = query_index(tmp_path / "ix", [photos / "brick.jpg"], k=1)[0].results[0]
        assert hit.path == str(photos / "brick.jpg")


def test_an_impossible_index_type_is_refused_before_anything_is_embedded(tmp_path, photos, tiny_opts):
    import dataclasses

    from index.catalog import Catalog
    build_index([photos], tmp_path / "ix", tiny_opts)
    before = index_info(tmp_path / "ix")
    for bad, why in (("bogus", "could not parse index string bogus"), ("IVF4,PQ7", "multiple of")):
        with pytest.raises(RetrError, match=f"invalid --index-type '{bad}'.*{why}"):
            build_index([photos], tmp_path / "ix", dataclasses.replace(tiny_opts, index_type=bad))
    assert index_info(tmp_path / "ix") == before  # the stored index type, vectors and files are untouched
    with pytest.raises(RetrError, match="invalid --index-type"):
        build_index([photos], tmp_path / "new", dataclasses.replace(tiny_opts, index_type="bogus"))
    assert Catalog.for_index(tmp_path / "new").image_rows() == {}  # nothing embedded


def test_catalog_on_postgresql(tmp_path, photos, tiny_opts, pg_catalog_url):
    import dataclasses
    opts = dataclasses.replace(tiny_opts, db_url=pg_catalog_url)
    assert build_index([photos], tmp_path / "ix", opts).total == 12
    assert not (tmp_path / "ix" / "catalog.sqlite").exists()
    assert build_index([photos], tmp_path / "ix", opts).unchanged == 12
    hit = query_index(tmp_path / "ix", [photos / "gravel.jpg"], k=1, db_url=pg_catalog_url)[0].results[0]
    assert hit.path == str(photos / "gravel.jpg")


def test_missing_paths_and_query_images_are_clear_errors(tmp_path, photos, tiny_opts):
    with pytest.raises(RetrError, match="no such file or folder"):
        build_index([tmp_path / "nope"], tmp_path / "ix", tiny_opts)
    assert not (tmp_path / "ix").exists()
    build_index([photos], tmp_path / "ix", tiny_opts)
    with pytest.raises(RetrError, match="query image not found"):
        query_index(tmp_path / "ix", [tmp_path / "missing.jpg"])
    with pytest.raises(RetrError, match="cannot read query image"):
        query_index(tmp_path / "ix", [ODD / "truncated.jpg"])
    with pytest.raises(RetrError, match="no index at"):
        query_index(tmp_path / "elsewhere", [photos / "coffee.jpg"])


def test_unreadable_file_is_recorded_and_kept_out(tmp_path, photos, tiny_opts, monkeypatch):
    real_open = os.open  # images are read with os.open (regular files only)
    locked = str(photos / "coins.jpg")

    def guarded(file, *args, **kwargs):
        if str(file) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(os, "open", guarded)
    report = build_index([photos], tmp_path / "ix", tiny_opts)
    assert report.total == 11 and report.skipped == [(locked, "unreadable: Permission denied")]
