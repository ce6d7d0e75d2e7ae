"""Augmentation shapes and value ranges."""
import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.train.augment import AugmentConfig, TwoViews, metric_transform, simclr_transform

CFG = {"input_size": [3, 24, 20], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))


@pytest.mark.parametrize("make", [lambda: metric_transform(CFG), lambda: simclr_transform(CFG)])
def test_output_has_the_model_input_size_and_normalised_range(make):
    torch.manual_seed(0)
    x = make()(photo())
    assert x.shape == (3, 24, 20) and x.dtype == torch.float32
    mean, std = torch.tensor(CFG["mean"]).view(3, 1, 1), torch.tensor(CFG["std"]).view(3, 1, 1)
    pixels = x * std + mean  # undo the normalisation: back to [0, 1]
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_grayscale_input_becomes_three_channels():
    assert simclr_transform(CFG)(photo().convert("L")).shape == (3, 24, 20)


def test_two_views_differ_and_strength_zero_is_only_crop_and_flip():
    torch.manual_seed(0)
    a, b = TwoViews(simclr_transform(CFG))(photo())
    assert a.shape == b.shape and not torch.equal(a, b)
    plain = AugmentConfig(min_crop=1.0, flip=0.0, jitter=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    a, b = TwoViews(simclr_transform(CFG, plain))(photo())
    assert torch.equal(a, b)  # nothing random left


def test_grayscale_probability_one_gives_equal_channels():
    cfg = AugmentConfig(grayscale_p=1.0, jitter_p=0.0, blur_p=0.0)
    x = simclr_transform({**CFG, "mean": [0.5] * 3, "std": [0.5] * 3}, cfg)(photo())
    assert torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])


def test_bad_strengths_are_rejected():
    with pytest.raises(ValueError, match="grayscale_p"):
        AugmentConfig(grayscale_p=1.5)
    with pytest.raises(ValueError, match="min_crop"):
        AugmentConfig(min_crop=0)
