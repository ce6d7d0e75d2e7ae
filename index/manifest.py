"""manifest.json: what an index directory holds and which model made it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from index.atomic import atomic_write_text
from index.errors import RetrError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Manifest:
    model: dict[str, Any]  # {"spec", "weights", "dim"}: a query must use the same
    dim: int
    factory: str  # the faiss factory string of vectors.faiss
    index_type: str  # what was asked for (auto, flat, ...)
    vectors: int  # vectors in vectors.faiss
    ids_digest: str  # digest of the sorted ids in vectors.faiss: the catalog must agree
    search: dict[str, int] = dataclasses.field(default_factory=dict)  # tuned nprobe / ef
    metric: str = "inner_product"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. region index settings
    format_version: int = FORMAT_VERSION
    updated: float = dataclasses.field(default_factory=time.time)

    def replace(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, updated=time.time(), **changes)


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


def read_manifest(index_dir: str | Path) -> Manifest | None:
    path = Path(index_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RetrError(f"cannot read {path}: {exc}") from exc
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise RetrError(f"{path} has format version {data['format_version']}; this retr reads up to "
                        f"{FORMAT_VERSION}")
    known = {f.name for f in dataclasses.fields(Manifest)}
    try:
        return Manifest(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise RetrError(f"{path} is incomplete: {exc}") from exc


def write_manifest(index_dir: str | Path, manifest: Manifest) -> None:
    atomic_write_text(Path(index_dir) / MANIFEST_FILE,
                      json.dumps(dataclasses.asdict(manifest), indent=2, sort_keys=True))
