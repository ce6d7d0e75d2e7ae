import numpy as np
import pytest

from index.errors import RetrError
from retrieval.clustering.engines import DEFAULT_METHOD, ENGINES


def distances() -> np.ndarray:
    """Cosine distances of two tight groups of unit vectors (three near x, three near y)."""
    x = np.array([[1, 0.01], [1, -0.02], [1, 0.03], [0.02, 1], [-0.01, 1], [0.03, 1]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d = np.clip(1 - x @ x.T, 0, 2).astype(np.float32)
    np.fill_diagonal(d, 0)
    return d


@pytest.mark.parametrize("name", ENGINES.names())
def test_every_engine_finds_one_medoid_per_group(name):
    try:
        medoids, labels = ENGINES.get(name).run(distances(), 2, 0)
    except RetrError as exc:  # an optional engine whose library is not installed says how to get it
        assert "pip install" in str(exc)
        pytest.skip(str(exc))
    assert sorted(medoids // 3) == [0, 1]
    assert labels.shape == (6,) and len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1
    assert labels[0] != labels[3]


def test_the_default_is_registered_first_and_each_engine_says_where_it_comes_from():
    assert ENGINES.names()[0] == DEFAULT_METHOD
    assert all(ENGINES.get(name).description and ENGINES.get(name).bytes_per_cell >= 4 for name in ENGINES)
    with pytest.raises(RetrError, match="unknown clustering method 'kmeans'; known: alternate, fasterpam, pam"):
        ENGINES.get("kmeans")
