"""Online (in-batch) miners: which triplets of a batch the loss sees. Built on pytorch-metric-learning.

- ``batch-hard`` (Hermans et al. 2017): per anchor, its farthest positive and its nearest negative;
- ``semi-hard`` (Schroff et al. 2015): every (a, p, n) with d(a,p)^2 < d(a,n)^2 <= d(a,p)^2 + m;
- ``distance-weighted`` (Wu et al. 2017): per positive pair, one negative drawn with probability
  proportional to 1/q(d), q the density of distances between points on the unit sphere, with d clipped
  below at ``cutoff`` and negatives beyond ``nonzero_loss_cutoff`` never drawn;
- ``all``: every valid triplet (a, p, n), labels[a] == labels[p] != labels[n], a != p.
"""
from __future__ import annotations

import torch
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn

from retrieval.registry import Registry
from retrieval.train.losses import euclidean

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class Miner(nn.Module):
    """Base: ``forward`` runs ``mine`` without gradients and checks what it returns."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        with torch.no_grad():
            a, p, n = self.mine(embeddings.detach().float(), labels)
        if not (len(a) == len(p) == len(n)):
            raise RuntimeError(f"{type(self).__name__} returned uneven triplets {len(a)}, {len(p)}, {len(n)}")
        return a, p, n

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        raise NotImplementedError

    @classmethod
    def create(cls, *, margin: float) -> "Miner":
        """The miner for a training run's loss margin (most miners do not use it)."""
        return cls()


class AllTripletsMiner(Miner):
    def mine(self, embeddings, labels):
        return lmu.get_all_triplets_indices(labels)


class BatchHardMiner(Miner):
    def __init__(self):
        super().__init__()
        self.miner = pml_miners.BatchHardMiner(distance=euclidean(power=2))

    def mine(self, embeddings, labels):
        return self.miner(embeddings, labels)


class SemiHardMiner(Miner):
    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = float(margin)
        self.miner = pml_miners.TripletMarginMiner(margin=self.margin, type_of_triplets="semihard",
                                                   distance=euclidean(power=2))

    def mine(self, embeddings, labels):
        return self.miner(embeddings, labels)

    @classmethod
    def create(cls, *, margin: float) -> "SemiHardMiner":
        return cls(margin)


class DistanceWeightedMiner(Miner):
    """Wu et al.'s sampling; the embeddings must be L2-normalised (the paper's unit sphere)."""

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4):
        super().__init__()
        self.miner = pml_miners.DistanceWeightedMiner(
            cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff,
            distance=LpDistance(p=2, power=1, normalize_embeddings=True))

    def mine(self, embeddings, labels):
        return self.miner(embeddings, labels)


MINERS: Registry[type[Miner]] = Registry("miner")
MINERS.register("all", AllTripletsMiner)
MINERS.register("batch-hard", BatchHardMiner)
MINERS.register("semi-hard", SemiHardMiner)
MINERS.register("distance-weighted", DistanceWeightedMiner)


def create_miner(name: str, *, margin: float = 0.2) -> Miner:
    return MINERS.get(name).create(margin=margin)
