import numpy as np
import pytest

from index.errors import RetrError
from retrieval.dedupe.calibrate import best_threshold, calibrate, inlier_curve, pr_curve
from tests.retrieval.dedupe.photos import make_library


def test_pr_curve_by_hand():
    curve = pr_curve(np.array([0, 2, 5, 9]), np.array([True, True, False, True]), 9)
    assert curve[0]["precision"] == 1.0 and curve[0]["recall"] == pytest.approx(1 / 3)
    assert curve[5]["precision"] == pytest.approx(2 / 3) and curve[5]["recall"] == pytest.approx(2 / 3)
    assert curve[9]["recall"] == 1.0
    assert best_threshold(curve, 0.99)["threshold"] == 4  # most recall while precision stays 1
    assert best_threshold(pr_curve(np.array([3]), np.array([False]), 4), 0.5) is None


def test_inlier_curve_counts_aligned_pairs_as_predicted_at_every_threshold():
    inliers = np.array([50, 12, 0, 0, 30])
    labels = np.array([True, True, True, False, False])
    aligned = np.array([False, False, True, False, False])
    plain = {p["min_inliers"]: p for p in inlier_curve(inliers, labels)}
    with_aligned = {p["min_inliers"]: p for p in inlier_curve(inliers, labels, aligned)}
    assert plain[40]["tp"] == 1 and with_aligned[40]["tp"] == 2 and with_aligned[40]["fp"] == 0
    assert with_aligned[20]["precision"] == pytest.approx(2 / 3) and with_aligned[10]["recall"] == 1.0


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
    assert out["verification"]["aligned"] == {"pairs": 0, "duplicates": 0}  # photos verify by keypoints


def test_calibrate_rejects_bad_csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("a,b\nx,y\n")
    with pytest.raises(RetrError, match="path_a,path_b,is_duplicate"):
        calibrate(csv)
