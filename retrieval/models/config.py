"""What a model's files say, read and checked without torch or timm: a data config (the preprocessing that
travels with a model) and a retr checkpoint's config.json."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from index.errors import RetrError
from retrieval.models import CONFIG_FILE

MAX_INPUT_SIDE = 2048  # a model input side beyond this is a mistake in a config, not a model to run
FORMAT = "retr-checkpoint"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"


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


def read_config(ckpt_dir: str | Path) -> dict[str, Any]:
    """The checkpoint's config, checked field by field: a bad one is a one-line error naming the field."""
    path = Path(ckpt_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RetrError(f"cannot read checkpoint config {path}: {str(exc).splitlines()[0][:200]}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise RetrError(f"{path} is not a retr checkpoint (format {found!r})")
    version = config.get("version", 0)
    if not is_whole(version):
        raise RetrError(f"{path}: bad checkpoint config: version must be a whole number, got {version!r}")
    if version > VERSION:
        raise RetrError(f"{path} has checkpoint version {version}; this retr reads up to {VERSION}")
    try:
        _check_fields(config)
    except ValueError as exc:
        raise RetrError(f"{path}: bad checkpoint config: {exc}") from exc
    return config


def _check_fields(config: dict[str, Any]) -> None:
    backbone = config.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise ValueError(f"backbone must be a timm model name, got {backbone!r}")
    dim = config.get("embedding_dim")
    if dim is not None and not (is_whole(dim) and dim > 0):
        raise ValueError(f"embedding_dim must be a positive whole number or null, got {dim!r}")
    check_data_config(config.get("data_config"))
