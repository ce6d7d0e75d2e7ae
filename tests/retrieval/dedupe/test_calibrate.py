import numpy as np
import pytest

from index.errors import RetrError
from retrieval.dedupe.calibrate import best_threshold, calibrate, pr_curve
from tests.retrieval.dedupe.photos import make_library


def test_pr_curve_by_hand():
    curve = pr_curve(np.array([0, 2, 5, 9]), np.array([True, True, False, True]), 9)
    assert curve[0]["precision"] == 1.0 and curve[0]["recall"] == pytest.approx(1 / 3)
    assert curve[5]["precision"] == pytest.approx(2 / 3) and curve[5]["recall"] == pytest.approx(2 / 3)
    assert curve[9]["recall"] == 1.0
    assert best_threshold(curve, 0.99)["threshold"] == 4  # most recall while precision stays 1
    assert best_threshold(pr_curve(np.array([3]), np.array([False]), 4), 0.5) is None


def test_calibrate_on_pairs_csv(tmp_path):
    f = make_library(tmp_path)
    rel = lambda k: f[k].relative_to(tmp_path)  # noqa: E731
    csv = tmp_path / "pairs.csv"
    csv.write_text("path_a,path_b,is_duplicate\n" + "\n".join(
        f"{rel(a)},{rel(b)},{d}" for a, b, d in [("astro", "astro_small", 1), ("astro", "astro_q40", 1),
                                                  ("astro", "coffee", 0), ("coffee", "chelsea", 0),
                                                  ("coffee", "coffee_copy", 1)]))
    out = calibrate(csv, hashes=["phash", "dhash"], workers=1)
    assert out["pairs"] == 5 and out["duplicates"] == 3
    ph = out["hashes"]["phash"]
    assert ph["precision"] == 1.0 and ph["recall"] == 1.0 and ph["threshold"] >= 1
    assert len(ph["curve"]) == 65


def test_calibrate_rejects_bad_csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("a,b\nx,y\n")
    with pytest.raises(RetrError, match="path_a,path_b,is_duplicate"):
        calibrate(csv)
