"""Region rows and regions.faiss, without any model: vectors are made up."""
import numpy as np
import pytest

from index.manifest import Manifest, ids_digest, read_manifest, write_manifest
from index.regions import (MARKER, RegionIndex, RegionRecord, ImageDone, best_per_parent, clear_regions,
                           pending_images, region_counts, region_ids, region_rows, replace_regions)
from index.catalog.schema import STATUS_OK
from index.directory import IndexStore

DIM = 4


def unit(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(tmp_path):
    store = IndexStore.open(tmp_path / "ix", create=True)
    write_manifest(store.dir, Manifest(model={"spec": "m", "weights": "w", "dim": DIM}, dim=DIM, factory="Flat",
                                       index_type="auto", vectors=0, ids_digest=ids_digest([])))
    store.manifest = read_manifest(store.dir)
    store.catalog.write_images([
        {"path": f"/p/{n}.jpg", "status": STATUS_OK, "sha256": f"sha-{n}", "width": 100, "height": 80,
         "vector": unit(1, i, 0, 0)} for i, n in enumerate("abc")])
    store.rebuild()
    yield store
    store.close()


def ids_of(store):
    return {p.rsplit("/", 1)[1][0]: r.id for p, r in store.catalog.image_rows().items()}


def test_rows_point_at_their_parent_and_box_and_markers_track_content(store):
    ids = ids_of(store)
    assert {p.id for p in pending_images(store.catalog, "src")} == set(ids.values())
    new = replace_regions(store.catalog, "src", [
        ImageDone(ids["a"], "sha-a", (100, 80), [RegionRecord((1, 2, 30, 40), unit(0, 0, 1, 0), "cat", 0.9, 120.0),
                                                 RegionRecord((50, 0, 100, 80), unit(0, 0, 0, 1))]),
        ImageDone(ids["b"], "sha-b", (100, 80), [])])  # no region found is still an answer
    rows = region_rows(store.catalog, new[0])
    assert [(r.image_id, r.box, r.label, r.score, r.mask_area) for r in rows.values()] == [
        (ids["a"], (1.0, 2.0, 30.0, 40.0), "cat", 0.9, 120.0), (ids["a"], (50.0, 0.0, 100.0, 80.0), None, None, None)]
    assert new[1] == [] and region_counts(store.catalog) == {"regions": 2, "images": 2}
    assert [p.id for p in pending_images(store.catalog, "src")] == [ids["c"]]
    assert len(pending_images(store.catalog, "another source")) == 3
    # changed content (a new sha256 on the same row) makes the image pending again
    store.catalog.write_images([{"path": "/p/b.jpg", "status": STATUS_OK, "sha256": "sha-b2"}])
    assert {p.id for p in pending_images(store.catalog, "src")} == {ids["b"], ids["c"]}
    # replacing an image's regions drops its old ones
    replace_regions(store.catalog, "src", [ImageDone(ids["a"], "sha-a", (100, 80),
                                                     [RegionRecord((0, 0, 10, 10), unit(1, 1, 1, 1))])])
    assert [r.box for r in region_rows(store.catalog, image_id=ids["a"]).values()] == [(0.0, 0.0, 10.0, 10.0)]
    assert all(not r.label or not r.label.startswith(MARKER) for r in region_rows(store.catalog).values())
    assert clear_regions(store.catalog) > 0 and len(region_ids(store.catalog)) == 0


def test_region_index_ranks_parents_by_best_region_and_repairs_itself(store):
    ids = ids_of(store)
    regions = RegionIndex(store)
    regions.write_state({"source": "src"})
    replace_regions(store.catalog, "src", [
        ImageDone(ids["a"], "sha-a", (100, 80), [RegionRecord((0, 0, 10, 10), unit(0, 0, 1, 0)),
                                                 RegionRecord((10, 10, 20, 20), unit(0, 0, 1, 0.1))]),
        ImageDone(ids["b"], "sha-b", (100, 80), [RegionRecord((5, 5, 50, 50), unit(0, 0, 1, 0.5))]),
        ImageDone(ids["c"], "sha-c", (100, 80), [RegionRecord((5, 5, 50, 50), unit(0, 1, 0, 0))])])
    regions.rebuild()
    assert regions.consistent() and (store.dir / "regions.faiss").exists()
    hits = regions.search(unit(0, 0, 1, 0)[None], k=2)[0]
    assert [(h.rank, h.id, h.path) for h in hits] == [(1, ids["a"], "/p/a.jpg"), (2, ids["b"], "/p/b.jpg")]
    assert hits[0].region.box == (0.0, 0.0, 10.0, 10.0) and hits[0].score == pytest.approx(1.0)
    assert set(hits[0].to_json()["region"]) == {"id", "box", "label", "score"}
    # deleting an image cascades to its regions; the faiss file no longer agrees: a reader searches the
    # catalog's vectors in memory and leaves the file alone, a writer rebuilds it
    store.catalog.delete_images([ids["a"]])
    assert not regions.consistent()
    before = regions.path.read_bytes()
    with IndexStore.open(store.dir) as reader:
        fresh = RegionIndex(reader)
        hits = fresh.search(unit(0, 0, 1, 0)[None], k=5)[0]
        assert [h.id for h in hits] == [ids["b"], ids["c"]] and not fresh.consistent()
        assert "searching the catalog's 2 region vectors in memory" in reader.repairs[0]
    assert regions.path.read_bytes() == before
    regions = RegionIndex(store)  # the writable store of the fixture
    hits = regions.search(unit(0, 0, 1, 0)[None], k=5)[0]
    assert [h.id for h in hits] == [ids["b"], ids["c"]] and regions.consistent()
    assert regions.state["vectors"] == 2 and "rebuilt it from the catalog's 2 region vectors" in store.repairs[0]


def test_best_per_parent_keeps_the_first_region_of_each_image():
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    ids = np.array([11, 12, 13, -1])
    assert best_per_parent(scores, ids, {11: 1, 12: 1, 13: 2}) == [(11, pytest.approx(0.9)), (13, pytest.approx(0.7))]
