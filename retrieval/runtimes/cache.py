"""The export cache, read without torch: where a model's export lives, whether its files are whole, and a
checked export found from the model's identity alone.

An export's folder is named by the hash of ``identity``: the model's export key (retrieval.models.identity:
spec, weights digest, checkpoint config, torch and timm versions from package metadata) and the runtime's
name and version. Its meta.json records the model's identity (spec, weights, dim) and data config, so a
process that finds a checked export embeds without loading the model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from retrieval.models.identity import ModelName
from retrieval.runtimes.base import AUTO, RUNTIMES, Runtime
from retrieval.runtimes.check import checked_cosine
from retrieval.user_cache import cache_root, cached_sha256

log = logging.getLogger(__name__)

# bump when what is exported or recorded changes (the wrapper, the runtimes' export calls, meta.json).
# 2: the folder is named from facts known without torch; meta.json records the model and its data config
EXPORT_FORMAT = 2
META = "meta.json"
AUTO_ORDER = ("openvino", "onnx")  # the CPU runtimes auto tries, fastest first (benchmarks/runtimes.py)


class CorruptExport(Exception):
    """A cached export whose files do not match the digests it recorded."""


def identity(key: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Everything an export depends on: the model's export key, the runtime and its version."""
    return {"format": EXPORT_FORMAT, **key, "runtime": runtime.name, "runtime_version": runtime.version()}


def folder_for(key: dict[str, Any], runtime: Runtime) -> Path:
    digest = hashlib.sha256(json.dumps(identity(key, runtime), sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / "exports" / f"{runtime.name}-{digest}"


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_meta(folder: Path, runtime: Runtime) -> dict[str, Any]:
    """The export's meta.json; CorruptExport unless every file of the export matches its recorded digest."""
    try:
        meta = json.loads((folder / META).read_text())
        digests = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptExport(f"{folder / META} is unreadable ({type(exc).__name__})") from None
    for name in runtime.files:
        path = folder / name
        if not path.is_file() or digests.get(name) != cached_sha256(path):
            raise CorruptExport(f"{path} does not match its recorded sha256")
    return meta


def verify(folder: Path, runtime: Runtime) -> None:
    """Raise CorruptExport unless every file of the export matches its recorded digest."""
    read_meta(folder, runtime)


def discard(folder: Path) -> None:
    """Remove a cached export: renamed aside first, so no reader finds it half deleted."""
    aside = folder.with_name(f".discard-{uuid.uuid4().hex}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class CheckedExport:
    """An export that passed its check against torch at ``precision``, with what its meta.json records."""

    folder: Path
    runtime: str
    precision: str
    min_cosine: float
    model: dict[str, Any]  # spec, weights, dim: the identity an index records
    data_config: dict[str, Any]


def candidates(runtime: str = AUTO, precision: str = "f32") -> list[Runtime]:
    """The installed exporting runtimes that may embed for ``runtime`` at ``precision``, in the order tried
    (auto: AUTO_ORDER); nothing is imported."""
    names = AUTO_ORDER if runtime == AUTO else (runtime,) if runtime in RUNTIMES else ()
    return [rt for rt in map(RUNTIMES.get, names) if precision in rt.precisions and rt.installed()]


def find_checked(name: ModelName, runtime: str = AUTO, precision: str = "f32") -> CheckedExport | None:
    """The checked export of ``name`` for ``runtime`` (auto: the first of AUTO_ORDER installed that has one),
    found without torch; None when there is none (the caller loads the model and exports or checks it)."""
    key = None
    for rt in candidates(runtime, precision):
        if key is None and (key := name.export_key()) is None:
            return None
        folder = folder_for(key, rt)
        if not folder.is_dir() or (cosine := checked_cosine(folder, precision)) is None:
            continue
        try:
            meta = read_meta(folder, rt)
            model, data_config = meta["model"], meta["data_config"]
            if not (isinstance(model, dict) and isinstance(data_config, dict)
                    and isinstance(model.get("dim"), int)):
                raise CorruptExport(f"{folder / META} records no model")
        except CorruptExport as exc:
            log.warning(f"the cached {rt.name} export is corrupt ({exc}); loading the model to export it again")
            continue
        return CheckedExport(folder, rt.name, precision, cosine, model, data_config)
    return None
