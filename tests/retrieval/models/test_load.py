import pytest
import torch

from index.errors import RetrError
from retrieval.models.load import DEFAULT_MODEL, load_model, resolve_device
from tests.conftest import TINY_MODEL


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RetrError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_an_unknown_device_is_a_clear_error():
    with pytest.raises(RetrError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_the_identity_names_spec_weights_and_dim():
    model = load_model(TINY_MODEL, pretrained=False, embedding_dim=16)
    assert model.info.identity() == {"spec": TINY_MODEL, "weights": "random:seed0", "dim": 16}
    assert model.info.backbone == TINY_MODEL and DEFAULT_MODEL == "tf_efficientnet_lite0"


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(RetrError, match="is not a retr checkpoint directory"):
        load_model(str(tmp_path))


def test_weights_cannot_replace_a_checkpoint_s_own(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RetrError, match="--weights cannot be combined"):
        load_model(str(tmp_path), weights=tmp_path / "w.safetensors")
