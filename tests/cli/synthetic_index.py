"""An index directory with known vectors (no model run): class folders of tiny PNGs whose catalog rows hold
vectors drawn around one centre per class."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from index.catalog.schema import STATUS_OK
from index.directory import IndexStore

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


@dataclasses.dataclass
class SyntheticIndex:
    data: Path  # class folders
    index: Path
    paths: list[str]
    labels: list[str]
    vectors: np.ndarray


def make_index(tmp_path: Path, *, classes: int = 3, per_class: int = 6, dim: int = 16, spread: float = 0.2,
               index_type: str = "flat", seed: int = 0) -> SyntheticIndex:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    data, paths, labels, vecs = tmp_path / "data", [], [], []
    for c in range(classes):
        folder = data / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            path = folder / f"{i}.png"
            Image.new("RGB", (12, 12), COLOURS[c % len(COLOURS)]).save(path)
            paths.append(str(path.resolve()))
            labels.append(f"class{c}")
            vecs.append(centres[c] + spread * rng.normal(size=dim))
    vectors = np.asarray(vecs, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index_dir = tmp_path / "idx"
    with IndexStore.open(index_dir, create=True) as store:
        store.catalog.write_images([{"path": p, "status": STATUS_OK, "vector": v} for p, v in zip(paths, vectors)])
        store.rebuild(index_type=index_type, model={"spec": "synthetic", "weights": "none", "dim": dim})
    return SyntheticIndex(data, index_dir, paths, labels, vectors)
