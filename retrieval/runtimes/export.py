"""Exporting a model into the export cache (torch): the network with its normalisation, written atomically.

Where an export lives and how it is read back without torch: retrieval.runtimes.cache.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from retrieval.models.identity import export_key
from retrieval.models.load import LoadedModel
from retrieval.runtimes.base import Runtime
from retrieval.runtimes.cache import (EXPORT_FORMAT, META, CorruptExport, cache_root, digest, discard, folder_for,
                                      identity, verify)

__all__ = ["EXPORT_FORMAT", "CorruptExport", "ExportedNet", "cache_root", "cached_export", "discard",
           "export_folder", "input_size", "verify"]

log = logging.getLogger(__name__)

EXAMPLE_BATCH = 2


class ExportedNet(torch.nn.Module):
    """What is exported: uint8 images -> normalisation (ToTensor's /255, mean, std) -> the embedding network."""

    def __init__(self, net: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        return self.net((x - self.mean) / self.std)


def input_size(model: LoadedModel) -> tuple[int, int]:
    _, height, width = model.info.data_config["input_size"]
    return int(height), int(width)


def model_key(model: LoadedModel) -> dict[str, Any]:
    head = None if isinstance(model.net.head, torch.nn.Identity) else model.net.dim
    return export_key(model.info.spec, model.info.weights, head)


def export_folder(model: LoadedModel, runtime: Runtime) -> Path:
    return folder_for(model_key(model), runtime)


def cached_export(model: LoadedModel, runtime: Runtime) -> tuple[Path, bool]:
    """(the folder of ``model``'s export for ``runtime``, whether this call exported it); exports when missing.

    A corrupt cached export is removed and exported again. Export errors propagate (the caller falls back).
    """
    folder = export_folder(model, runtime)
    if folder.exists():
        try:
            verify(folder, runtime)
            return folder, False
        except CorruptExport as exc:
            log.warning(f"the cached {runtime.name} export is corrupt ({exc}); exporting it again")
            discard(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        cfg = model.info.data_config
        wrapped = ExportedNet(model.net.eval(), tuple(cfg["mean"]), tuple(cfg["std"])).eval()
        example = torch.zeros(EXAMPLE_BATCH, 3, *input_size(model), dtype=torch.uint8)
        runtime.export(wrapped, example, tmp)
        meta = {"identity": identity(model_key(model), runtime), "model": model.info.identity(),
                "data_config": cfg, "files": {name: digest(tmp / name) for name in runtime.files}}
        (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
        for path in tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.rename(tmp, folder)  # atomic; fails when another process's export got there first
        except OSError:
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, True
