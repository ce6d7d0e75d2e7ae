import numpy as np
import pytest

from index import vectors as V
from index.errors import RetrError


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, d, centres=50):
    c = unit(rng, centres, d)
    x = c[rng.integers(0, centres, n)] + 0.15 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(db, ids, q, k):
    s = q @ db.T
    order = np.argsort(-s, axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), ids[order]


def test_flat_equals_numpy_brute_force_and_returns_catalog_ids():
    rng = np.random.default_rng(1)
    db, q = unit(rng, 2000, 32), unit(rng, 50, 32)
    ids = rng.permutation(10_000)[:2000].astype(np.int64) + 1
    index = V.build(db, ids, "Flat")
    scores, got = V.search(index, q, 10)
    want_s, want_i = brute(db, ids, q, 10)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-5)
    # ties tolerated: a differing id must have the same score as the one it replaces
    for row in range(len(q)):
        for col in np.nonzero(got[row] != want_i[row])[0]:
            assert abs(scores[row, col] - want_s[row, col]) < 1e-5
    assert set(V.ids_of(index)) == set(ids)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_are_tuned_to_target_recall(kind):
    rng = np.random.default_rng(2)
    db = clustered(rng, 6000, 32)
    ids = np.arange(6000, dtype=np.int64) * 2
    index = V.build(db, ids, V.choose_factory(len(db), 32, kind))
    params = V.tune(index, db, ids)
    assert params  # nprobe or ef chosen
    q = db[rng.choice(len(db), 200, replace=False)]
    _, truth = V.exact_search(db, q, 10)
    _, got = V.search(index, q, 10, **params)
    assert V.recall_against(got, truth, ids) >= 0.93
    assert set(V.ids_of(index)) == set(ids)


def test_choose_factory_by_size_and_memory():
    assert V.choose_factory(1000, 64) == "Flat"
    assert V.choose_factory(100_000, 64) == "HNSW32"
    assert V.choose_factory(1_000_000, 64).startswith("IVF")
    assert ",PQ" in V.choose_factory(1_000_000, 128, memory=100 << 20)
    assert V.choose_factory(10, 8, "IVF4,SQ8") == "IVF4,SQ8"


def test_bad_factory_and_too_few_training_vectors_are_clear_errors():
    rng = np.random.default_rng(3)
    db = unit(rng, 10, 8)
    with pytest.raises(RetrError, match="invalid faiss index type"):
        V.build(db, np.arange(10), "NotAnIndex")
    with pytest.raises(RetrError, match="at least 64 vectors"):
        V.build(db, np.arange(10), "IVF64,Flat")


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    db = unit(rng, 300, 16)
    index = V.build(db, np.arange(300) + 5, "HNSW32")
    V.save(index, tmp_path / "v.faiss")
    again = V.load(tmp_path / "v.faiss")
    np.testing.assert_array_equal(V.search(index, db[:5], 3)[1], V.search(again, db[:5], 3)[1])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_fewer_vectors_than_k_pads_with_minus_one_and_wrong_dim_is_refused():
    db = unit(np.random.default_rng(5), 3, 8)
    scores, ids = V.search(V.build(db, np.array([7, 8, 9]), "Flat"), db[:1], 5)
    assert list(ids[0][:3]) == [7, 8, 9] or set(ids[0][:3]) == {7, 8, 9}
    assert list(ids[0][3:]) == [-1, -1]
    with pytest.raises(RetrError, match="dimension 8"):
        V.search(V.build(db, np.arange(3), "Flat"), np.zeros((1, 4), np.float32), 1)


def test_gpu_serving_rules():
    db = unit(np.random.default_rng(6), 100, 8)
    flat = V.build(db, np.arange(100), "Flat")
    hnsw = V.build(db, np.arange(100), "HNSW32")
    assert V.gpu_can_serve(flat, 10)
    assert not V.gpu_can_serve(flat, V.GPU_MAX_K + 1)  # GPU faiss caps k: CPU serves
    assert not V.gpu_can_serve(hnsw, 10)  # no GPU HNSW: CPU serves
    assert V.Searcher(flat, use_gpu=False).gpu is None


@pytest.mark.parametrize("met, seconds, expect", [(True, 0.05, "HNSW32"), (False, 0.05, "Flat"), (True, 0.15, "Flat")])
def test_auto_falls_back_to_flat_when_no_approximate_setting_pays(monkeypatch, met, seconds, expect):
    monkeypatch.setattr(V, "FLAT_MAX", 1000)  # HNSW from 1,000 vectors, to keep the test small
    rng = np.random.default_rng(5)
    db = clustered(rng, 3000, 16)
    ids = np.arange(len(db), dtype=np.int64) + 1
    assert V.choose_factory(len(db), 16) == "HNSW32"
    report = V.TuneReport({"ef": 64}, 0.97 if met else 0.8, met, seconds, 0.2)
    monkeypatch.setattr(V, "tune_report", lambda *a, **kw: report)
    index, factory, params = V.build_tuned(db, ids, "auto")
    assert factory == expect
    assert params == ({"ef": 64} if expect == "HNSW32" else {})
    q = db[:50]
    _, truth = V.exact_search(db, q, 10)
    if expect == "Flat":
        assert V.recall_against(V.search(index, q, 10)[1], truth, ids) == 1.0
    # An explicit type is served as asked, whatever the tuning found.
    _, factory, params = V.build_tuned(db, ids, "hnsw")
    assert factory == "HNSW32" and params == {"ef": 64}


def test_tune_report_on_unstructured_vectors():
    # Uniform on the sphere: the hard case. The report's recall is what the chosen setting gives.
    rng = np.random.default_rng(5)
    db = rng.standard_normal((20_000, 64)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    ids = np.arange(len(db), dtype=np.int64) + 1
    index = V.build(db, ids, "IVF64,Flat")
    report = V.tune_report(index, db, ids, sample=200)
    assert report.met == (report.recall >= V.TARGET_RECALL)
    assert report.params["nprobe"] > 1 and report.seconds > 0 and report.exact_seconds > 0
    q = db[rng.choice(len(db), 200, replace=False)]
    _, truth = V.exact_search(db, q, 11)
    _, got = V.search(index, q, 11, **report.params)
    assert abs(V.recall_against(got[:, 1:], truth[:, 1:], ids) - report.recall) < 0.05


def test_small_batches_on_flat_use_blas_and_leave_faiss_settings_as_found():
    import faiss
    rng = np.random.default_rng(8)
    db = clustered(rng, 3000, 32)
    ids = np.arange(len(db), dtype=np.int64) + 7
    index = V.build(db, ids, "Flat")
    before = faiss.cvar.distance_compute_blas_threshold
    for nq in (1, 5, 16, 64):
        q = db[rng.choice(len(db), nq, replace=False)]
        scores, got = V.search(index, q, 5)
        want = np.argsort(-(q @ db.T), axis=1, kind="stable")[:, :5]
        np.testing.assert_allclose(scores, np.take_along_axis(q @ db.T, want, 1), rtol=1e-5, atol=1e-5)
        assert (got[:, 0] == ids[want[:, 0]]).all()
    assert faiss.cvar.distance_compute_blas_threshold == before
