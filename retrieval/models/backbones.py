"""timm backbones: creating one with the weights it resolves to, its data config and eval transform.

Preprocessing travels with the model (timm's data config), so mean, std and input size are never
hard-coded; a data config read from a file is checked field by field.
"""
from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from timm.data import create_transform, resolve_model_data_config
from torch import nn

from index.errors import RetrError
from retrieval.models.weights import file_digest, load_into, packaged_weights, read_state_dict

MAX_INPUT_SIDE = 2048  # a model input side beyond this is a mistake in a config, not a model to run


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


def data_config(backbone: nn.Module) -> dict[str, Any]:
    """timm's data config of ``backbone`` as JSON values (tuples as lists)."""
    return jsonable(resolve_model_data_config(backbone))


def jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


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
