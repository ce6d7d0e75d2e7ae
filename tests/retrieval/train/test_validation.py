import numpy as np
import pytest

from retrieval.train.offline_mining import hard_negatives
from retrieval.evaluation.metrics import recall_at_k
from retrieval.train.validation import knn_recall


def test_recall_at_k_by_hand():
    nbr = np.array([[1, 0, 0], [0, 0, 1], [2, 2, 2]])
    q = np.array([0, 1, 1])
    assert recall_at_k(nbr, q, 1) == pytest.approx(0.0)
    assert recall_at_k(nbr, q, 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="4 neighbours needed but only 3 given"):
        recall_at_k(nbr, q, 4)


def test_knn_recall_excludes_the_query_itself():
    vecs = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.141, 0.99]], np.float32)
    assert knn_recall(vecs, np.array([0, 0, 1, 1]), (1,)) == {"recall@1": 1.0}
    assert knn_recall(vecs, np.array([0, 1, 0, 1]), (1,)) == {"recall@1": 0.0}
    # K beyond the n - 1 others is capped: recall@9 of four vectors is recall@3
    assert knn_recall(vecs, np.array([0, 1, 0, 1]), (9,)) == {"recall@9": 1.0}
    with pytest.raises(ValueError, match="at least 2 vectors"):
        knn_recall(vecs[:1], np.array([0]))


def test_hard_negatives_are_the_nearest_other_class_images():
    vecs = np.array([[1, 0], [0.9, 0.44], [0.8, 0.6], [0, 1]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    hn = hard_negatives(vecs, np.array([0, 0, 1, 1]), m=2)
    assert hn[0].tolist() == [2, 3] and hn[1].tolist() == [2, 3]
    assert hn[2].tolist() == [1, 0] and hn[3].tolist() == [1, 0]
    hn = hard_negatives(vecs, np.array([0, 0, 1, 1]), m=2, search_k=2)
    assert hn[0].tolist() == [-1, -1]  # its 2 nearest (itself and 1) share its class
