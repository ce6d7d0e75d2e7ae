import pytest
import torch
from PIL import Image

from index.errors import RetrError
from retrieval.models.backbones import check_data_config, create_backbone, data_config, make_transform
from retrieval.models.load import load_model
from tests.conftest import TINY_MODEL


def test_no_silent_random_weights_and_unknown_names():
    with pytest.raises(RetrError, match="--random-weights"):
        load_model("resnet10t")  # no weights package, no download offline
    with pytest.raises(RetrError, match="did you mean"):
        load_model("tf_efficientnet_lite00")


def test_random_weights_are_reproducible():
    x = torch.randn(1, 3, 160, 160)
    a, b = load_model(TINY_MODEL, pretrained=False), load_model(TINY_MODEL, pretrained=False)
    torch.testing.assert_close(a.net(x), b.net(x))


def test_a_backbone_gives_pooled_features_and_its_own_data_config():
    backbone, digest = create_backbone(TINY_MODEL, pretrained=False)
    cfg = data_config(backbone)
    check_data_config(cfg)  # what timm gives passes our own check
    assert digest == "random:seed0" and isinstance(cfg["input_size"], list) and len(cfg["mean"]) == 3
    with torch.no_grad():
        out = backbone.eval()(torch.randn(2, *cfg["input_size"]))
    assert out.shape == (2, backbone.num_features)
    x = make_transform(cfg)(Image.new("RGB", (300, 200)))
    assert tuple(x.shape) == tuple(cfg["input_size"])


def test_a_bad_data_config_names_the_field():
    with pytest.raises(ValueError, match="data_config.mean must be 3 numbers"):
        check_data_config({"input_size": [3, 8, 8], "mean": [0.5], "std": [0.5] * 3})
