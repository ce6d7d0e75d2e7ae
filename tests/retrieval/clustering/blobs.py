"""Well-separated unit vectors around a few random centres: clusters with a known answer."""
import numpy as np


def blobs(n_per=20, centres=4, dim=8, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    x = np.concatenate([m + spread * rng.normal(size=(n_per, dim)) for m in means]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
