import pickle

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from index.errors import RetrError
from retrieval.models.backbones import create_backbone
from retrieval.models.load import load_model
from retrieval.models.weights import WEIGHT_SOURCES, load_into, packaged_weights, read_state_dict
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


@pytest.mark.parametrize("model", WEIGHT_SOURCES.names())
def test_each_weight_source_is_registered_under_its_model(model):
    source = WEIGHT_SOURCES.get(model)
    assert source.model == model and timm.is_model(model)
    path = source.locate()
    assert path is None or path == packaged_weights(model)


def test_a_model_without_a_weights_package_has_none():
    assert packaged_weights("resnet10t") is None
