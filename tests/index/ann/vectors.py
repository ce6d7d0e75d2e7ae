"""Random unit vectors for the ann tests: uniform on the sphere, or in tight clusters (the easy case)."""
import numpy as np


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, d, centres=50):
    c = unit(rng, centres, d)
    x = c[rng.integers(0, centres, n)] + 0.15 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
