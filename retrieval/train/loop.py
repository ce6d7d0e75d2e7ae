"""The training loop shared by the three trainers: data -> sampler -> augmentations -> model -> miner ->
loss -> optimiser (one-cycle) -> validation recall@K -> checkpoint, every epoch; resumable; DDP-ready.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.data import DataLoader

from index.atomic import atomic_path
from index.errors import RetrError
from retrieval.models.checkpoint import CONFIG_FILE, save_checkpoint
from retrieval.progress import progress_bar
from retrieval.models.backbones import MAX_INPUT_SIDE, create_backbone, make_transform
from retrieval.models.load import is_checkpoint, load_checkpoint
from retrieval.models.net import EmbeddingNet
from retrieval.train import distributed
from retrieval.train.config import TrainConfig
from retrieval.train.data import ImageSet, TrainDataset, collate, drop_small_classes, read_images, split
from retrieval.train.offline_mining import confusion_rate, hard_negatives
from retrieval.train.validation import knn_recall
from retrieval.workers import loader_workers

STATE_FILE = "train_state.pt"


@dataclasses.dataclass
class TrainResult:
    out: Path
    epochs: int  # epochs completed in total
    step: int
    history: list[dict[str, Any]]  # per epoch: epoch, step, loss, images_per_second, recall@K
    initial: dict[str, float]  # validation recall before training
    skipped: list[dict[str, str]]
    train_images: int = 0
    val_images: int = 0

    @property
    def metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "epochs": self.epochs, "step": self.step, "metrics": self.metrics,
                "initial": self.initial, "history": self.history, "train_images": self.train_images,
                "val_images": self.val_images, "skipped": self.skipped}


class TrainModule(nn.Module):
    """The embedding net, plus SimCLR's projection MLP when there is one; returns what the loss sees."""

    def __init__(self, net: EmbeddingNet, projection_dim: int | None = None):
        super().__init__()
        self.net = net
        self.projector = None if projection_dim is None else nn.Sequential(
            nn.Linear(net.dim, net.dim), nn.ReLU(inplace=True), nn.Linear(net.dim, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.projector is None:
            return self.net(x)
        return F.normalize(self.projector(self.net.features(x)).float(), dim=1)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_data(config: TrainConfig, data: str | Path | ImageSet) -> tuple[ImageSet, ImageSet | None]:
    images = data if isinstance(data, ImageSet) else read_images(data, labelled=config.spec.labelled)
    if config.spec.labelled:
        if not images.labelled:
            raise RetrError(f"{config.method} training needs labelled data (class folders or a path,label CSV)")
        images = drop_small_classes(images)
    return split(images, config.split, config.val_fraction, config.seed)


def data_config_for(backbone: nn.Module, image_size: int | None) -> dict[str, Any]:
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in resolve_model_data_config(backbone).items()}
    if image_size is not None:
        if not 16 <= image_size <= MAX_INPUT_SIDE:
            raise RetrError(f"--image-size must be from 16 to {MAX_INPUT_SIDE}, got {image_size}")
        cfg["input_size"] = [3, int(image_size), int(image_size)]
    return cfg


@torch.no_grad()
def embed(net: nn.Module, images: ImageSet, transform: Callable, device: torch.device, *,
          batch_size: int = 128, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised vectors, positions into ``images`` that decoded) with the eval transform."""
    was_training = net.training
    net.eval()
    loader = DataLoader(TrainDataset(images, transform), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate, shuffle=False)
    vecs, pos = [], []
    for batch in loader:
        if batch["x"] is None:
            continue
        x = batch["x"].to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            # float16 as at index time (retrieval/embed.py), and on GPUs without bfloat16
            with torch.autocast("cuda", dtype=torch.float16):
                out = net(x)
        else:
            out = net(x)
        vecs.append(out.float().cpu().numpy())
        pos.append(batch["index"].numpy())
    net.train(was_training)
    dim = getattr(net, "dim", 0)
    return (np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32),
            np.concatenate(pos) if pos else np.zeros(0, np.int64))


def start_backbone(config: TrainConfig) -> tuple[nn.Module, str, str]:
    """(backbone, timm name, weights digest): a timm model, or the backbone of a retr checkpoint."""
    if is_checkpoint(config.model):
        if config.weights is not None:
            raise RetrError("--weights cannot be combined with a checkpoint directory (it has its own)")
        loaded = load_checkpoint(config.model)
        return loaded.net.backbone, loaded.info.backbone, loaded.info.weights
    backbone, digest = create_backbone(config.model, weights=config.weights, pretrained=config.pretrained)
    return backbone, config.model, digest


def _check_out(out: Path, resume: bool) -> Path:
    """The training-state file in ``out``, after checking ``out`` suits a new run or a resumed one."""
    if out.exists() and not out.is_dir():
        raise RetrError(f"--out {out} is not a folder (a checkpoint is a directory)")
    state_path = out / STATE_FILE
    if resume and not state_path.is_file():
        raise RetrError(f"--resume: {out} holds no training state ({STATE_FILE}) to resume")
    if not resume and (state_path.is_file() or (out / CONFIG_FILE).is_file()):
        raise RetrError(f"{out} already holds a training run; pass --resume to continue it or "
                        f"choose another --out")
    return state_path


class Trainer:
    """One training run: built from a config and data, then ``run()``."""

    def __init__(self, config: TrainConfig, data: str | Path | ImageSet, out: str | Path, *,
                 resume: bool = False, progress: bool = False):
        self.config, self.out, self.resume, self.progress = config, Path(out), resume, progress
        state_path = _check_out(self.out, resume)
        self.ctx = distributed.setup(config.device)
        _seed_everything(config.seed)
        self.train_set, self.val_set = prepare_data(config, data)
        self.skipped: list[dict[str, str]] = list(self.train_set.skipped)
        self._bad: set[int] = set()
        self._build_model()
        self._build_data()
        self._build_optimiser()
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.initial: dict[str, float] = {}
        if resume:
            self._load_state(state_path)

    def _build_model(self) -> None:
        """The embedding net (and the method's projection head) on the device, wrapped for DDP; loss, miner."""
        config, method = self.config, self.config.spec
        backbone, self.backbone_name, self.digest = start_backbone(config)
        self.data_config = data_config_for(backbone, config.image_size)
        self.net = EmbeddingNet(backbone, config.embedding_dim)
        self.module = TrainModule(self.net, method.projection_dim(config)).to(self.ctx.device)
        self.cuda = self.ctx.device.type == "cuda"
        if self.cuda:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.model = distributed.wrap(self.module, self.ctx)
        self.loss_fn = method.create_loss(config)
        self.miner = method.create_miner(config)

    def _build_data(self) -> None:
        """The method's sampler and training transform, the loader over them, and the eval transform."""
        self.sampler, transform, self.steps = self.config.spec.batches(self.config, self.train_set,
                                                                       self.data_config, self.ctx)
        self.workers = loader_workers() if self.config.workers is None else self.config.workers
        self.loader = DataLoader(TrainDataset(self.train_set, transform), batch_sampler=self.sampler,
                                 num_workers=self.workers, collate_fn=collate, pin_memory=self.cuda,
                                 persistent_workers=False)
        self.eval_transform = make_transform(self.data_config)

    def _build_optimiser(self) -> None:
        """The optimiser, its one-cycle schedule over every step, and mixed precision on CUDA."""
        config = self.config
        params = [p for p in self.module.parameters() if p.requires_grad]
        if config.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(params, lr=config.lr,
                                                                      weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                             weight_decay=config.weight_decay, nesterov=True)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=config.lr,
                                                             total_steps=config.epochs * self.steps)
        self.amp_dtype = torch.bfloat16 if self.cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.use_amp = self.cuda and config.amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    # ---- resumable state: weights, optimiser, scheduler, counters, RNG (safe: weights_only) ----
    def _settings(self) -> dict[str, Any]:
        s = self.config.settings()
        s.update(steps_per_epoch=self.steps, world_size=self.ctx.world_size)
        for volatile in ("device", "workers"):
            s.pop(volatile)
        return s

    def _save_state(self) -> None:
        state = {"model": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step": self.step,
                 "rng_torch": torch.get_rng_state(),
                 "meta": json.dumps({"settings": self._settings(), "history": self.history,
                                     "initial": self.initial, "skipped": self.skipped,
                                     "python_rng": _py_rng_state()})}
        with atomic_path(self.out / STATE_FILE) as tmp:
            torch.save(state, tmp)

    def _load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            meta = json.loads(state["meta"])
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: one line
            raise RetrError(f"cannot read training state {path}: {str(exc).splitlines()[0][:160]}") from exc
        saved, now = meta["settings"], self._settings()
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if changed:
            raise RetrError(f"--resume with different settings than the saved run ({', '.join(changed)}); "
                            f"use the same options or a new --out")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        torch.set_rng_state(state["rng_torch"])
        random.setstate(_py_rng_from(meta["python_rng"]))
        self.history, self.initial = meta["history"], meta["initial"]
        self.skipped = meta["skipped"]

    # ---- the loop ----
    def validate(self) -> dict[str, float]:
        if self.val_set is None or not self.ctx.is_main:
            return {}
        vecs, pos = embed(self.module.net, self.val_set, self.eval_transform, self.ctx.device,
                          workers=min(self.workers, 2))
        if len(vecs) < 2:
            return {}
        return knn_recall(vecs, self.val_set.labels[pos], self.config.recall_ks)

    def mine(self) -> float:
        """Offline hard negatives over the whole training set, shared with every rank's sampler."""
        plan = None
        if self.ctx.is_main:
            vecs, pos = embed(self.module.net, self.train_set, self.eval_transform, self.ctx.device,
                              workers=min(self.workers, 2))
            found = hard_negatives(vecs, self.train_set.labels[pos])
            plan = np.where(found >= 0, pos[np.clip(found, 0, None)], -1)  # back to training positions
            full = np.full((len(self.train_set), plan.shape[1]), -1, np.int64)
            full[pos] = plan
            plan = full
        plan = distributed.broadcast(plan, self.ctx)
        self.sampler.set_hard_negatives(plan)
        return confusion_rate(plan)

    def _train_step(self, batch: dict[str, Any]) -> float:
        x, labels = batch["x"], batch["labels"].to(self.ctx.device)
        if isinstance(x, tuple):  # SimCLR: the 2N views; view i and view i + N share a label
            n = len(x[0])
            x = torch.cat(x)
            labels = torch.arange(n, device=self.ctx.device).repeat(2)
        x = x.to(self.ctx.device, non_blocking=True)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            emb = self.model(x)
        indices = self.miner(emb, labels) if self.miner is not None else None
        loss = self.loss_fn(emb.float(), labels, indices)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def _train_epoch(self) -> dict[str, float]:
        self.module.train()
        if self.config.freeze_bn:
            # small P x K batches of a new domain would overwrite the pretrained running statistics (and,
            # measured on Fashion-MNIST, cost a third of the recall before any weight moved)
            for m in self.module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        self.sampler.set_epoch(self.epoch)
        bar = progress_bar(self.steps, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", unit="step",
                           enabled=self.progress and self.ctx.is_main)
        losses, seen, busy = [], 0, 0.0
        start = time.perf_counter()
        for batch in self.loader:
            for i, reason in batch["errors"]:
                if i not in self._bad:
                    self._bad.add(i)
                    self.skipped.append({"path": str(self.train_set.items[i]), "reason": reason})
            if batch["x"] is None:
                continue
            losses.append(self._train_step(batch))
            self.step += 1
            seen += len(batch["labels"]) * (2 if isinstance(batch["x"], tuple) else 1)
            busy = time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{seen / max(busy, 1e-9):.0f}")
        bar.close()
        loss = distributed.mean(float(np.mean(losses)) if losses else math.nan, self.ctx)
        return {"loss": loss, "images_per_second": seen * self.ctx.world_size / max(busy, 1e-9)}

    def _checkpoint(self, metrics: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        training = {**self._settings(), "train_images": len(self.train_set),
                    "train_classes": len(np.unique(self.train_set.labels)),
                    "val_images": len(self.val_set) if self.val_set is not None else 0,
                    "skipped": len(self.skipped), "weights_start": self.digest}
        save_checkpoint(self.module.net, self.out, backbone=self.backbone_name, data_config=self.data_config,
                        training=training, metrics=metrics, extra={"initial_metrics": self.initial})
        self._save_state()

    def run(self) -> TrainResult:
        try:
            if not self.resume:
                self.initial = self.validate()
            while self.epoch < self.config.epochs:
                mined = None
                if self.config.mine_every and self.epoch and self.epoch % self.config.mine_every == 0:
                    mined = self.mine()
                record: dict[str, Any] = {"epoch": self.epoch + 1, **self._train_epoch()}
                if mined is not None:
                    record["mined_confusion_rate"] = mined
                self.epoch += 1
                record.update(step=self.step, **self.validate())
                self.history.append(record)
                self._checkpoint(record)
                distributed.barrier(self.ctx)
        finally:
            distributed.teardown(self.ctx)
        return TrainResult(out=self.out, epochs=self.epoch, step=self.step, history=self.history,
                           initial=self.initial, skipped=self.skipped, train_images=len(self.train_set),
                           val_images=len(self.val_set) if self.val_set is not None else 0)


def train(config: TrainConfig, data: str | Path | ImageSet, out: str | Path, *, resume: bool = False,
          progress: bool = False) -> TrainResult:
    """Train an embedding model and write a checkpoint directory (a model spec) to ``out``."""
    return Trainer(config, data, out, resume=resume, progress=progress).run()


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _py_rng_from(saved: list[Any]) -> tuple:
    return (saved[0], tuple(saved[1]), saved[2])
