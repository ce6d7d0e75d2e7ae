import numpy as np
import pytest

from index.ann.factory import build, choose_factory
from index.ann.searcher import Searcher, exact_search, ids_of
from index.ann.tune import TARGET_RECALL, recall_against, tune_report
from tests.index.ann.vectors import clustered


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_are_tuned_to_target_recall(kind):
    rng = np.random.default_rng(2)
    db = clustered(rng, 6000, 32)
    ids = np.arange(6000, dtype=np.int64) * 2
    index = build(db, ids, choose_factory(len(db), 32, kind))
    params = tune_report(index, db, ids).params
    assert params  # nprobe or ef chosen
    q = db[rng.choice(len(db), 200, replace=False)]
    _, truth = exact_search(db, q, 10)
    _, got = Searcher(index).search(q, 10, **params)
    assert recall_against(got, truth, ids) >= 0.93
    assert set(ids_of(index)) == set(ids)


def test_tune_report_on_unstructured_vectors():
    # Uniform on the sphere: the hard case. The report's recall is what the chosen setting gives.
    rng = np.random.default_rng(5)
    db = rng.standard_normal((20_000, 64)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    ids = np.arange(len(db), dtype=np.int64) + 1
    index = build(db, ids, "IVF64,Flat")
    report = tune_report(index, db, ids, sample=200)
    assert report.met == (report.recall >= TARGET_RECALL)
    assert report.params["nprobe"] > 1 and report.seconds > 0 and report.exact_seconds > 0
    q = db[rng.choice(len(db), 200, replace=False)]
    _, truth = exact_search(db, q, 11)
    _, got = Searcher(index).search(q, 11, **report.params)
    assert abs(recall_against(got[:, 1:], truth[:, 1:], ids) - report.recall) < 0.05
