"""Where pretrained weights come from, and how a state dict file is read safely.

Weights resolve in order: an explicit file, a weights package installed locally (a small registry
below), timm's pretrained download, else a clear error. Random weights only when asked for.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from index.atomic import file_sha256
from index.errors import RetrError
from retrieval.models.sources import WEIGHT_SOURCES, WeightSource, packaged_weights

__all__ = ["WEIGHT_SOURCES", "WeightSource", "file_digest", "load_into", "packaged_weights", "read_state_dict"]


def file_digest(path: str | Path) -> str:
    """The sha256 of a weights file: part of a model's identity."""
    return file_sha256(path)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch file, without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise RetrError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same user error
        raise RetrError(f"cannot read weights {path}: {str(exc).splitlines()[0][:200]}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise RetrError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load ``sd`` by name when the keys match, else in key order when every shape lines up.

    Packaged weights often come from another implementation of the same network (different key
    names, same tensors in the same order). A trailing classifier missing from the file is allowed.
    """
    target = model.state_dict()
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "classifier")
    if set(sd) <= set(target) and all(k.startswith(classifier) for k in set(target) - set(sd)):
        model.load_state_dict(sd, strict=set(sd) == set(target))  # by name (a file without classifier is fine)
        return
    t_items, s_items = list(target.items()), list(sd.items())
    n = len(s_items)
    extra = {k for k, _ in t_items[n:]}
    if n <= len(t_items) and all(k.startswith(classifier) for k in extra) and all(
            tv.shape == sv.shape for (_, tv), (_, sv) in zip(t_items, s_items)):
        mapped = {tk: sv for (tk, _), (_, sv) in zip(t_items, s_items)}
        model.load_state_dict(mapped, strict=False)
        return
    raise RetrError(f"weights {source} do not fit {type(model).__name__}: {len(sd)} tensors vs "
                    f"{len(target)} (keys and shapes differ)")
