import dataclasses
import os
import shutil

import pytest
from PIL import Image

from index.catalog.regions import region_rows
from index.regions import RegionIndex
from index.directory import IndexStore
from retrieval.collection.build import BuildOptions, build_index
from retrieval.runtimes.settings import InferenceSettings
from retrieval.collection.query import query_index
from retrieval.regions import RegionOptions, RegionSettings
from retrieval.regions.sources.grid import grid_boxes
from tests.conftest import PHOTOS, TINY_MODEL, copy_photos

PASTE = (236, 134, 346, 244)  # where the cat's head lands in the rocket photo: inside its lower-right quadrant


@pytest.fixture
def three(tmp_path):
    return copy_photos(tmp_path / "photos", ("astronaut", "coffee", "rocket"))


def tiny(**changes):
    return dataclasses.replace(BuildOptions(model=TINY_MODEL, random_weights=True,
                                            inference=InferenceSettings(batch_size=8, workers=0)), **changes)


def test_a_pasted_crop_is_found_at_rank_1_through_the_region_index(tmp_path):
    """The offline ImageNet model (tf_efficientnet_lite0) on real photos; grid regions."""
    gallery = copy_photos(tmp_path / "gallery", ("astronaut", "coffee", "china", "coins"))
    head = Image.open(PHOTOS / "chelsea.jpg").crop((119, 17, 272, 170))  # the cat's head
    scene = Image.open(PHOTOS / "rocket.jpg").copy()
    scene.paste(head.resize((PASTE[2] - PASTE[0], PASTE[3] - PASTE[1])), PASTE[:2])
    scene.save(gallery / "rocket_with_cat.jpg")
    head.save(tmp_path / "query.jpg")

    report = build_index([gallery], tmp_path / "ix", BuildOptions(regions=RegionOptions("grid:1,2"),
                                                                  inference=InferenceSettings(workers=0)))
    assert report.regions.images == 5 and report.regions.total == 25
    hit = query_index(tmp_path / "ix", [tmp_path / "query.jpg"], k=3, regions=True)[0].results[0]
    assert (hit.rank, hit.path) == (1, str(gallery / "rocket_with_cat.jpg"))
    assert hit.region.box == (192.0, 128.0, 384.0, 256.0)  # the quadrant that holds the pasted head
    # --box: the head cut out of a bigger query image finds it too
    Image.open(PHOTOS / "chelsea.jpg").save(tmp_path / "cat.jpg")
    boxed = query_index(tmp_path / "ix", [tmp_path / "cat.jpg"], k=1, regions=True, box="119,17,272,170")[0]
    assert boxed.box == (119.0, 17.0, 272.0, 170.0) and boxed.results[0].path.endswith("rocket_with_cat.jpg")


def test_incremental_by_image_and_a_source_change_rebuilds_regions_only(tmp_path, three):
    ix = tmp_path / "ix"
    first = build_index([three], ix, tiny(regions=RegionOptions("grid:1,2")))
    assert (first.added, first.regions.images, first.regions.regions) == (3, 3, 15)
    with IndexStore.open(ix) as store:  # region rows point at the right parent and box
        for path, row in store.catalog.image_rows().items():
            boxes = [r.box for r in region_rows(store.catalog, image_id=row.id).values()]
            width, height = Image.open(path).size
            assert boxes == [tuple(b) for b in grid_boxes(width, height, (1, 2))]
    again = build_index([three], ix, tiny())  # no --regions: the index's own regions are kept up to date
    assert (again.added, again.regions.images, again.regions.total) == (0, 0, 15)

    shutil.copy(PHOTOS / "chelsea.jpg", three / "chelsea.jpg")  # one new image
    Image.open(three / "coffee.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(three / "coffee.jpg")  # one changed
    os.utime(three / "coffee.jpg", (1, 1))
    step = build_index([three], ix, tiny())
    assert (step.added, step.updated, step.regions.images, step.regions.total) == (1, 1, 2, 20)

    (three / "astronaut.jpg").unlink()
    gone = build_index([three], ix, tiny())
    assert (gone.removed, gone.regions.images, gone.regions.total) == (1, 0, 15)

    vectors_before = (ix / "vectors.faiss").stat().st_mtime_ns
    changed = build_index([three], ix, tiny(regions=RegionOptions("grid:1,2,3", RegionSettings(min_size=4))))
    assert changed.regions.rebuilt and (changed.added, changed.updated) == (0, 0)
    assert (changed.regions.images, changed.regions.total) == (3, 3 * 14)
    assert (ix / "vectors.faiss").stat().st_mtime_ns == vectors_before  # image vectors untouched
    with IndexStore.open(ix) as store:
        assert RegionIndex(store).consistent() and RegionIndex(store).state["source"] == "grid:1,2,3"


def test_region_boxes_are_drawn_where_they_are_on_html_thumbnails(tmp_path):
    import base64
    import io

    import numpy as np

    from retrieval.images.gallery import thumbnail_uri
    Image.new("RGB", (1000, 800), (0, 0, 255)).save(tmp_path / "big.jpg")  # JPEG draft decodes it smaller
    uri = thumbnail_uri(tmp_path / "big.jpg", 200, box=(500, 400, 1000, 800))
    thumb = np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")).astype(int)
    assert thumb.shape[:2] == (160, 200)
    red = (thumb[..., 0] > 150) & (thumb[..., 2] < 100)
    ys, xs = np.nonzero(red)
    assert abs(xs.min() - 100) <= 3 and abs(ys.min() - 80) <= 3  # the box's corner at (500, 400) / 5
