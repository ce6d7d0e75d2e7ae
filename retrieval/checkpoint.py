"""retr checkpoint directories: ``model.safetensors`` + ``config.json``; usable anywhere as a model spec."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from index.atomic import atomic_path, atomic_write_text
from index.errors import RetrError
from retrieval.models import EmbeddingNet, LoadedModel, ModelInfo, create_backbone, make_transform
from retrieval.weights import file_digest

FORMAT = "retr-checkpoint"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


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
              "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
              "training": training or {}, "metrics": metrics or {}, **(extra or {})}
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True))
    return out


def read_config(ckpt_dir: str | Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RetrError(f"cannot read checkpoint config {path}: {exc}") from exc
    if config.get("format") != FORMAT:
        raise RetrError(f"{path} is not a retr checkpoint (format {config.get('format')!r})")
    if int(config.get("version", 0)) > VERSION:
        raise RetrError(f"{path} has checkpoint version {config['version']}; this retr reads up to {VERSION}")
    return config


def load_checkpoint(ckpt_dir: str | Path) -> LoadedModel:
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
    net.eval()
    info = ModelInfo(spec=str(ckpt), backbone=config["backbone"], dim=net.dim,
                     weights="sha256:" + file_digest(weights), data_config=config["data_config"])
    return LoadedModel(net=net, info=info, transform=make_transform(info.data_config))
