import pytest
import torch

from retrieval.models.backbones import create_backbone
from retrieval.models.net import EmbeddingNet
from tests.conftest import TINY_MODEL


@pytest.mark.parametrize("embedding_dim", [None, 12])
def test_vectors_are_unit_float32_and_gradients_reach_every_parameter(embedding_dim):
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    net = EmbeddingNet(backbone, embedding_dim)
    out = net(torch.randn(3, 3, 64, 64))
    assert out.dtype == torch.float32 and out.shape == (3, embedding_dim or backbone.num_features)
    assert net.dim == out.shape[1] and not torch.isnan(out).any()
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    (out * torch.randn_like(out)).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_features_are_the_unnormalised_head_output():
    backbone, _ = create_backbone(TINY_MODEL, pretrained=False)
    net = EmbeddingNet(backbone, 5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.nn.functional.normalize(net.features(x), dim=1))
        torch.testing.assert_close(net.features(x), net.head(backbone(x)))
