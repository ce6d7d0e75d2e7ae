"""Helpers shared by the benchmark scripts (not part of the package)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def timer(out: dict, key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    out[key] = time.perf_counter() - start


def real_photos() -> dict[str, np.ndarray]:
    """Full-size freely licensed photos available offline (scikit-image, scikit-learn)."""
    import skimage.data as d
    from sklearn.datasets import load_sample_images
    out = {n: getattr(d, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                                         "retina", "brick", "gravel", "camera", "coins")}
    for name, img in zip(("china", "flower"), load_sample_images().images):
        out[name] = img
    return out


def clustered_unit_vectors(n: int, dim: int, *, centres: int = 1000, noise: float = 0.35,
                           seed: int = 0) -> np.ndarray:
    """Vectors shaped like real embeddings: a mixture of many clusters on the unit sphere."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = c[rng.integers(0, centres, m)] + noise / np.sqrt(dim) * rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_photo_copies(folder: Path, copies: int) -> int:
    """``copies`` JPEG copies of each real photo in ``folder`` (made here); how many files were written."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in real_photos().items():
        img = Image.fromarray(arr).convert("RGB")
        for i in range(copies):
            img.save(folder / f"{name}-{i:03}.jpg", quality=90)
    return len(list(folder.iterdir()))


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (decode workers), every thread."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_child(script: str, kind: str, **kwargs) -> dict:
    """Run ``script --child {"kind": kind, **kwargs}`` in a fresh Python process; the JSON it prints last.

    Each measurement in a fresh process, as each `retr` command is one: idle OpenMP threads left spinning
    by one measurement never slow the next."""
    proc = subprocess.run([sys.executable, script, "--child", json.dumps({"kind": kind, **kwargs})],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {kwargs} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
