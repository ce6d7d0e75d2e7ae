"""Batch samplers: P classes x K images for labelled data (optionally built around offline-mined hard
negatives), plain random batches for SimCLR. Both are deterministic in (seed, epoch) and shard batches
across DDP ranks, so every rank draws a different batch at every step.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from index.errors import RetrError


def check_pk(batch_size: int | None, p: int, k: int) -> int:
    """The batch size P x K; a batch size smaller than P x K (or not equal to it) is a user error."""
    if p < 2 or k < 2:
        raise RetrError(f"a P x K batch needs P >= 2 classes and K >= 2 images per class, got P={p}, K={k}")
    if batch_size is not None and batch_size < p * k:
        raise RetrError(f"--batch-size {batch_size} is smaller than P x K = {p} x {k} = {p * k}; "
                        f"raise it or lower --classes-per-batch/--images-per-class")
    if batch_size is not None and batch_size != p * k:
        raise RetrError(f"--batch-size {batch_size} must equal P x K = {p} x {k} = {p * k} "
                        f"(or be left out)")
    return p * k


class EpochSampler:
    """Common part: ``steps`` batches per rank per epoch, drawn for all ranks, rank r takes r::world."""

    def __init__(self, steps: int, seed: int, rank: int, world_size: int):
        if steps < 1:
            raise ValueError(f"steps per epoch must be >= 1, got {steps}")
        self.steps, self.seed, self.rank, self.world_size = steps, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for step in range(self.steps):
            batches = [self._batch(rng) for _ in range(self.world_size)]
            yield batches[self.rank]

    def _batch(self, rng: np.random.Generator) -> list[int]:
        raise NotImplementedError


class RandomBatchSampler(EpochSampler):
    """``batch_size`` distinct random images per batch (SimCLR)."""

    def __init__(self, n: int, batch_size: int, *, steps: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if n < 2 or batch_size < 2:
            raise RetrError(f"SimCLR needs batches of 2+ images from 2+ images; have {n} images, "
                            f"batch size {batch_size}")
        super().__init__(steps, seed, rank, world_size)
        self.n, self.batch_size = n, min(batch_size, n)

    def _batch(self, rng):
        return rng.choice(self.n, self.batch_size, replace=False).tolist()


class PKSampler(EpochSampler):
    """Batches of P distinct classes x K images. A class with fewer than K images gives all it has and
    repeats some (different augmentations of the same image); a batch always holds exactly P x K indices.

    With ``hard_negatives`` (positions [n, m], -1 padded, from offline mining) batches are built around
    them: an anchor image with its class, and the class of one of its hardest negatives with that image.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, steps: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        super().__init__(steps, seed, rank, world_size)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = np.unique(self.labels)
        if len(self.classes) < p:
            raise RetrError(f"--classes-per-batch {p} but the training data has only {len(self.classes)} "
                            f"classes with 2+ images; lower --classes-per-batch")
        self.members = {int(c): np.flatnonzero(self.labels == c) for c in self.classes}
        self.p, self.k = p, k
        self.hard_negatives: np.ndarray | None = None

    def set_hard_negatives(self, hard_negatives: np.ndarray | None) -> None:
        if hard_negatives is not None and len(hard_negatives) != len(self.labels):
            raise ValueError(f"hard negatives for {len(hard_negatives)} images, sampler has {len(self.labels)}")
        self.hard_negatives = hard_negatives

    def _group(self, rng: np.random.Generator, c: int, include: int | None = None) -> list[int]:
        members = self.members[c]
        if include is not None:
            others = members[members != include]
            need = self.k - 1
            pick = rng.choice(others, need, replace=len(others) < need) if len(others) else \
                np.full(need, include)
            return [int(include), *pick.tolist()]
        if len(members) >= self.k:
            return rng.choice(members, self.k, replace=False).tolist()
        return [*rng.permutation(members).tolist(), *rng.choice(members, self.k - len(members)).tolist()]

    def _batch(self, rng):
        chosen: dict[int, list[int]] = {}
        hn = self.hard_negatives
        if hn is not None:
            anchors = np.flatnonzero(hn[:, 0] >= 0)
            for a in rng.choice(anchors, min(len(anchors), 4 * self.p), replace=False) if len(anchors) else ():
                if len(chosen) + 2 > self.p:
                    break
                row = hn[a][hn[a] >= 0]
                neg = int(row[rng.integers(min(len(row), 3))])  # one of its 3 hardest
                ca, cn = int(self.labels[a]), int(self.labels[neg])
                if ca in chosen or cn in chosen:
                    continue
                chosen[ca] = self._group(rng, ca, include=int(a))
                chosen[cn] = self._group(rng, cn, include=neg)
        rest = [int(c) for c in rng.permutation(self.classes) if int(c) not in chosen]
        for c in rest[:self.p - len(chosen)]:
            chosen[c] = self._group(rng, c)
        return [i for group in chosen.values() for i in group]
