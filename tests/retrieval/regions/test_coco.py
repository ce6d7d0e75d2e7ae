import json

import numpy as np
import pytest
from PIL import Image

from index.errors import RetrError
from retrieval.regions import RegionSettings, make_source, region_crops
from retrieval.regions.sources.coco import decode_rle
from tests.conftest import DATA, PHOTOS

FIXTURE = DATA / "regions_coco.json"


def encode_rle_string(counts):
    """pycocotools' rleToString, transcribed: the writer the decoder must agree with."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_every_object_of_each_image_with_scaled_boxes_and_masks():
    source = make_source(f"coco:{FIXTURE}")
    astronaut = Image.open(PHOTOS / "astronaut.jpg")  # 384 px: annotated at 512, so boxes scale by 0.75
    props = source.propose(astronaut, str(PHOTOS / "astronaut.jpg"))
    assert [p.label for p in props] == ["person", "person", "flag"]  # every object, not only the first
    assert props[0].box == pytest.approx((120.0, 30.0, 210.0, 142.5))
    assert props[0].mask.shape == (384, 384) and props[0].mask_area == pytest.approx(90 * 112.5, rel=0.05)
    assert props[1].mask is None  # an empty segmentation: box only
    assert 0 < props[2].mask_area < 0.6 * 48 * 48  # a triangle fills about half its box
    chelsea = Image.open(PHOTOS / "chelsea.jpg")
    cat = source.propose(chelsea, str(PHOTOS / "chelsea.jpg"))  # matched by file name alone
    assert [p.label for p in cat] == ["cat", "cat"] and cat[0].mask is not None
    assert source.propose(chelsea, "/elsewhere/unannotated.jpg") == []


def test_rle_masks_uncompressed_and_compressed_agree():
    counts = [36000, 200, 100, 200, 98800]
    plain = decode_rle({"size": [300, 451], "counts": counts})
    packed = decode_rle({"size": [300, 451], "counts": encode_rle_string(counts)})
    assert plain.sum() == 400 and (plain == packed).all()
    ys, xs = np.nonzero(plain)  # runs go down columns: columns 120 and 121, rows 0..199
    assert set(xs) == {120, 121} and ys.min() == 0 and ys.max() == 199


def test_mask_crops_blank_the_background_and_rows_stay_in_order():
    source = make_source(f"coco:{FIXTURE}")
    image = Image.open(PHOTOS / "astronaut.jpg")
    props, crops = region_crops(image, source, RegionSettings(min_size=8), str(PHOTOS / "astronaut.jpg"))
    assert len(props) == len(crops) == 3
    flag = np.array(crops[2])  # triangle mask: its bottom corners lie outside, blanked to the mean colour
    assert tuple(flag[-1, 0]) == (124, 116, 104) and tuple(flag[-1, -1]) == (124, 116, 104)


def test_key_changes_with_the_file_and_bad_files_are_clear(tmp_path):
    copy = tmp_path / "ann.json"
    data = json.loads(FIXTURE.read_text())
    copy.write_text(json.dumps(data))
    first = make_source(f"coco:{copy}").key()
    data["annotations"].pop()
    copy.write_text(json.dumps(data))
    assert make_source(f"coco:{copy}").key() != first
    (tmp_path / "bad.json").write_text("{not json")
    for spec, words in [(f"coco:{tmp_path / 'bad.json'}", "not valid JSON"), ("coco", "annotation file"),
                        (f"coco:{tmp_path / 'none.json'}", "cannot read")]:
        with pytest.raises(RetrError, match=words):
            make_source(spec)
