"""retr checkpoint directories: ``model.safetensors`` + ``config.json``; usable anywhere as a model spec."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from index.atomic import atomic_path, atomic_write_text
from index.errors import RetrError
from retrieval.models.backbones import check_data_config, create_backbone, is_whole, jsonable
from retrieval.models.net import EmbeddingNet
from retrieval.models.weights import file_digest
from retrieval.models import CONFIG_FILE

FORMAT = "retr-checkpoint"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"


def save_checkpoint(net: EmbeddingNet, out_dir: str | Path, *, backbone: str, data_config: dict[str, Any],
                    training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the embedding network (backbone + head, never a loss-only projection head) atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    head = None if isinstance(net.head, nn.Identity) else "linear"
    config = {"format": FORMAT, "version": VERSION, "backbone": backbone, "head": head,
              "embedding_dim": net.dim if head else None, "dim": net.dim,
              "data_config": jsonable(data_config),
              "training": training or {}, "metrics": metrics or {}, **(extra or {})}
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True))
    return out


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


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory read back: its network (CPU, eval mode) and what its files say."""

    path: Path  # resolved
    config: dict[str, Any]
    net: EmbeddingNet
    weights_digest: str  # "sha256:<hex>" of the weights file


def read_checkpoint(ckpt_dir: str | Path) -> Checkpoint:
    ckpt = Path(ckpt_dir).resolve()
    config = read_config(ckpt)
    weights = ckpt / WEIGHTS_FILE
    if not weights.is_file():
        raise RetrError(f"checkpoint {ckpt} has no {WEIGHTS_FILE}")
    backbone, _ = create_backbone(config["backbone"], pretrained=False)
    net = EmbeddingNet(backbone, config.get("embedding_dim"))
    try:
        net.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # noqa: BLE001
        raise RetrError(f"checkpoint {ckpt} weights do not fit its config: {str(exc).splitlines()[0][:200]}") from exc
    return Checkpoint(path=ckpt, config=config, net=net.eval(), weights_digest="sha256:" + file_digest(weights))
