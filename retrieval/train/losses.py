"""Metric-learning losses, as defined in the literature, built on pytorch-metric-learning.

- contrastive (Hadsell et al. 2006): l = y d^2 + (1 - y) max(0, m - d)^2 over pairs, d Euclidean;
- triplet (Schroff et al. 2015): l = max(0, m + d(a,p)^2 - d(a,n)^2);
- NT-Xent (Chen et al. 2020): -log(exp(s(i,j)/tau) / sum_{k != i} exp(s(i,k)/tau)) over the 2N views.

Each loss is the mean over the tuples it is given (all pairs / all valid triplets when no miner picks
them); with no valid tuple the loss is a zero that still carries a gradient.
"""
from __future__ import annotations

from typing import Callable

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn

from retrieval.registry import Registry

Indices = tuple[torch.Tensor, ...]


def euclidean(power: int = 1) -> LpDistance:
    """Plain Euclidean distance (or its square): the embeddings are used as given."""
    return LpDistance(p=2, power=power, normalize_embeddings=False)


class MetricLoss(nn.Module):
    """Base: checks shapes, then ``compute`` (a subclass writes only that)."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Indices | None = None) -> torch.Tensor:
        if embeddings.ndim != 2 or labels.ndim != 1 or len(embeddings) != len(labels):
            raise ValueError(f"embeddings {tuple(embeddings.shape)} and labels {tuple(labels.shape)} do not match")
        return self.compute(embeddings.float(), labels, indices)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Indices | None) -> torch.Tensor:
        raise NotImplementedError


class ContrastiveLoss(MetricLoss):
    """Mean over pairs of y d^2 + (1 - y) max(0, m - d)^2 (pml's ContrastiveLoss does not square)."""

    def __init__(self, margin: float = 0.8):
        super().__init__()
        if margin <= 0:
            raise ValueError(f"contrastive margin must be > 0, got {margin}")
        self.margin = float(margin)

    def compute(self, embeddings, labels, indices):
        a1, p, a2, n = lmu.convert_to_pairs(indices, labels)
        if len(a1) + len(a2) == 0:
            return embeddings.sum() * 0.0
        pos = (embeddings[a1] - embeddings[p]).pow(2).sum(1)  # d^2 without a sqrt (its gradient at 0 is inf)
        # the clamp keeps the gradient finite (zero) for two identical negatives
        neg_d = (embeddings[a2] - embeddings[n]).pow(2).sum(1).clamp_min(1e-12).sqrt()
        neg = torch.relu(self.margin - neg_d).pow(2)
        return torch.cat([pos, neg]).mean()


class TripletLoss(MetricLoss):
    """Mean over triplets of max(0, m + d(a,p)^2 - d(a,n)^2): pml's TripletMarginLoss on squared distances."""

    def __init__(self, margin: float = 0.2):
        super().__init__()
        if margin <= 0:
            raise ValueError(f"triplet margin must be > 0, got {margin}")
        self.margin = float(margin)
        self.loss = pml_losses.TripletMarginLoss(margin=self.margin, distance=euclidean(power=2),
                                                 reducer=reducers.MeanReducer(), triplets_per_anchor="all")

    def compute(self, embeddings, labels, indices):
        return self.loss(embeddings, labels, indices)


class NTXentLoss(MetricLoss):
    """NT-Xent over 2N views: ``labels`` pairs the two views of each image (pml's NTXentLoss, cosine)."""

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"NT-Xent temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.loss = pml_losses.NTXentLoss(temperature=self.temperature)

    def compute(self, embeddings, labels, indices):
        return self.loss(embeddings, labels, indices)

    def views(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The loss of two views [N, d] of the same N images."""
        ids = torch.arange(len(z1), device=z1.device)
        return self(torch.cat([z1, z2]), torch.cat([ids, ids]))


LOSSES: Registry[Callable[..., MetricLoss]] = Registry("loss")
LOSSES.register("contrastive", ContrastiveLoss)
LOSSES.register("triplet", TripletLoss)
LOSSES.register("ntxent", NTXentLoss)


def create_loss(name: str, **kwargs) -> MetricLoss:
    return LOSSES.get(name)(**kwargs)
