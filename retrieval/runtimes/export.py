"""Exports, cached once per model identity and runtime version under $RETR_CACHE (default ~/.cache/retr).

An export is written into a private temporary folder and renamed into place when complete: two processes
exporting at once both finish, the first rename wins and the other discards its copy, so a reader never
sees half a folder. Each folder records the sha256 of its files; a file that no longer matches (a
truncated copy, a disk error) makes the folder corrupt: it is removed and exported again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from retrieval.models.load import LoadedModel
from retrieval.runtimes.base import Runtime

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when what is exported changes (the wrapper below, the runtimes' export calls)
META = "meta.json"
EXAMPLE_BATCH = 2


class CorruptExport(Exception):
    """A cached export whose files do not match the digests it recorded."""


def cache_root() -> Path:
    return Path(os.environ.get("RETR_CACHE") or Path.home() / ".cache" / "retr")


class ExportedNet(torch.nn.Module):
    """What is exported: uint8 images -> normalisation (as Preprocess.normalise) -> the embedding network."""

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


def export_identity(model: LoadedModel, runtime: Runtime) -> dict[str, Any]:
    """Everything an export depends on: the model's identity, its input, the runtime and torch versions."""
    cfg = model.info.data_config
    return {"format": EXPORT_FORMAT, **model.info.identity(), "input_size": list(input_size(model)),
            "mean": list(cfg["mean"]), "std": list(cfg["std"]), "runtime": runtime.name,
            "runtime_version": runtime.version(), "torch": torch.__version__}


def export_folder(model: LoadedModel, runtime: Runtime) -> Path:
    identity = json.dumps(export_identity(model, runtime), sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return cache_root() / "exports" / f"{runtime.name}-{key}"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(folder: Path, runtime: Runtime) -> None:
    """Raise CorruptExport unless every file of the export matches its recorded digest."""
    try:
        meta = json.loads((folder / META).read_text())
        digests = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptExport(f"{folder / META} is unreadable ({type(exc).__name__})") from None
    for name in runtime.files:
        path = folder / name
        if not path.is_file() or digests.get(name) != _digest(path):
            raise CorruptExport(f"{path} does not match its recorded sha256")


def discard(folder: Path) -> None:
    """Remove a cached export: renamed aside first, so no reader finds it half deleted."""
    aside = folder.with_name(f".discard-{uuid.uuid4().hex}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


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
        wrapped = ExportedNet(model.net.eval(), tuple(model.info.data_config["mean"]),
                              tuple(model.info.data_config["std"])).eval()
        example = torch.zeros(EXAMPLE_BATCH, 3, *input_size(model), dtype=torch.uint8)
        runtime.export(wrapped, example, tmp)
        meta = {"identity": export_identity(model, runtime),
                "files": {name: _digest(tmp / name) for name in runtime.files}}
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
