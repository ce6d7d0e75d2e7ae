"""The model's preprocessing on Pillow and numpy gives timm's eval transform's pixels exactly, in every crop
mode, for landscapes, portraits, squares, enlarged and tiny pictures; what a worker prepares is checked too."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retrieval.images.decode import load_image
from retrieval.images.preprocess import Preprocess, crop_or_pad, prepare_file, prepare_files
from retrieval.models.backbones import make_transform
from tests.conftest import ODD, PHOTOS

CONFIGS = [
    {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875},  # the usual: shorter side, crop
    {"input_size": [3, 192, 256], "interpolation": "bilinear", "crop_pct": 0.9},  # not square: ratio kept
    {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "squash"},
    {"input_size": [3, 200, 160], "interpolation": "lanczos", "crop_pct": 0.95, "crop_mode": "border"},
    {"input_size": [3, 96, 96], "interpolation": "nearest", "crop_pct": None},  # timm's default crop_pct
]


def _pictures() -> list[Image.Image]:
    coffee, rocket, chelsea = (load_image(PHOTOS / f"{n}.jpg") for n in ("coffee", "rocket", "chelsea"))
    return [coffee, rocket, chelsea, coffee.resize((100, 37)), rocket.resize((30, 300)),
            chelsea.crop((0, 0, 251, 250)), coffee.resize((5, 7))]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.get('crop_mode') or 'center'}-{c['input_size'][1]}x"
                                                      f"{c['input_size'][2]}")
def test_the_pixels_are_timm_s_in_every_crop_mode(cfg):
    cfg = {**cfg, "mean": [0.3, 0.5, 0.7], "std": [0.2, 0.25, 0.3]}
    timm_transform, prep = make_transform(cfg), Preprocess.from_data_config(cfg)
    mean, std = (np.asarray(cfg[k], np.float32)[:, None, None] for k in ("mean", "std"))
    for picture in _pictures():
        want = timm_transform(picture).numpy()
        got = prep.to_uint8(picture)
        assert got.dtype == np.uint8 and got.shape == (3, *cfg["input_size"][1:]) and got.flags.c_contiguous
        np.testing.assert_allclose((got.astype(np.float32) / 255 - mean) / std, want, rtol=0, atol=1e-5)


def test_crop_or_pad_pads_odd_pixels_after_and_rounds_offsets_as_torchvision():
    pixels = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    out = crop_or_pad(pixels, (6, 2), fill=[9, 8, 7])
    assert out.shape == (6, 2, 3)
    assert (out[0] == [9, 8, 7]).all() and (out[-2:] == [9, 8, 7]).all()  # 3 rows to add: 1 before, 2 after
    np.testing.assert_array_equal(out[1:4], pixels[:, 2:4])  # (5 - 2) / 2 = 1.5 rounds to 2


def test_an_unknown_crop_mode_or_interpolation_is_refused_naming_it():
    with pytest.raises(ValueError, match="crop_mode 'zoom'"):
        Preprocess.from_data_config({"input_size": [3, 8, 8], "crop_mode": "zoom", "mean": [0] * 3, "std": [1] * 3})
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        Preprocess.from_data_config({"input_size": [3, 8, 8], "interpolation": "cubic", "mean": [0] * 3,
                                     "std": [1] * 3})


def test_a_worker_batch_holds_the_good_files_in_order_and_the_reason_of_each_bad_one():
    prep = Preprocess.from_data_config(CONFIGS[0] | {"mean": [0.5] * 3, "std": [0.5] * 3})
    paths = [str(PHOTOS / "coffee.jpg"), str(ODD / "empty.jpg"), str(ODD / "cmyk.jpg"), str(ODD / "bomb.png")]
    out = prepare_files(prep, paths)
    assert out["batch"].shape == (2, 3, 224, 224)
    reasons = [it.get("error") for it in out["items"]]
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1] == "empty file (0 bytes)" and "decompression bomb" in reasons[3]
    np.testing.assert_array_equal(out["batch"][0], prepare_file(paths[0], prep)["pixels"])
    coffee = out["items"][0]
    assert (coffee["width"], coffee["height"], coffee["bytes"]) == (*Image.open(paths[0]).size,
                                                                    (PHOTOS / "coffee.jpg").stat().st_size)
