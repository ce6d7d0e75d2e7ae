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
FORMAT_VERSION = 2  # the newest this retr reads
ONDISK_FORMAT = 2  # written when an index keeps its lists in an .ivfdata file (older retr cannot open it)


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
    format_version: int = 1
    updated: float = dataclasses.field(default_factory=time.time)
    checksum: str | None = None  # sha256 of vectors.faiss as written (None: written by an older retr)
    ivfdata: dict[str, Any] | None = None  # the .ivfdata of an on-disk vectors.faiss (index.synced_file.FileRecord)

    def replace(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, updated=time.time(), **changes)


# the JSON types of each field (bool is refused where a number is meant)
_TYPES: dict[str, tuple[type, ...]] = {
    "model": (dict,), "dim": (int,), "factory": (str,), "index_type": (str,), "vectors": (int,),
    "ids_digest": (str,), "search": (dict,), "metric": (str,), "extra": (dict,), "format_version": (int,),
    "updated": (int, float), "checksum": (str, type(None)),
    "ivfdata": (dict, type(None))}
_REQUIRED = ("model", "dim", "factory", "index_type", "vectors", "ids_digest")


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


def model_key(model: dict[str, Any]) -> str:
    """A short fingerprint of the model that made a vector (spec, weights digest, dim): stored per catalog row."""
    fields = {k: model.get(k) for k in ("spec", "weights", "dim")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _problem(data: Any) -> str | None:
    """What is wrong with a parsed manifest, or None."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        return f"it lacks {', '.join(missing)}"
    for key, types in _TYPES.items():
        value = data.get(key)
        if key in data and (not isinstance(value, types) or isinstance(value, bool)):
            return f"{key} is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in types)}"
    if not isinstance(data["model"].get("spec"), str):
        return "model.spec is missing"
    if data["dim"] < 1 or data["vectors"] < 0:
        return f"dim {data['dim']} or vectors {data['vectors']} is out of range"
    return None


def read_manifest(index_dir: str | Path) -> Manifest | None:
    path = Path(index_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise RetrError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not JSON (or not UTF-8)
        data, problem = None, f"it is not valid JSON ({str(exc).splitlines()[0][:80]})"
    else:
        problem = _problem(data)
    if problem is not None:
        raise RetrError(f"{path} is damaged: {problem}; move it away and run `retr index build PATH --index "
                        f"{Path(index_dir)}` again (the catalog keeps the vectors of the same model)")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise RetrError(f"{path} has format version {data['format_version']}; this retr reads up to "
                        f"{FORMAT_VERSION}")
    known = {f.name for f in dataclasses.fields(Manifest)}
    return Manifest(**{k: v for k, v in data.items() if k in known})


def write_manifest(index_dir: str | Path, manifest: Manifest) -> None:
    data = dataclasses.asdict(manifest)
    regions = manifest.extra.get("regions")
    if manifest.ivfdata or (isinstance(regions, dict) and regions.get("ivfdata")):
        data["format_version"] = max(manifest.format_version, ONDISK_FORMAT)
    atomic_write_text(Path(index_dir) / MANIFEST_FILE, json.dumps(data, indent=2, sort_keys=True))
