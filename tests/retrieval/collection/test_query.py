import numpy as np
import pytest

from index.errors import RetrError
from index.directory import VECTORS_FILE, IndexStore
from retrieval.collection.build import build_index
from retrieval.collection.info import index_info
from retrieval.collection.query import query_index
from tests.conftest import ODD


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


def test_query_path_repairs_an_index_whose_faiss_file_lags(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    with IndexStore.open(tmp_path / "ix") as store:
        row = store.catalog.image_rows()[str(photos / "flower.jpg")]
        store.catalog.delete_images([row.id])  # e.g. another tool deleted a row
    results = query_index(tmp_path / "ix", [photos / "flower.jpg"], k=12)
    assert all(h.path != str(photos / "flower.jpg") for h in results[0].results)
    assert len(results[0].results) == 11


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


def test_a_read_never_rewrites_a_faiss_file_out_of_step_it_searches_in_memory(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    before = (tmp_path / "ix" / VECTORS_FILE).read_bytes()
    with IndexStore.open(tmp_path / "ix") as store:
        store.catalog.delete_images([store.catalog.image_rows()[str(photos / "flower.jpg")].id])
    with IndexStore.open(tmp_path / "ix") as store:
        hits = store.search(store.vectors_for([store.catalog.image_rows()[str(photos / "coffee.jpg")].id]), 12)[0]
        assert len(hits) == 11 and hits[0].path == str(photos / "coffee.jpg")
        assert "out of step with the catalog; searching the catalog's 11 vectors in memory" in store.repairs[0]
        assert not store.writable
    assert (tmp_path / "ix" / VECTORS_FILE).read_bytes() == before  # the read wrote nothing
    assert build_index([photos], tmp_path / "ix", tiny_opts).added == 1  # the next write repairs the file
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.consistent() and store.manifest.vectors == 12


def test_a_missing_or_empty_catalog_behind_a_manifest_is_an_error_and_nothing_is_written(tmp_path, photos,
                                                                                          tiny_opts):
    from index.catalog.database import Catalog
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)
    files = {p.name: p.read_bytes() for p in ix.iterdir() if p.is_file()}
    (ix / "catalog.sqlite").rename(tmp_path / "away.sqlite")
    for read in (lambda: query_index(ix, [photos / "coffee.jpg"]), lambda: index_info(ix)):
        with pytest.raises(RetrError, match=r"catalog sqlite:///.*catalog.sqlite does not exist but the manifest "
                                            r"of .* records 12 vectors; restore the catalog"):
            read()
    assert not (ix / "catalog.sqlite").exists() and (ix / VECTORS_FILE).read_bytes() == files[VECTORS_FILE]
    typo = tmp_path / "typo.sqlite"
    with pytest.raises(RetrError, match="typo.sqlite does not exist but the manifest"):
        index_info(ix, f"sqlite:///{typo}")
    assert not typo.exists()  # no database is created by a read
    import sqlite3
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.close()
    with pytest.raises(RetrError, match=r"other.sqlite holds no retr catalog \(no images table\)"):
        query_index(ix, [photos / "coffee.jpg"], db_url=f"sqlite:///{other}")
    (tmp_path / "away.sqlite").rename(ix / "catalog.sqlite")
    cat = Catalog.for_index(ix, mode="write")
    cat.delete_images(cat.vector_ids())
    cat.close()
    with pytest.raises(RetrError, match="catalog.sqlite is empty but the manifest of .* records 12 vectors"):
        query_index(ix, [photos / "coffee.jpg"])
    assert (ix / VECTORS_FILE).read_bytes() == files[VECTORS_FILE]
