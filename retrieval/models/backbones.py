"""timm backbones: creating one with the weights it resolves to, its data config and eval transform.

Preprocessing travels with the model (timm's data config), so mean, std and input size are never
hard-coded; a data config read from a file is checked field by field.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from timm.data import create_transform, resolve_model_data_config
from torch import nn

from index.errors import RetrError
from retrieval.models.config import MAX_INPUT_SIDE, check_data_config, is_whole, jsonable  # noqa: F401 - re-exported
from retrieval.models.weights import file_digest, load_into, packaged_weights, read_state_dict



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


def make_transform(data_config: dict[str, Any]) -> Callable:
    """timm's eval transform for a data config (resize, centre crop, normalise)."""
    cfg = dict(data_config)
    cfg["input_size"] = tuple(cfg["input_size"])
    cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
    return create_transform(**cfg, is_training=False)
