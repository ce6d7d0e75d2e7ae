"""Training configuration, checked in one place without importing torch: the methods (what each trains
with) and `TrainConfig`, so a bad option is a one-line error before any heavy import."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from index.errors import RetrError
from retrieval.models import DEFAULT_MODEL
from retrieval.registry import Registry
from retrieval.train.augment import AugmentConfig

if TYPE_CHECKING:
    from torch import nn

    from retrieval.train import distributed
    from retrieval.train.data import ImageSet
    from retrieval.train.miners import Miner
    from retrieval.train.samplers import EpochSampler

# the names of retrieval.train.miners.MINERS (a test keeps them equal), here so that checking --miner needs no torch
MINER_NAMES = ("all", "batch-hard", "semi-hard", "distance-weighted")
OPTIMIZERS = ("adamw", "sgd")



@dataclasses.dataclass(frozen=True)
class Method:
    """A labelled metric-learning method: its loss, default margin and miner; P x K batches of augmented images."""

    loss: str
    margin: float | None = None
    miner: str | None = None
    labelled: bool = True

    def create_loss(self, config: TrainConfig) -> nn.Module:
        from retrieval.train.losses import create_loss
        return create_loss(self.loss, margin=config.resolved_margin)

    def create_miner(self, config: TrainConfig) -> Miner | None:
        from retrieval.train.miners import create_miner
        miner = config.resolved_miner
        return create_miner(miner, margin=config.resolved_margin or 0.2) if miner else None

    def projection_dim(self, config: TrainConfig) -> int | None:
        """The width of a projection head the loss sees instead of the embedding (None: no head)."""
        return None

    def batches(self, config: TrainConfig, images: ImageSet, data_config: dict[str, Any],
                ctx: distributed.DistContext) -> tuple[EpochSampler, Callable, int]:
        """(batch sampler, training transform, steps per epoch)."""
        from retrieval.train.augment import metric_transform
        from retrieval.train.samplers import PKSampler, check_pk
        batch = check_pk(config.batch_size, config.classes_per_batch, config.images_per_class)
        steps = _steps_per_epoch(config, len(images), batch, ctx.world_size)
        sampler = PKSampler(images.labels, config.classes_per_batch, config.images_per_class, steps=steps,
                            seed=config.seed, rank=ctx.rank, world_size=ctx.world_size)
        return sampler, metric_transform(data_config, min_crop=config.min_crop), steps


@dataclasses.dataclass(frozen=True)
class TwoViewMethod(Method):
    """Self-supervised (SimCLR): random batches of two augmented views per image, a projection head, no labels."""

    labelled: bool = False

    def create_loss(self, config: TrainConfig) -> nn.Module:
        from retrieval.train.losses import create_loss
        return create_loss(self.loss, temperature=config.temperature)

    def create_miner(self, config: TrainConfig) -> Miner | None:
        return None  # every other view in the batch is a negative

    def projection_dim(self, config: TrainConfig) -> int | None:
        return config.projection_dim

    def batches(self, config: TrainConfig, images: ImageSet, data_config: dict[str, Any],
                ctx: distributed.DistContext) -> tuple[EpochSampler, Callable, int]:
        from retrieval.train.augment import TwoViews, simclr_transform
        from retrieval.train.samplers import RandomBatchSampler
        batch = config.batch_size or 64
        steps = _steps_per_epoch(config, len(images), batch, ctx.world_size)
        sampler = RandomBatchSampler(len(images), batch, steps=steps, seed=config.seed, rank=ctx.rank,
                                     world_size=ctx.world_size)
        return sampler, TwoViews(simclr_transform(data_config, config.augment)), steps


def _steps_per_epoch(config: TrainConfig, n: int, batch: int, world_size: int) -> int:
    """The configured steps, else about one pass over the training images."""
    return config.steps_per_epoch or max(1, n // (batch * world_size))


METHODS: Registry[Method] = Registry("training method")
METHODS.register("contrastive", Method(loss="contrastive", margin=0.8))
# semi-hard by default: batch-hard from a fresh head collapsed every embedding to one point (loss = margin)
# on Fashion-MNIST; semi-hard and distance-weighted did not
METHODS.register("triplet", Method(loss="triplet", margin=0.2, miner="semi-hard"))
METHODS.register("simclr", TwoViewMethod(loss="ntxent"))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    method: str = "triplet"
    model: str = DEFAULT_MODEL
    weights: str | None = None
    pretrained: bool = True
    embedding_dim: int | None = 128
    projection_dim: int = 128  # SimCLR's projection MLP (used by the loss only, never saved)
    image_size: int | None = None  # overrides the backbone's input size (square)
    epochs: int = 10
    steps_per_epoch: int | None = None  # default: about one pass over the training images
    classes_per_batch: int = 8  # P
    images_per_class: int = 4  # K
    batch_size: int | None = None  # labelled: must equal P x K; SimCLR: images per batch (default 64)
    optimizer: str = "adamw"
    lr: float = 1e-3  # the one-cycle policy's peak
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    margin: float | None = None  # default: the method's
    temperature: float = 0.1
    miner: str | None = None  # default: the method's; "none" for every pair/triplet
    mine_every: int = 0  # offline hard-negative mining every E epochs (0: never)
    split: str = "images"  # images | classes (class-disjoint) | none
    val_fraction: float = 0.2
    recall_ks: tuple[int, ...] = (1, 5)
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    amp: bool = True  # on CUDA only
    min_crop: float = 0.6  # labelled training's random resized crop
    freeze_bn: bool = True  # BatchNorm keeps its pretrained statistics (standard in metric-learning fine-tuning)
    augment: AugmentConfig = AugmentConfig()

    def __post_init__(self) -> None:
        METHODS.get(self.method)  # an unknown name is an error that lists the known ones
        if self.optimizer not in OPTIMIZERS:
            raise RetrError(f"unknown --optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        if self.epochs < 1:
            raise RetrError(f"--epochs must be >= 1, got {self.epochs}")
        if self.mine_every < 0:
            raise RetrError(f"--mine-every must be >= 0, got {self.mine_every}")
        if self.mine_every and not self.spec.labelled:
            raise RetrError("--mine-every (offline hard negatives) needs labels; SimCLR has none")
        if self.resolved_miner is not None and self.resolved_miner not in MINER_NAMES:
            raise RetrError(f"unknown --miner {self.resolved_miner!r}; known: {', '.join(sorted(MINER_NAMES))}, none")
        if self.resolved_margin is not None and self.resolved_margin <= 0:
            raise RetrError(f"--margin must be > 0, got {self.resolved_margin}")
        if self.temperature <= 0:
            raise RetrError(f"--temperature must be > 0, got {self.temperature}")
        if not self.recall_ks or min(self.recall_ks) < 1:
            raise RetrError(f"recall K values must be >= 1, got {self.recall_ks}")

    @property
    def spec(self) -> Method:
        return METHODS.get(self.method)

    @property
    def resolved_margin(self) -> float | None:
        return self.margin if self.margin is not None else self.spec.margin

    @property
    def resolved_miner(self) -> str | None:
        miner = self.miner if self.miner is not None else self.spec.miner
        return None if miner in (None, "none") else miner

    def settings(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["margin"], out["miner"] = self.resolved_margin, self.resolved_miner
        out["recall_ks"] = list(self.recall_ks)
        out["augment"]["blur_sigma"] = list(self.augment.blur_sigma)
        return out
