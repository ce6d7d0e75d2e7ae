import numpy as np
import pytest
from PIL import Image

from retrieval.regions import Proposal, RegionSettings, crop, select


def test_threshold_min_size_and_clipping():
    props = [Proposal((-10, -10, 50, 50), "a", 0.9), Proposal((0, 0, 50, 50), "b", 0.3),
             Proposal((10, 10, 15, 80), "c", 0.99), Proposal((60, 60, 200, 200), None, None)]
    kept = select(props, (100, 100), RegionSettings(score_threshold=0.5, min_size=16))
    assert [p.label for p in kept] == ["a", None]  # b scores too low, c is 5 px wide
    assert kept[0].box == (0.0, 0.0, 50.0, 50.0) and kept[1].box == (60.0, 60.0, 100.0, 100.0)


def test_nms_is_per_label_and_orders_by_score():
    props = [Proposal((0, 0, 50, 50), "cat", 0.7), Proposal((2, 2, 52, 52), "cat", 0.9),
             Proposal((1, 1, 51, 51), "dog", 0.8), Proposal((60, 60, 99, 99), "cat", 0.6)]
    kept = select(props, (100, 100), RegionSettings())
    assert [(p.label, p.score) for p in kept] == [("cat", 0.9), ("dog", 0.8), ("cat", 0.6)]
    off = select(props, (100, 100), RegionSettings(nms_iou=None))
    assert len(off) == 4


def test_max_regions_keeps_the_best_and_padding_grows_boxes_within_the_image():
    props = [Proposal((10 * i, 0, 10 * i + 20, 20), "x", 0.5 + i / 100) for i in range(5)]
    kept = select(props, (60, 40), RegionSettings(nms_iou=None, max_regions=2, padding=0.5))
    assert [p.score for p in kept] == [0.54, 0.53]
    assert kept[0].box == (30.0, 0.0, 60.0, 30.0)  # (40, 0, 60, 20) grown by 10 px each side, clipped


def test_mask_crop_blanks_the_background():
    image = Image.new("RGB", (40, 40), (255, 0, 0))
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:20, 10:20] = True
    piece = np.array(crop(image, Proposal((5, 5, 25, 25), mask=mask), fill=(0, 0, 0)))
    assert piece.shape == (20, 20, 3)
    assert (piece[5:15, 5:15] == [255, 0, 0]).all() and piece[:5].max() == 0 and piece[15:].max() == 0
    kept = np.array(crop(image, Proposal((5, 5, 25, 25), mask=mask), blank_background=False))
    assert (kept == [255, 0, 0]).all()


@pytest.mark.parametrize("bad", [dict(score_threshold=1.5), dict(nms_iou=0.0), dict(max_regions=0),
                                 dict(min_size=-1), dict(padding=3)])
def test_settings_validate(bad):
    with pytest.raises(ValueError, match=str(list(bad.values())[0])):
        RegionSettings(**bad)


def test_command_line_settings_become_region_options():
    from index.errors import RetrError
    from retrieval.regions import make_region_options
    opts = make_region_options("mtcnn", score=0.9, nms=0, max_regions=3, blank_background=False)
    assert opts.spec == "mtcnn" and opts.settings == RegionSettings(score_threshold=0.9, nms_iou=None, max_regions=3,
                                                                    blank_background=False)
    assert make_region_options(None) is None
    with pytest.raises(RetrError, match="--regions NAME"):
        make_region_options(None, padding=0.1)
    with pytest.raises(RetrError, match="2.5"):
        make_region_options("grid", padding=2.5)
