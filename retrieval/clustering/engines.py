"""k-medoids engines by name (`retr cluster --method`): FasterPAM by default, scikit-learn-extra's optional.

Each engine imports its library (and numpy) when it runs, so the CLI's help can list the names cheaply.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

from index.errors import RetrError
from retrieval.registry import Registry

if TYPE_CHECKING:
    import numpy as np

# engine(symmetric float32 distances [n, n], k, seed) -> (medoid positions [k], label of each point [n] in 0..k-1)
Engine = Callable[["np.ndarray", int, int], "tuple[np.ndarray, np.ndarray]"]

DEFAULT_METHOD = "fasterpam"
SKLEARN_EXTRA_HINT = ("pip install cython setuptools && pip install --no-build-isolation "
                      "--no-binary scikit-learn-extra scikit-learn-extra")


@dataclasses.dataclass(frozen=True)
class KMedoidsEngine:
    run: Engine
    description: str  # where it comes from, for the help text
    bytes_per_cell: int = 4  # peak bytes per distance-matrix cell the engine needs


def fasterpam(distances: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """FasterPAM (Schubert & Rousseeuw 2021) with random initial medoids, from the kmedoids package.

    kmedoids walks the matrix column by column; for a symmetric matrix the transposed view holds the
    same values in the order it reads fastest (4-5x faster, identical result: benchmarks/kmedoids_vs_pam.py).
    """
    import kmedoids
    import numpy as np
    result = kmedoids.fasterpam(distances.T, k, init="random", random_state=seed)
    return np.asarray(result.medoids, np.int64), np.asarray(result.labels, np.int64)


def sklearn_extra_kmedoids():
    """scikit-learn-extra's KMedoids class, or a one-line error saying how to install it."""
    try:
        from sklearn_extra.cluster import KMedoids
    except Exception as exc:  # noqa: BLE001 - missing, or a wheel built against another NumPy (ValueError)
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}" if str(exc) else type(exc).__name__
        raise RetrError(f"methods pam and alternate need scikit-learn-extra, which cannot be imported "
                        f"({reason}); install it with: {SKLEARN_EXTRA_HINT}") from None
    return KMedoids


def _sklearn_extra(method: str, init: str) -> Engine:
    def run(distances: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np
        model = sklearn_extra_kmedoids()(n_clusters=k, metric="precomputed", method=method, init=init,
                                         max_iter=300, random_state=seed).fit(distances)
        return np.asarray(model.medoid_indices_, np.int64), np.asarray(model.labels_, np.int64)
    run.__doc__ = f"scikit-learn-extra KMedoids(method={method!r}, init={init!r})."
    return run


SKLEARN_EXTRA = "scikit-learn-extra, the optional sklearn-extra extra"
ENGINES: Registry[KMedoidsEngine] = Registry("clustering method")
ENGINES.register("fasterpam", KMedoidsEngine(fasterpam, "kmedoids package"))
# scikit-learn-extra works in float64: a copy of the matrix at twice the bytes, on top of ours
ENGINES.register("pam", KMedoidsEngine(_sklearn_extra("pam", "build"), SKLEARN_EXTRA, bytes_per_cell=12))
ENGINES.register("alternate", KMedoidsEngine(_sklearn_extra("alternate", "k-medoids++"), SKLEARN_EXTRA,
                                             bytes_per_cell=12))
