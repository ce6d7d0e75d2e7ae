import numpy as np
import pytest

from index.errors import RetrError
from retrieval.evaluation.metrics import (clustering_agreement, evaluate_embeddings, map_at_r,
                                          nearest_others, precision_at_1, r_precision, recall_at_k)

# three queries, their labels and the labels of their four nearest neighbours (nearest first);
# R = gallery images sharing the query's label
QUERY_LABELS = np.array([0, 0, 1])
NEIGHBOURS = np.array([[1, 0, 0, 1],
                       [0, 1, 1, 0],
                       [0, 0, 1, 1]])
RELEVANT = np.array([2, 2, 3])


def test_metrics_match_hand_computed_values():
    assert recall_at_k(NEIGHBOURS, QUERY_LABELS, 1) == pytest.approx(1 / 3)
    assert recall_at_k(NEIGHBOURS, QUERY_LABELS, 2) == pytest.approx(2 / 3)
    assert recall_at_k(NEIGHBOURS, QUERY_LABELS, 4) == pytest.approx(1.0)
    assert precision_at_1(NEIGHBOURS, QUERY_LABELS) == pytest.approx(1 / 3)
    # R-precision: 1/2, 1/2, 1/3
    assert r_precision(NEIGHBOURS, QUERY_LABELS, RELEVANT) == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    # MAP@R: (P(2)=1/2)/2, (P(1)=1)/2, (P(3)=1/3)/3
    assert map_at_r(NEIGHBOURS, QUERY_LABELS, RELEVANT) == pytest.approx((0.25 + 0.5 + 1 / 9) / 3)


def test_map_at_r_rewards_order_within_r():
    labels = np.array([7, 7])
    early = np.array([[7, 7, 3, 3], [7, 7, 3, 3]])
    late = np.array([[3, 7, 7, 3], [3, 7, 7, 3]])
    assert map_at_r(early, labels, [2, 2]) == pytest.approx(1.0)
    assert r_precision(late, labels, [2, 2]) == pytest.approx(0.5)
    assert map_at_r(late, labels, [2, 2]) == pytest.approx(0.25)  # P(2)=1/2 over R=2


def test_metric_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="5 neighbours"):
        recall_at_k(NEIGHBOURS, QUERY_LABELS, 5)
    with pytest.raises(ValueError, match="R=0"):
        map_at_r(NEIGHBOURS, QUERY_LABELS, [2, 0, 1])
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(NEIGHBOURS, QUERY_LABELS, 0)


def test_nearest_others_never_returns_the_query_and_uses_the_knn_passed_in():
    gallery = np.array([[1, 0], [0.9, 0.44], [0, 1], [0.44, 0.9]], np.float32)
    calls = []

    def knn(database, queries, k):
        calls.append(k)
        order = np.argsort(-(queries @ database.T), axis=1, kind="stable")[:, :k]
        return np.take_along_axis(queries @ database.T, order, axis=1), order

    np.testing.assert_array_equal(nearest_others(gallery, gallery, 2, np.arange(4), knn=knn),
                                  [[1, 3], [0, 3], [3, 1], [2, 1]])
    # a query that is not in the gallery keeps its nearest, itself included when equal
    np.testing.assert_array_equal(nearest_others(gallery, gallery[:1], 2, knn=knn), [[0, 1]])
    assert calls == [3, 2]  # one extra neighbour only when a query may find itself


def _brute_force(queries, q_labels, gallery, g_labels, own, ks):
    """Naive per-query loops over a full numpy similarity ranking."""
    sims = queries @ gallery.T
    recalls = {k: [] for k in ks}
    rps, maps = [], []
    for i in range(len(queries)):
        order = [j for j in np.argsort(-sims[i], kind="stable") if j != own[i]]
        ranked = [g_labels[j] for j in order]
        r = sum(1 for j, lab in enumerate(g_labels) if lab == q_labels[i] and j != own[i])
        if r == 0:
            continue
        for k in ks:
            recalls[k].append(float(q_labels[i] in ranked[:k]))
        rps.append(sum(lab == q_labels[i] for lab in ranked[:r]) / r)
        hits, total = 0, 0.0
        for pos, lab in enumerate(ranked[:r], start=1):
            if lab == q_labels[i]:
                hits += 1
                total += hits / pos
        maps.append(total / r)
    return {k: np.mean(v) for k, v in recalls.items()}, np.mean(rps), np.mean(maps), len(rps)


