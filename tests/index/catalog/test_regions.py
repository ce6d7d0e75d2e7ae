"""Region rows in the catalog, without any model: vectors are made up."""
from index.catalog.regions import (MARKER, ImageDone, RegionRecord, clear_regions, pending_images, region_counts,
                                   region_rows, replace_regions)
from index.catalog.schema import STATUS_OK, Region
from tests.index.small_index import ids_of, unit


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
    assert clear_regions(store.catalog) > 0 and len(store.catalog.vector_ids(table=Region)) == 0
