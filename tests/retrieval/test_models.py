import json
import pickle
import re

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from index.errors import RetrError
from retrieval.models.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from retrieval.embed import Preprocess, embed_images
from retrieval.models.load import EmbeddingNet, create_backbone, load_model
from retrieval.models.weights import load_into, packaged_weights, read_state_dict
from tests.conftest import PHOTOS, TINY_MODEL


def test_default_model_has_offline_imagenet_weights_that_recognise_a_cat():
    path = packaged_weights("tf_efficientnet_lite0")
    assert path is not None and path.is_file()
    full = timm.create_model("tf_efficientnet_lite0")
    load_into(full, read_state_dict(path), str(path))
    model = load_model()
    x = model.transform(Image.open(PHOTOS / "chelsea.jpg").convert("RGB"))[None]
    with torch.no_grad():
        top = full.eval()(x).topk(3).indices[0].tolist()
        vec = model.net(x)
    assert set(top) & {281, 282, 283, 285}  # tabby, tiger cat, Persian, Egyptian cat
    assert model.info.weights.startswith("sha256:") and model.info.dim == 1280
    assert vec.dtype == torch.float32 and abs(float(vec.norm()) - 1) < 1e-5
    assert model.info.data_config["mean"] == [0.5, 0.5, 0.5]  # from timm's data config


def test_weights_file_in_safetensors_and_state_dict(tmp_path):
    net, _ = create_backbone(TINY_MODEL, pretrained=False)
    sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() and "running" not in k else v
          for k, v in net.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save(sd, tmp_path / "w.pt")
    a = load_model(TINY_MODEL, weights=tmp_path / "w.safetensors")
    b = load_model(TINY_MODEL, weights=tmp_path / "w.pt")
    x = torch.randn(2, 3, 160, 160)
    torch.testing.assert_close(a.net(x), b.net(x))
    assert a.info.weights != load_model(TINY_MODEL, pretrained=False).info.weights


def test_pickled_code_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("open('%s', 'w').write('pwned')" % (tmp_path / "flag"),))
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"x": Boom()}, fh)
    with pytest.raises(RetrError, match="cannot read weights"):
        load_model(TINY_MODEL, weights=tmp_path / "evil.pt")
    assert not (tmp_path / "flag").exists()


def test_no_silent_random_weights_and_unknown_names():
    with pytest.raises(RetrError, match="--random-weights"):
        load_model("resnet10t")  # no weights package, no download offline
    with pytest.raises(RetrError, match="did you mean"):
        load_model("tf_efficientnet_lite00")


def test_random_weights_are_reproducible():
    x = torch.randn(1, 3, 160, 160)
    a, b = load_model(TINY_MODEL, pretrained=False), load_model(TINY_MODEL, pretrained=False)
    torch.testing.assert_close(a.net(x), b.net(x))


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


def test_preprocess_split_matches_timm_transform_exactly():
    model = load_model(TINY_MODEL, pretrained=False)
    img = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    prep = Preprocess.from_model(model)
    torch.testing.assert_close(prep.normalise(prep.to_uint8(img)[None]), model.transform(img)[None])
    vecs = embed_images(model, [img, img.rotate(90)], device="cpu")
    assert vecs.shape == (2, model.info.dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch):
    from retrieval.models.load import resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RetrError, match="no CUDA GPU"):
        resolve_device("cuda")


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
