import numpy as np
import pytest
import torch
from PIL import Image

from index.errors import RetrError
from retrieval.regions import SourceOptions, make_source
from retrieval.regions.sources import detectors as D


@pytest.fixture
def no_cached_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.mark.parametrize("name", ["fasterrcnn", "retinanet", "maskrcnn"])
def test_without_weights_a_one_line_error_names_the_fix(name, no_cached_weights):
    source = make_source(name, SourceOptions(download=False))  # never downloads in tests
    with pytest.raises(RetrError) as info:
        source.propose(Image.new("RGB", (64, 64)))
    message = str(info.value)
    assert "--detector-weights" in message and "\n" not in message and name in message.replace("_", "")


def test_a_file_that_is_not_detector_weights_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    source = make_source("retinanet", SourceOptions(detector_weights=str(bad)))
    with pytest.raises(RetrError, match="does not hold retinanet_resnet50_fpn_v2 weights"):
        source.propose(Image.new("RGB", (64, 64)))
    assert make_source("retinanet", SourceOptions(detector_weights=str(bad))).key().endswith(str(bad))


def test_detector_outputs_become_labelled_proposals_with_masks(monkeypatch):
    """The network itself is stubbed (its weights are not on this machine): the conversion is what is tested."""
    class Stub(torch.nn.Module):
        def forward(self, images):
            assert images[0].shape == (3, 20, 30) and float(images[0].max()) <= 1.0
            masks = torch.zeros(2, 1, 20, 30)
            masks[0, 0, 5:10, 5:10] = 0.9
            return [{"boxes": torch.tensor([[1.0, 2.0, 12.0, 14.0], [0.0, 0.0, 30.0, 20.0]]),
                     "labels": torch.tensor([17, 1]), "scores": torch.tensor([0.95, 0.4]), "masks": masks}]

    monkeypatch.setattr(D, "load_detector", lambda *a, **k: Stub())
    props = make_source("maskrcnn").propose(Image.new("RGB", (30, 20)))
    assert [(p.label, round(p.score, 2)) for p in props] == [("cat", 0.95), ("person", 0.4)]
    assert props[0].box == (1.0, 2.0, 12.0, 14.0)
    assert props[0].mask.dtype == np.bool_ and props[0].mask_area == 25 and props[1].mask_area == 0


@pytest.mark.parametrize("name", ["fasterrcnn", "retinanet", "maskrcnn"])
def test_a_real_detector_runs_from_a_weights_file(name, tmp_path, no_cached_weights):
    """The real torchvision network, loaded from a --detector-weights file (random weights: none ship offline)."""
    from safetensors.torch import save_file
    detector = D.detectors().get(name)
    torch.manual_seed(0)
    net = detector.builder(weights=None, weights_backbone=None, num_classes=len(detector.weights.meta["categories"]))
    weights = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    source = make_source(name, SourceOptions(detector_weights=str(weights), download=False, device="cpu"))
    loaded = source._model()
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    loaded.transform.min_size, loaded.transform.max_size = (48,), 64  # no upscaling to 800 px: a small test
    if hasattr(loaded, "roi_heads"):  # random weights score low: keep every detection
        loaded.roi_heads.score_thresh = 0.0
    else:
        loaded.score_thresh = 0.0
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    props = source.propose(image)
    assert props
    categories = set(detector.weights.meta["categories"])
    for p in props:
        x0, y0, x1, y1 = p.box
        assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 48
        assert p.label in categories and 0.0 <= p.score <= 1.0
        assert (p.mask is not None) == (name == "maskrcnn")
        if p.mask is not None:
            assert p.mask.shape == (48, 64)
