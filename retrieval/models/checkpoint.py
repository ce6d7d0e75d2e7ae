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
from retrieval.models import CONFIG_FILE
from retrieval.models.backbones import create_backbone
from retrieval.models.config import FORMAT, VERSION, WEIGHTS_FILE, jsonable, read_config
from retrieval.models.net import EmbeddingNet
from retrieval.models.weights import file_digest

__all__ = ["Checkpoint", "read_checkpoint", "read_config", "save_checkpoint"]


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
