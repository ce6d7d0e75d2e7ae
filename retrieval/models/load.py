"""Embedding models: a timm backbone (+ optional linear head), L2-normalised float32 output.

A model is named by a spec: a timm model name, or a path to a retr checkpoint directory.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any, Callable

import timm
import torch
import torch.nn.functional as F
from timm.data import create_transform, resolve_model_data_config
from torch import nn

from index.errors import RetrError
from retrieval.models.weights import file_digest, load_into, packaged_weights, read_state_dict

DEFAULT_MODEL = "tf_efficientnet_lite0"
MAX_INPUT_SIDE = 2048  # a model input side beyond this is a mistake in a config, not a model to run


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


def is_checkpoint(spec: str | Path) -> bool:
    return (Path(spec) / "config.json").is_file()


def _check_timm_name(name: str) -> None:
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RetrError(f"unknown model {name!r}: not a timm model name nor a retr checkpoint directory{hint}")


def create_backbone(name: str, *, weights: str | Path | None = None, pretrained: bool = True,
                    **kwargs: Any) -> tuple[nn.Module, str]:
    """A pooled-feature timm backbone (num_classes=0) and the digest of the weights it got.

    ``pretrained=False`` gives random weights (only when the caller asked for them).
    """
    _check_timm_name(name)
    if weights is not None:
        model = timm.create_model(name, pretrained=False, **kwargs)
        load_into(model, read_state_dict(weights), str(weights))
        digest = "sha256:" + file_digest(weights)
    elif not pretrained:
        with torch.random.fork_rng(devices=[]):  # the same random weights every time: reproducible
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False, **kwargs)
        digest = "random:seed0"
    elif (packaged := packaged_weights(name)) is not None:
        model = timm.create_model(name, pretrained=False, **kwargs)
        load_into(model, read_state_dict(packaged), str(packaged))
        digest = "sha256:" + file_digest(packaged)
    else:
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - offline, no such weights, hub errors: one message
            raise RetrError(
                f"no pretrained weights for {name!r} on this machine (no weights package installed and "
                f"the download failed: {str(exc).splitlines()[0][:120]}); pass --weights FILE, or "
                f"--random-weights to start from random weights") from exc
        digest = "timm-pretrained"
    model.reset_classifier(0)
    return model, digest


def load_model(spec: str | Path = DEFAULT_MODEL, *, weights: str | Path | None = None,
               pretrained: bool = True, embedding_dim: int | None = None) -> LoadedModel:
    """Resolve a model spec into a ready embedding network (on CPU, eval mode) and its transform."""
    if is_checkpoint(spec):
        from retrieval.models.checkpoint import load_checkpoint
        if weights is not None:
            raise RetrError("--weights cannot be combined with a checkpoint directory (it has its own)")
        return load_checkpoint(spec)
    name = str(spec)
    if Path(name).exists() and not is_checkpoint(name):
        raise RetrError(f"{name} is not a retr checkpoint directory (no config.json)")
    backbone, digest = create_backbone(name, weights=weights, pretrained=pretrained)
    net = EmbeddingNet(backbone, embedding_dim).eval()
    data_config = resolve_model_data_config(backbone)
    info = ModelInfo(spec=name, backbone=name, dim=net.dim, weights=digest,
                     data_config=_jsonable(data_config))
    return LoadedModel(net=net, info=info, transform=make_transform(info.data_config))


def check_data_config(cfg: Any) -> None:
    """Raise ValueError naming the bad field of a data config (input_size, mean, std, crop_pct, ...)."""
    if not isinstance(cfg, dict):
        raise ValueError(f"data_config must be an object, got {type(cfg).__name__}")
    size = cfg.get("input_size")
    if not (isinstance(size, list) and len(size) == 3 and all(is_whole(v) and v > 0 for v in size)
            and size[0] == 3 and max(size[1:]) <= MAX_INPUT_SIDE):
        raise ValueError(f"data_config.input_size must be [3, height, width] with sides from 1 to "
                         f"{MAX_INPUT_SIDE}, got {size!r}")
    for key in ("mean", "std"):
        value = cfg.get(key)
        if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)):
            raise ValueError(f"data_config.{key} must be 3 numbers, got {value!r}")
    if not all(v > 0 for v in cfg["std"]):
        raise ValueError(f"data_config.std must be positive, got {cfg['std']!r}")
    crop_pct = cfg.get("crop_pct")
    if crop_pct is not None and not (_is_number(crop_pct) and crop_pct > 0
                                     and max(size[1:]) / crop_pct <= 2 * MAX_INPUT_SIDE):
        raise ValueError(f"data_config.crop_pct must be a number above 0 that resizes to at most "
                         f"{2 * MAX_INPUT_SIDE} pixels, got {crop_pct!r}")
    for key in ("interpolation", "crop_mode"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise ValueError(f"data_config.{key} must be a string, got {cfg[key]!r}")


def is_whole(value: Any) -> bool:
    """An int from JSON, not a bool (which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def make_transform(data_config: dict[str, Any]) -> Callable:
    """timm's eval transform for a data config (resize, centre crop, normalise)."""
    cfg = dict(data_config)
    cfg["input_size"] = tuple(cfg["input_size"])
    cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
    return create_transform(**cfg, is_training=False)


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RetrError("--device cuda was asked for but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise RetrError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)
