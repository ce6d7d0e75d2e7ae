import json
import re

import pytest
import torch

from index.errors import RetrError
from retrieval.models.backbones import create_backbone
from retrieval.models.checkpoint import CONFIG_FILE, read_checkpoint, save_checkpoint
from retrieval.models.load import load_checkpoint, load_model
from retrieval.models.net import EmbeddingNet
from tests.conftest import TINY_MODEL


def test_checkpoint_round_trip_with_head(tmp_path):
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    net = EmbeddingNet(backbone, 24).eval()
    cfg = {"input_size": (3, 64, 64), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
           "crop_pct": 1.0, "crop_mode": "center"}
    save_checkpoint(net, tmp_path / "ck", backbone=TINY_MODEL, data_config=cfg, metrics={"recall@1": 0.5})
    loaded = load_model(str(tmp_path / "ck"))
    assert loaded.info.dim == 24 and loaded.info.spec == str((tmp_path / "ck").resolve())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded.net(x), net(x))
    assert load_checkpoint(tmp_path / "ck").info.weights == loaded.info.weights


def _with(config: dict, field: str, value) -> dict:
    """``config`` with a dotted field set to ``value`` (or removed when ``value`` is ``...``)."""
    *parents, key = field.split(".")
    target = config
    for name in parents:
        target = target[name]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return config


@pytest.mark.parametrize("field,value,message", [
    ("data_config.input_size", [3, 30000, 30000], r"data_config.input_size must be \[3, height, width\] with sides "
                                                  r"from 1 to 2048, got \[3, 30000, 30000\]"),
    ("data_config.input_size", [3, "64", 64], "data_config.input_size must be"),
    ("data_config.input_size", [3, 64], "data_config.input_size must be"),
    ("data_config.input_size", [3, 0, 64], "data_config.input_size must be"),
    ("data_config.input_size", ..., "data_config.input_size must be .* got None"),
    ("data_config.mean", ..., "data_config.mean must be 3 numbers, got None"),
    ("data_config.std", [0.5, 0.5, "x"], "data_config.std must be 3 numbers"),
    ("data_config.std", [0.5, 0.0, 0.5], "data_config.std must be positive"),
    ("data_config.crop_pct", 0.01, "data_config.crop_pct must be a number above 0 that resizes to at most 4096"),
    ("data_config.interpolation", 3, "data_config.interpolation must be a string"),
    ("data_config", [1, 2], "data_config must be an object, got list"),
    ("backbone", ..., "backbone must be a timm model name, got None"),
    ("backbone", 5, "backbone must be a timm model name, got 5"),
    ("embedding_dim", -1, "embedding_dim must be a positive whole number or null"),
    ("version", "1", "version must be a whole number"),
])
def test_a_bad_checkpoint_config_names_the_file_and_the_field(tmp_path, field, value, message):
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    cfg = {"input_size": (3, 64, 64), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
           "crop_pct": 1.0, "crop_mode": "center"}
    ck = save_checkpoint(EmbeddingNet(backbone, 8).eval(), tmp_path / "ck", backbone=TINY_MODEL, data_config=cfg)
    path = ck.resolve() / CONFIG_FILE
    path.write_text(json.dumps(_with(json.loads(path.read_text()), field, value)))
    with pytest.raises(RetrError, match=f"^{re.escape(str(path))}: bad checkpoint config: {message}"):
        load_model(str(ck))


def test_a_checkpoint_config_that_is_a_list_is_not_a_checkpoint(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("[]")
    with pytest.raises(RetrError, match=f"^{re.escape(str(tmp_path.resolve() / CONFIG_FILE))} is not a retr checkpoint "
                                        r"\(format 'list'\)"):
        load_model(str(tmp_path))


def test_read_checkpoint_gives_the_network_in_eval_mode_and_its_digest(tmp_path):
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    cfg = {"input_size": (3, 64, 64), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    save_checkpoint(EmbeddingNet(backbone).eval(), tmp_path / "ck", backbone=TINY_MODEL, data_config=cfg)
    ckpt = read_checkpoint(tmp_path / "ck")
    assert not ckpt.net.training and ckpt.path == (tmp_path / "ck").resolve()
    assert ckpt.config["head"] is None and ckpt.config["data_config"]["input_size"] == [3, 64, 64]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ckpt.weights_digest)
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(RetrError, match="has no model.safetensors"):
        read_checkpoint(tmp_path / "ck")
