import importlib.util
import os

import kmedoids
import numpy as np
import pytest

from index.errors import RetrError
from retrieval.clustering import kmedoids as C
from retrieval.clustering.engines import SKLEARN_EXTRA_HINT
from tests.retrieval.clustering.blobs import blobs
from tests.retrieval.clustering.imports import fail_imports


HAS_SKLEARN_EXTRA = importlib.util.find_spec("sklearn_extra") is not None


def check_invariants(vectors, result):
    dist = 1.0 - vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    k = len(result.medoids)
    assert k == result.k == len(set(result.medoids.tolist()))
    # each medoid belongs to its own cluster
    np.testing.assert_array_equal(result.labels[result.medoids], np.arange(k))
    # every point is assigned to its nearest medoid
    to_medoids = dist[:, result.medoids]
    assigned = to_medoids[np.arange(len(vectors)), result.labels]
    np.testing.assert_allclose(assigned, to_medoids.min(axis=1), atol=1e-5)
    # the loss is the sum of distances to the assigned medoids, recomputed independently
    assert result.loss == pytest.approx(assigned.sum(), rel=1e-4, abs=1e-4)


@pytest.fixture
def sklearn_extra():
    """scikit-learn-extra (`make test` builds it from source); skipped locally without it, failed in CI."""
    if not HAS_SKLEARN_EXTRA:
        if os.environ.get("CI"):
            pytest.fail("CI must have scikit-learn-extra (the Makefile builds it; is a C compiler installed?)")
        pytest.skip("scikit-learn-extra (optional extra) not installed")


def test_fasterpam_invariants_and_same_result_as_the_engine_called_directly():
    x = blobs()
    (result,) = C.cluster_vectors(x, [4], seed=3)
    check_invariants(x, result)
    direct = kmedoids.fasterpam(C.cosine_distances(x), 4, init="random", random_state=3)
    np.testing.assert_array_equal(result.medoids, direct.medoids)
    np.testing.assert_array_equal(result.labels, direct.labels)
    assert result.loss == pytest.approx(direct.loss, rel=1e-5)
    assert result.silhouette == pytest.approx(kmedoids.medoid_silhouette(C.cosine_distances(x), direct.medoids)[0])


def test_the_distance_matrix_is_exactly_symmetric_which_the_fasterpam_engine_relies_on():
    # the engine hands kmedoids the transposed view (its fast reading order): the same matrix only if
    # d(i, j) == d(j, i) to the bit
    x = np.random.default_rng(5).normal(size=(700, 128)).astype(np.float32)
    d = C.cosine_distances(C.normalise(x))
    assert np.array_equal(d, d.T)
    assert d.dtype == np.float32 and np.all(np.diag(d) == 0)
    medoids, labels = C.ENGINES.get("fasterpam").run(d, 7, 2)
    direct = kmedoids.fasterpam(np.ascontiguousarray(d), 7, init="random", random_state=2)
    np.testing.assert_array_equal(medoids, direct.medoids)
    np.testing.assert_array_equal(labels, direct.labels)


def test_a_range_picks_the_true_number_of_blobs_by_silhouette():
    x = blobs(centres=4)
    results = C.cluster_vectors(x, range(2, 8))
    assert [r.k for r in results] == list(range(2, 8))
    assert C.best_by_silhouette(results).k == 4
    losses = [r.loss for r in results]
    assert losses[2] < losses[0]  # k=4 explains the data far better than k=2


def test_sampled_clustering_assigns_everything_to_the_nearest_medoid():
    x = blobs(n_per=30)
    (result,) = C.cluster_vectors(x, [4], sample=40, seed=1)
    assert result.sampled and len(result.labels) == len(x)
    check_invariants(x, result)
    # silhouette over all points equals kmedoids' medoid silhouette on the full matrix
    full = C.cosine_distances(x)
    assert result.silhouette == pytest.approx(kmedoids.medoid_silhouette(full, result.medoids)[0], abs=1e-4)


def test_the_distance_matrix_is_refused_before_allocation_beyond_memory():
    x = blobs(n_per=50)  # 200 points: 160 kB of float32 distances
    with pytest.raises(RetrError, match=r"--sample N \(N <= 100\)"):
        C.cluster_vectors(x, [3], memory=2 * 100 * 100 * 4)
    (result,) = C.cluster_vectors(x, [3], memory=2 * 100 * 100 * 4, sample=100)
    assert result.sampled


def test_bad_k_and_unknown_method_are_clear_errors():
    x = blobs(n_per=3, centres=2)
    with pytest.raises(RetrError, match="k=7"):
        C.cluster_vectors(x, [7])
    with pytest.raises(RetrError, match="known: alternate, fasterpam, pam"):
        C.cluster_vectors(x, [2], method="kmeans")
    with pytest.raises(ValueError, match="already registered"):
        C.ENGINES.register("fasterpam", C.ENGINES.get("fasterpam"))


def test_missing_sklearn_extra_says_how_to_install(monkeypatch):
    fail_imports(monkeypatch, "sklearn_extra", ValueError("numpy.dtype size changed, may indicate binary incompatibility"))
    with pytest.raises(RetrError) as err:
        C.cluster_vectors(blobs(n_per=3, centres=2), [2], method="pam")
    message = str(err.value)
    assert "\n" not in message
    assert "binary incompatibility" in message and SKLEARN_EXTRA_HINT in message


@pytest.mark.parametrize("method", ["pam", "alternate"])
def test_sklearn_extra_engines_keep_the_invariants(method, sklearn_extra):
    x = blobs(n_per=10)
    (result,) = C.cluster_vectors(x, [4], method=method)
    check_invariants(x, result)
    assert result.method == method


@pytest.mark.parametrize("k,spread,dim", [(3, 0.2, 8), (12, 0.35, 16), (30, 0.3, 32), (40, 0.6, 64)])
def test_auto_k_lands_within_ten_percent_of_the_true_k(k, spread, dim):
    from retrieval.clustering.kmedoids import edge_warning
    x = blobs(n_per=8, centres=k, dim=dim, spread=spread, seed=3)
    results = C.cluster_vectors(x, range(2, 2 * k + 3))
    best = C.best_by_silhouette(results)
    assert abs(best.k - k) <= max(0.1 * k, 0), (best.k, k)
    assert best.full_silhouette is not None and best.full_silhouette > 0.2
    assert edge_warning(results, best) is None


def test_silhouette_matches_a_naive_loop():
    from retrieval.clustering.kmedoids import cosine_distances, silhouette
    x = blobs(n_per=5, centres=3, dim=4, spread=0.4, seed=2)
    labels = np.array([0] * 5 + [1] * 5 + [2] * 4 + [0])  # one point in the wrong cluster
    d = cosine_distances(x).astype(np.float64)
    scores = []
    for i in range(len(x)):
        own = [j for j in range(len(x)) if labels[j] == labels[i] and j != i]
        a = d[i, own].mean()
        b = min(d[i, labels == c].mean() for c in set(labels.tolist()) if c != labels[i])
        scores.append((b - a) / max(a, b))
    assert silhouette(cosine_distances(x), labels) == pytest.approx(np.mean(scores), abs=1e-5)


def test_a_best_k_at_the_edge_of_the_range_is_warned_about():
    from retrieval.clustering.kmedoids import edge_warning
    x = blobs(n_per=8, centres=12, dim=16, spread=0.2, seed=0)
    results = C.cluster_vectors(x, range(3, 7))
    best = C.best_by_silhouette(results)
    assert best.k == 6 and "largest tried" in edge_warning(results, best)
