"""The embedding network: backbone -> pooled features -> [linear head] -> L2-normalised float32 vectors."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingNet(nn.Module):
    """backbone -> pooled features -> [linear head] -> L2-normalised float32 vectors."""

    def __init__(self, backbone: nn.Module, embedding_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        features = backbone.num_features
        self.head: nn.Module = nn.Linear(features, embedding_dim) if embedding_dim else nn.Identity()
        self.dim = int(embedding_dim or features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The unnormalised embedding (what a projection head or a loss may build on)."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)
