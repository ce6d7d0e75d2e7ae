import pytest

from index.catalog.database import Catalog
from index.catalog.clusters import latest_members, latest_run, run_members, store_run


@pytest.fixture()
def catalog(tmp_path):
    cat = Catalog.for_index(tmp_path / "idx")
    cat.write_images([{"path": f"/photos/{i}.jpg", "status": "ok"} for i in range(5)])
    yield cat
    cat.close()


def ids_of(catalog):
    return [row.id for row in sorted(catalog.image_rows().values(), key=lambda r: r.path)]


def test_no_run_yet(catalog):
    assert latest_run(catalog) is None
    assert latest_members(catalog) is None


def test_runs_and_members_round_trip(catalog):
    ids = ids_of(catalog)
    first = store_run(catalog, k=2, method="fasterpam", loss=1.5, silhouette=0.4, seconds=0.1, image_ids=ids,
                      clusters=[0, 0, 1, 1, 1], medoid_ids=[ids[0], ids[3]])
    second = store_run(catalog, k=1, method="pam", loss=3.0, silhouette=None, seconds=0.2, image_ids=ids[:3],
                       clusters=[0, 0, 0], medoid_ids=[ids[1]], sampled=True)
    assert second > first
    run = latest_run(catalog)
    assert run["id"] == second and run["k"] == 1 and run["method"] == "pam" and run["n"] == 3
    assert run["sampled"] is True and run["clusters"] == 1 and run["silhouette"] is None
    members = run_members(catalog, first)
    assert [(m.image_id, m.cluster, m.is_medoid) for m in members] == [
        (ids[0], 0, True), (ids[1], 0, False), (ids[2], 1, False), (ids[3], 1, True), (ids[4], 1, False)]
    assert [m.image_id for m in latest_members(catalog) if m.is_medoid] == [ids[1]]


def test_deleting_an_image_removes_its_membership(catalog):
    ids = ids_of(catalog)
    run_id = store_run(catalog, k=1, method="fasterpam", loss=0.0, silhouette=None, seconds=0.0,
                       image_ids=ids, clusters=[0] * 5, medoid_ids=[ids[0]])
    catalog.delete_images([ids[4]])
    assert [m.image_id for m in run_members(catalog, run_id)] == ids[:4]


def test_inconsistent_runs_are_refused(catalog):
    ids = ids_of(catalog)
    with pytest.raises(ValueError, match="5 image ids but 4 cluster ids"):
        store_run(catalog, k=1, method="x", loss=0, silhouette=None, seconds=0, image_ids=ids,
                  clusters=[0] * 4, medoid_ids=[ids[0]])
    with pytest.raises(ValueError, match="medoid ids"):
        store_run(catalog, k=1, method="x", loss=0, silhouette=None, seconds=0, image_ids=ids[:2],
                  clusters=[0, 0], medoid_ids=[ids[3]])
    assert latest_run(catalog) is None
