"""Tiny synthetic labelled sets for the trainer tests: colour classes under random texture and brightness."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retrieval.train.data import ImageSet

HUES = [(1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.3, 1.0), (1.0, 1.0, 0.3)]


def colour_images(per_class: int = 16, seed: int = 0, size: int = 32) -> tuple[list[Image.Image], list[str]]:
    rng = np.random.default_rng(seed)
    images, names = [], []
    for c, hue in enumerate(HUES):
        for _ in range(per_class):
            tex = rng.uniform(0, 1, (size // 4, size // 4, 1)).repeat(4, 0).repeat(4, 1)
            a = tex * np.array(hue) * rng.uniform(0.3, 1.0) + rng.uniform(0, 0.6, 3) * rng.uniform(0, 1, (size, size, 1))
            images.append(Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)))
            names.append(f"c{c}")
    return images, names


@pytest.fixture(scope="session")
def colour_set() -> ImageSet:
    return ImageSet.from_labels(*colour_images())


def write_folder(root, per_class: int = 4, classes: int = 3, size: int = 32) -> None:
    images, names = colour_images(per_class=per_class, size=size)
    counts: dict[str, int] = {}
    for img, name in zip(images, names):
        if int(name[1:]) >= classes:
            continue
        counts[name] = counts.get(name, 0) + 1
        (root / name).mkdir(parents=True, exist_ok=True)
        img.save(root / name / f"{counts[name]}.png")
