import numpy as np
import pytest
from PIL import Image

from index.errors import RetrError
from retrieval.regions import make_source
from retrieval.regions.sources.grid import grid_boxes, window_boxes


def coverage(boxes, width, height):
    seen = np.zeros((height, width), dtype=np.int32)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        seen[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))] += 1
    return seen


@pytest.mark.parametrize("size", [(640, 427), (300, 500), (97, 61)])
def test_each_grid_level_tiles_the_image_exactly(size):
    width, height = size
    for n in (1, 2, 3, 5):
        boxes = grid_boxes(width, height, (n,))
        assert len(boxes) == n * n
        assert (coverage(boxes, width, height) == 1).all()  # every pixel once: no gap, no overlap


@pytest.mark.parametrize("size", [(640, 427), (300, 500)])
def test_windows_cover_every_pixel_at_every_size(size):
    width, height = size
    for frac in (0.6, 0.4, 0.25):
        boxes = window_boxes(width, height, (frac,))[1:]  # without the whole-image window
        assert (coverage(boxes, width, height) >= 1).all()
        side = frac * min(width, height)
        assert all(abs((x1 - x0) - side) < 1e-6 and abs((y1 - y0) - side) < 1e-6 for x0, y0, x1, y1 in boxes)
    assert window_boxes(width, height, (0.5,))[0] == (0.0, 0.0, float(width), float(height))


def test_grid_source_proposes_the_pyramid():
    image = Image.new("RGB", (200, 100))
    proposals = make_source("grid:1,2").propose(image)
    assert [p.label for p in proposals] == ["grid1"] + ["grid2"] * 4
    assert proposals[0].box == (0.0, 0.0, 200.0, 100.0)
    assert proposals[4].box == (100.0, 50.0, 200.0, 100.0)
    assert make_source("grid").key() == "grid:1,2,3,4"
    assert len(make_source("grid").propose(image)) == 1 + 4 + 9 + 16


@pytest.mark.parametrize("spec", ["grid:0", "grid:a,b", "windows:1.5", "windows:,", "nosuch"])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(RetrError) as info:
        make_source(spec)
    assert "\n" not in str(info.value)
