"""Helpers for the runtime tests: a private export cache, the tiny model, the sample photos as a uint8 batch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PHOTOS, TINY_MODEL


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty export cache of this test's own."""
    monkeypatch.setenv("RETR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny():
    """The tiny random-weight model, loaded with torch."""
    from retrieval.models.load import load_model
    return load_model(TINY_MODEL, pretrained=False)


def photo_batch(embedder) -> np.ndarray:
    """The sample photos, preprocessed for ``embedder``'s model (uint8 [N, 3, H, W])."""
    return embedder.prep.to_batch([Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture
def warnings_said(caplog):
    """The runtime warnings logged during a test, as lines."""
    caplog.set_level("WARNING", logger="retrieval")
    return lambda: [r.getMessage() for r in caplog.records if r.name.startswith("retrieval.runtimes")]
