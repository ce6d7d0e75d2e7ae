"""regions.faiss and the region search, without any model: vectors are made up."""
import numpy as np
import pytest

from index.catalog.regions import ImageDone, RegionRecord, replace_regions
from index.directory import IndexStore
from index.regions import RegionIndex, best_per_parent
from tests.index.small_index import ids_of, unit


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