def _random_set(n, dim, classes, seed):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = [f"c{c}" for c in rng.integers(0, classes, n)]
    return vecs, labels


def test_all_against_all_matches_numpy_brute_force():
    vecs, labels = _random_set(80, 8, 5, seed=1)
    ks = (1, 2, 4, 8)
    report = evaluate_embeddings(vecs, labels, ks=ks)
    recalls, rp, mp, n = _brute_force(vecs, labels, vecs, labels, np.arange(len(vecs)), ks)
    assert report.n == n == 80
    for k in ks:
        assert report.recall[k] == pytest.approx(recalls[k])
    assert report.precision_at_1 == pytest.approx(recalls[1])
    assert report.r_precision == pytest.approx(rp)
    assert report.map_at_r == pytest.approx(mp)
    # per class: the mean over that class's queries
    sel = [i for i, lab in enumerate(labels) if lab == "c0"]
    r_c0, rp_c0, mp_c0, n_c0 = _brute_force(vecs[sel], [labels[i] for i in sel], vecs, labels, np.array(sel), ks)
    row = report.per_class["c0"]
    assert row["n"] == n_c0
    assert row["recall@4"] == pytest.approx(r_c0[4])
    assert row["map@r"] == pytest.approx(mp_c0)


def test_query_gallery_split_never_counts_the_query_itself():
    vecs, labels = _random_set(60, 6, 3, seed=2)
    gallery, g_labels = vecs[10:], labels[10:]
    queries, q_labels = vecs[:20], labels[:20]  # queries 10..19 are also in the gallery
    own = np.array([-1] * 10 + list(range(10)))
    report = evaluate_embeddings(queries, q_labels, gallery, g_labels, ks=(1, 3), query_in_gallery=own)
    recalls, rp, mp, n = _brute_force(queries, q_labels, gallery, g_labels, own, (1, 3))
    assert report.n == n
    assert report.recall[1] == pytest.approx(recalls[1])
    assert report.recall[3] == pytest.approx(recalls[3])
    assert report.map_at_r == pytest.approx(mp)


def test_the_knn_function_is_the_one_passed_in():
    vecs, labels = _random_set(40, 4, 3, seed=3)
    calls = []

    def numpy_knn(database, queries, k):
        calls.append(k)
        sims = queries @ database.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, axis=1), order

    mine = evaluate_embeddings(vecs, labels, ks=(1, 2), knn=numpy_knn)
    default = evaluate_embeddings(vecs, labels, ks=(1, 2))
    assert calls, "the k-NN function passed in was not used"
    assert mine.recall == pytest.approx(default.recall)
    assert mine.map_at_r == pytest.approx(default.map_at_r)


def test_singleton_classes_are_left_out_and_counted():
    vecs, _ = _random_set(7, 4, 1, seed=4)
    labels = ["a", "a", "a", "b", "b", "b", "lonely"]
    report = evaluate_embeddings(vecs, labels, ks=(1,))
    assert report.n == 6 and report.excluded == 1
    assert "lonely" not in report.per_class


def test_k_beyond_the_gallery_is_a_clear_error():
    vecs, labels = _random_set(5, 4, 2, seed=5)
    with pytest.raises(RetrError, match="k=8"):
        evaluate_embeddings(vecs, ["a", "a", "b", "b", "b"], ks=(1, 8))


def test_json_keys_are_the_documented_ones():
    vecs, labels = _random_set(30, 4, 3, seed=6)
    out = evaluate_embeddings(vecs, labels, ks=(1, 2, 4)).to_json()
    assert list(out) == ["n", "recall@1", "recall@2", "recall@4", "precision@1", "r_precision", "map@r",
                         "per_class"]


def test_clustering_agreement():
    labels = ["a", "a", "b", "b", "c", "c"]
    nmi, ami = clustering_agreement(labels, [5, 5, 1, 1, 2, 2])  # a relabelled perfect clustering
    assert nmi == pytest.approx(1.0) and ami == pytest.approx(1.0)
    nmi, ami = clustering_agreement(labels, [0, 1, 0, 1, 0, 1])  # independent of the labels
    assert nmi == pytest.approx(0.0, abs=1e-9) and ami <= 0.0
