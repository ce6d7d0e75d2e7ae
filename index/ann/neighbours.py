"""Neighbour rows: leaving each query out of its own results (a collection searched with itself)."""
from __future__ import annotations

import numpy as np


def drop_self(positions: np.ndarray, self_positions: np.ndarray) -> np.ndarray:
    """Remove each query's own position (or id) from its neighbour row (one column fewer per row).

    A row where the query itself was not returned (ties, or the query is not in the gallery: -1) loses
    its last column instead, so every row keeps the same nearest neighbours minus the query.
    """
    positions = np.asarray(positions)
    self_positions = np.asarray(self_positions)
    mask = (positions == self_positions[:, None]) & (self_positions >= 0)[:, None]
    mask[~mask.any(axis=1), -1] = True
    return positions[~mask].reshape(len(positions), positions.shape[1] - 1)
