"""A model spec resolved into a ready embedding network, its transform and its identity.

A model is named by a spec: a timm model name, or a path to a retr checkpoint directory.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch

from index.errors import RetrError
from retrieval.models import CONFIG_FILE, DEFAULT_MODEL, is_checkpoint
from retrieval.models.backbones import create_backbone, data_config, make_transform
from retrieval.models.checkpoint import read_checkpoint
from retrieval.models.net import EmbeddingNet



@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What identifies a model for an index: a query must use the same one."""

    spec: str  # timm name, or the resolved path of a checkpoint directory
    backbone: str
    dim: int
    weights: str  # "sha256:<hex>" of the weights file, "random:<seed>" or "timm-pretrained"
    data_config: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        return {"spec": self.spec, "weights": self.weights, "dim": self.dim}


@dataclasses.dataclass
class LoadedModel:
    net: EmbeddingNet
    info: ModelInfo
    transform: Callable  # PIL image -> CHW float tensor, from the model's timm data config


def load_checkpoint(ckpt_dir: str | Path) -> LoadedModel:
    ckpt = read_checkpoint(ckpt_dir)
    info = ModelInfo(spec=str(ckpt.path), backbone=ckpt.config["backbone"], dim=ckpt.net.dim,
                     weights=ckpt.weights_digest, data_config=ckpt.config["data_config"])
    return LoadedModel(net=ckpt.net, info=info, transform=make_transform(info.data_config))


def load_model(spec: str | Path = DEFAULT_MODEL, *, weights: str | Path | None = None,
               pretrained: bool = True, embedding_dim: int | None = None) -> LoadedModel:
    """Resolve a model spec into a ready embedding network (on CPU, eval mode) and its transform."""
    if is_checkpoint(spec):
        if weights is not None:
            raise RetrError("--weights cannot be combined with a checkpoint directory (it has its own)")
        return load_checkpoint(spec)
    name = str(spec)
    if Path(name).exists():
        raise RetrError(f"{name} is not a retr checkpoint directory (no {CONFIG_FILE})")
    backbone, digest = create_backbone(name, weights=weights, pretrained=pretrained)
    net = EmbeddingNet(backbone, embedding_dim).eval()
    info = ModelInfo(spec=name, backbone=name, dim=net.dim, weights=digest, data_config=data_config(backbone))
    return LoadedModel(net=net, info=info, transform=make_transform(info.data_config))


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RetrError("--device cuda was asked for but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise RetrError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)
