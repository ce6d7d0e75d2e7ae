import numpy as np

from index.ann.neighbours import drop_self


def test_drop_self_removes_the_query_or_the_last_column():
    positions = np.array([[0, 5, 6], [5, 1, 7], [8, 9, 4], [3, 2, 1]])
    out = drop_self(positions, np.array([0, 1, 2, -1]))
    np.testing.assert_array_equal(out, [[5, 6], [5, 7], [8, 9], [3, 2]])


def test_drop_self_works_on_ids_as_tuning_uses_it():
    found = np.array([[10, 11, 12], [11, 10, -1]])  # the second row found fewer than k + 1
    np.testing.assert_array_equal(drop_self(found, np.array([10, 11]))[:, :2], [[11, 12], [10, -1]])
