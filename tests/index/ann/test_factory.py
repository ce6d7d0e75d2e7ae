import numpy as np
import pytest

from index.ann import factory as ann_factory
from index.ann.factory import build, build_tuned, check_index_type, choose_factory
from index.ann.searcher import Searcher, exact_search
from index.ann.tune import TuneReport, recall_against
from index.errors import RetrError
from tests.index.ann.vectors import clustered, unit


def test_choose_factory_by_size_and_memory():
    assert choose_factory(1000, 64) == "Flat"
    assert choose_factory(100_000, 64) == "HNSW32"
    assert choose_factory(1_000_000, 64).startswith("IVF")
    assert ",PQ" in choose_factory(1_000_000, 128, memory=100 << 20)
    assert choose_factory(10, 8, "IVF4,SQ8") == "IVF4,SQ8"


def test_check_index_type_names_the_bad_type_before_any_work():
    check_index_type("hnsw", 8)  # a known name is not tried
    check_index_type("IVF4,SQ8", 8)
    with pytest.raises(RetrError, match=r"invalid --index-type 'IVF4,Bogus' for 8-d vectors: .*use auto, flat"):
        check_index_type("IVF4,Bogus", 8)


def test_bad_factory_and_too_few_training_vectors_are_clear_errors():
    rng = np.random.default_rng(3)
    db = unit(rng, 10, 8)
    with pytest.raises(RetrError, match="invalid faiss index type"):
        build(db, np.arange(10), "NotAnIndex")
    with pytest.raises(RetrError, match="at least 64 vectors"):
        build(db, np.arange(10), "IVF64,Flat")


@pytest.mark.parametrize("met, seconds, expect", [(True, 0.05, "HNSW32"), (False, 0.05, "Flat"), (True, 0.15, "Flat")])
def test_auto_falls_back_to_flat_when_no_approximate_setting_pays(monkeypatch, met, seconds, expect):
    monkeypatch.setattr(ann_factory, "FLAT_MAX", 1000)  # HNSW from 1,000 vectors, to keep the test small
    rng = np.random.default_rng(5)
    db = clustered(rng, 3000, 16)
    ids = np.arange(len(db), dtype=np.int64) + 1
    assert choose_factory(len(db), 16) == "HNSW32"
    report = TuneReport({"ef": 64}, 0.97 if met else 0.8, met, seconds, 0.2)
    monkeypatch.setattr(ann_factory, "tune_report", lambda *a, **kw: report)
    index, factory, params = build_tuned(db, ids, "auto")
    assert factory == expect
    assert params == ({"ef": 64} if expect == "HNSW32" else {})
    q = db[:50]
    _, truth = exact_search(db, q, 10)
    if expect == "Flat":
        assert recall_against(Searcher(index).search(q, 10)[1], truth, ids) == 1.0
    # An explicit type is served as asked, whatever the tuning found.
    _, factory, params = build_tuned(db, ids, "hnsw")
    assert factory == "HNSW32" and params == {"ef": 64}
