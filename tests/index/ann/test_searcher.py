import numpy as np
import pytest

from index.ann.factory import build
from index.ann.searcher import GPU_MAX_K, Searcher, gpu_can_serve, ids_of, load, save
from index.errors import RetrError
from tests.index.ann.vectors import clustered, unit


def brute(db, ids, q, k):
    s = q @ db.T
    order = np.argsort(-s, axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), ids[order]


def test_flat_equals_numpy_brute_force_and_returns_catalog_ids():
    rng = np.random.default_rng(1)
    db, q = unit(rng, 2000, 32), unit(rng, 50, 32)
    ids = rng.permutation(10_000)[:2000].astype(np.int64) + 1
    index = build(db, ids, "Flat")
    scores, got = Searcher(index).search(q, 10)
    want_s, want_i = brute(db, ids, q, 10)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-5)
    # ties tolerated: a differing id must have the same score as the one it replaces
    for row in range(len(q)):
        for col in np.nonzero(got[row] != want_i[row])[0]:
            assert abs(scores[row, col] - want_s[row, col]) < 1e-5
    assert set(ids_of(index)) == set(ids)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    db = unit(rng, 300, 16)
    index = build(db, np.arange(300) + 5, "HNSW32")
    save(index, tmp_path / "v.faiss")
    again = load(tmp_path / "v.faiss")
    np.testing.assert_array_equal(Searcher(index).search(db[:5], 3)[1], Searcher(again).search(db[:5], 3)[1])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_fewer_vectors_than_k_pads_with_minus_one_and_wrong_dim_is_refused():
    db = unit(np.random.default_rng(5), 3, 8)
    scores, ids = Searcher(build(db, np.array([7, 8, 9]), "Flat")).search(db[:1], 5)
    assert list(ids[0][:3]) == [7, 8, 9] or set(ids[0][:3]) == {7, 8, 9}
    assert list(ids[0][3:]) == [-1, -1]
    with pytest.raises(RetrError, match="dimension 8"):
        Searcher(build(db, np.arange(3), "Flat")).search(np.zeros((1, 4), np.float32), 1)


def test_gpu_serving_rules():
    db = unit(np.random.default_rng(6), 100, 8)
    flat = build(db, np.arange(100), "Flat")
    hnsw = build(db, np.arange(100), "HNSW32")
    assert gpu_can_serve(flat, 10)
    assert not gpu_can_serve(flat, GPU_MAX_K + 1)  # GPU faiss caps k: CPU serves
    assert not gpu_can_serve(hnsw, 10)  # no GPU HNSW: CPU serves
    assert Searcher(flat, use_gpu=False).gpu is None


def test_small_batches_on_flat_use_blas_and_leave_faiss_settings_as_found():
    import faiss
    rng = np.random.default_rng(8)
    db = clustered(rng, 3000, 32)
    ids = np.arange(len(db), dtype=np.int64) + 7
    index = build(db, ids, "Flat")
    before = faiss.cvar.distance_compute_blas_threshold
    for nq in (1, 5, 16, 64):
        q = db[rng.choice(len(db), nq, replace=False)]
        scores, got = Searcher(index).search(q, 5)
        want = np.argsort(-(q @ db.T), axis=1, kind="stable")[:, :5]
        np.testing.assert_allclose(scores, np.take_along_axis(q @ db.T, want, 1), rtol=1e-5, atol=1e-5)
        assert (got[:, 0] == ids[want[:, 0]]).all()
    assert faiss.cvar.distance_compute_blas_threshold == before
