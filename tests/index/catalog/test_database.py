import numpy as np
import pytest

from index.catalog.database import Catalog
from index.catalog.schema import STATUS_ERROR, STATUS_OK
from index.errors import RetrError


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    if request.param == "sqlite":
        cat = Catalog.for_index(tmp_path / "ix")
    else:
        cat = Catalog(request.getfixturevalue("pg_catalog_url"))
    yield cat
    cat.close()


def test_write_update_and_read_back_rows_and_vectors(catalog):
    v = np.arange(8, dtype=np.float32).reshape(2, 4)
    ids = catalog.write_images([
        {"path": "/a.jpg", "status": STATUS_OK, "sha256": "aa", "bytes": 10, "width": 3, "height": 2,
         "mtime": 1.5, "vector": v[0]},
        {"path": "/b.jpg", "status": STATUS_OK, "vector": v[1]},
        {"path": "/c.jpg", "status": STATUS_ERROR, "error": "truncated"},
    ])
    assert len(set(ids)) == 3
    rows = catalog.image_rows()
    assert rows["/a.jpg"].width == 3 and rows["/a.jpg"].has_vector
    assert not rows["/c.jpg"].has_vector and rows["/c.jpg"].error == "truncated"
    # an update keeps the id
    again = catalog.write_images([{"path": "/a.jpg", "status": STATUS_OK, "vector": v[1] * 2}])
    assert again[0] == ids[0]
    got_ids, got = zip(*catalog.iter_vectors(4, batch=1))
    assert [int(i[0]) for i in got_ids] == sorted(ids[:2])
    np.testing.assert_array_equal(catalog.vectors_for([ids[0]], 4)[0], v[1] * 2)
    assert catalog.counts() == {"images": 2, "errors": 1, "rows": 3}
    assert catalog.errors() == [("/c.jpg", "truncated")]
    assert catalog.paths_by_id(ids) == {ids[0]: "/a.jpg", ids[1]: "/b.jpg", ids[2]: "/c.jpg"}


def test_delete_removes_rows_and_vectors(catalog):
    ids = catalog.write_images([{"path": f"/{i}.jpg", "status": STATUS_OK,
                                 "vector": np.full(2, i, np.float32)} for i in range(5)])
    catalog.delete_images(ids[:2])
    assert list(catalog.vector_ids()) == ids[2:]
    assert set(catalog.image_rows()) == {"/2.jpg", "/3.jpg", "/4.jpg"}


def test_a_failed_transaction_writes_nothing(catalog):
    catalog.write_images([{"path": "/keep.jpg", "status": STATUS_OK}])
    # SQLite and PostgreSQL word the NOT NULL violation differently; both name the column
    with pytest.raises(RetrError, match=r"^catalog .*(NOT NULL constraint failed: images\.status"
                                        r"|null value in column \"status\")"):
        catalog.write_images([{"path": "/new.jpg", "status": STATUS_OK}, {"path": "/bad.jpg", "status": None}])
    assert set(catalog.image_rows()) == {"/keep.jpg"}


def test_a_mixed_batch_returns_each_records_id_in_order(catalog):
    """New rows go in as multi-row INSERTs grouped by columns; the ids still follow the records."""
    first = catalog.write_images([{"path": "/old.jpg", "status": STATUS_OK}])
    records = [{"path": f"/n{i}.jpg", "status": STATUS_OK, "vector": np.full(2, i, np.float32)} for i in range(40)]
    records.insert(7, {"path": "/bad.jpg", "status": STATUS_ERROR, "error": "truncated"})
    records.insert(20, {"path": "/old.jpg", "status": STATUS_OK, "width": 9})
    records.append({"path": "/n3.jpg", "status": STATUS_OK, "vector": np.full(2, 99, np.float32)})  # last wins
    ids = catalog.write_images(records)
    n3 = next(i for i, r in enumerate(records) if r["path"] == "/n3.jpg")
    assert ids[20] == first[0] and ids[-1] == ids[n3]
    by_path = {row.path: row.id for row in catalog.image_rows().values()}
    assert ids == [by_path[r["path"]] for r in records]
    assert len(by_path) == 42 and catalog.image_rows()["/old.jpg"].width == 9
    np.testing.assert_array_equal(catalog.vectors_for([by_path["/n3.jpg"]], 2)[0], [99, 99])
    np.testing.assert_array_equal(catalog.vectors_for([by_path["/n30.jpg"]], 2)[0], [30, 30])


def test_vectors_by_id_range_as_a_picklable_source(catalog):
    import pickle

    from index.catalog.vectors import CatalogVectors
    v = np.arange(40, dtype=np.float32).reshape(10, 4)
    ids = catalog.write_images([{"path": f"/{i}.jpg", "status": STATUS_OK, "vector": v[i]} for i in range(10)]
                               + [{"path": "/bad.jpg", "status": STATUS_ERROR, "error": "x"}])
    got = [(a, b) for a, b in catalog.iter_vectors(4, batch=2, first=ids[3], last=ids[6])]
    assert [int(i) for part, _ in got for i in part] == ids[3:7]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), v[3:7])
    source = pickle.loads(pickle.dumps(CatalogVectors(catalog.url, "images", 4)))  # as a worker receives it
    np.testing.assert_array_equal(source.ids(), ids[:10])
    np.testing.assert_array_equal(source.vectors_of(np.asarray(ids[8:10])), v[8:10])
    assert [len(i) for i, _ in source.chunks(ids[9], None)] == [1]
    assert list(source.chunks(ids[9] + 100, ids[9] + 200)) == []
