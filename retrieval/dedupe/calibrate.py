"""Calibrating on labelled pairs (CSV ``path_a,path_b,is_duplicate``): the Hamming radius of each hash,
and the verification threshold (inliers of one transform) that reaches a target precision."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.hamming import hamming
from index.errors import RetrError
from retrieval.dedupe.hashers import HASHERS, get_hasher
from retrieval.dedupe.parallel_hashing import HashJob, hash_files

TRUE = {"1", "true", "yes", "y", "t", "dup", "duplicate"}
FALSE = {"0", "false", "no", "n", "f", "", "distinct"}


@dataclasses.dataclass(frozen=True)
class Pairs:
    a: list[str]
    b: list[str]
    labels: np.ndarray  # bool


def read_pairs(path: str | Path) -> Pairs:
    """Read labelled pairs; relative paths are taken relative to the CSV's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RetrError(f"cannot read {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    need = {"path_a", "path_b", "is_duplicate"}
    if not reader.fieldnames or not need <= {f.strip() for f in reader.fieldnames}:
        raise RetrError(f"{path} needs the columns path_a,path_b,is_duplicate (has {reader.fieldnames})")
    a, b, labels = [], [], []
    for n, row in enumerate(reader, 2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        flag = row["is_duplicate"].lower()
        if flag not in TRUE | FALSE:
            raise RetrError(f"{path} line {n}: is_duplicate must be 1/0 or true/false, got {row['is_duplicate']!r}")
        a.append(str((path.parent / row["path_a"]).resolve()))
        b.append(str((path.parent / row["path_b"]).resolve()))
        labels.append(flag in TRUE)
    if not labels:
        raise RetrError(f"{path} holds no pairs")
    return Pairs(a, b, np.asarray(labels, dtype=bool))


def pr_curve(distances: np.ndarray, labels: np.ndarray, max_threshold: int) -> list[dict[str, Any]]:
    """Precision and recall of "duplicate when distance <= t" for t = 0..max_threshold (precision None
    when nothing is predicted)."""
    distances, labels = np.asarray(distances), np.asarray(labels, dtype=bool)
    positives = int(labels.sum())
    out = []
    for t in range(max_threshold + 1):
        predicted = distances <= t
        tp = int((predicted & labels).sum())
        npred = int(predicted.sum())
        out.append({"threshold": t, "precision": tp / npred if npred else None,
                    "recall": tp / positives if positives else None, "tp": tp, "fp": npred - tp,
                    "fn": positives - tp})
    return out


def best_threshold(curve: Sequence[dict[str, Any]], target_precision: float) -> dict[str, Any] | None:
    """The largest threshold (most recall) whose precision reaches the target, or None."""
    ok = [p for p in curve if p["precision"] is not None and p["precision"] >= target_precision]
    return max(ok, key=lambda p: (p["recall"] or 0, p["threshold"])) if ok else None


def calibrate(pairs_csv: str | Path, *, hashes: Sequence[str] | None = None, hash_size: int | None = None,
              target_precision: float = 0.99, workers: int | None = None, progress: bool = False) -> dict[str, Any]:
    if not 0.0 < target_precision <= 1.0:
        raise RetrError(f"target precision must be in (0, 1], got {target_precision}")
    pairs = read_pairs(pairs_csv)
    names = list(hashes) if hashes else HASHERS.names()
    files = sorted(set(pairs.a) | set(pairs.b))
    out: dict[str, Any] = {"pairs": len(pairs.labels), "duplicates": int(pairs.labels.sum()),
                           "target_precision": target_precision, "hashes": {}, "errors": []}
    for name in names:
        hasher = get_hasher(name)
        size = hasher.size(hash_size)
        codes, errors = {}, []
        for res in hash_files(files, HashJob(name, size), workers=workers, progress=progress):
            if res.bits is None:
                errors.append((res.path, res.error or "cannot hash"))
            else:
                codes[res.path] = np.frombuffer(res.bits, dtype=np.uint8)
        usable = np.array([x in codes and y in codes for x, y in zip(pairs.a, pairs.b)], dtype=bool)
        if not usable.any():
            raise RetrError(f"none of the pairs in {pairs_csv} could be hashed (e.g. {errors[:1]})")
        a = np.stack([codes[x] for x, ok in zip(pairs.a, usable) if ok])
        b = np.stack([codes[y] for y, ok in zip(pairs.b, usable) if ok])
        curve = pr_curve(hamming(a, b), pairs.labels[usable], hasher.bits(size))
        best = best_threshold(curve, target_precision)
        out["hashes"][name] = {"hash_size": size, "bits": hasher.bits(size), "default_threshold": hasher.threshold(size),
                               "threshold": best["threshold"] if best else None,
                               "precision": best["precision"] if best else None,
                               "recall": best["recall"] if best else None, "curve": curve}
        if not out["errors"]:
            out["errors"] = [{"path": p, "error": e} for p, e in errors]
    out["verification"] = calibrate_verification(pairs, target_precision, workers=workers, progress=progress)
    return out


MAX_INLIERS = 60  # the inlier thresholds tried: 4..MAX_INLIERS


def verification_scores(pairs: Pairs, *, workers: int | None = None,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(inliers, aligned) per pair when only the geometric sanity checks apply, with the default inlier
    ratio: inliers 0 when rejected, low-information, untextured or unreadable; aligned True for a smooth
    pair the dense check verifies (no keypoints, so no inlier count: no inlier threshold applies to it)."""
    from retrieval.dedupe.features import compute_features
    from retrieval.dedupe.reasons import Reason
    from retrieval.dedupe.verify import DEFAULT_THRESHOLDS, verify_pairs
    files = sorted(set(pairs.a) | set(pairs.b))
    order = compute_features(files, workers=workers, progress=progress)
    feats = dict(zip(files, order))
    at = {f: k for k, f in enumerate(files)}
    loose = dataclasses.replace(DEFAULT_THRESHOLDS, min_inliers=4)
    verdicts = verify_pairs([(at[x], at[y]) for x, y in zip(pairs.a, pairs.b)], order, thresholds=loose,
                            workers=workers)
    low = {f for f in files if feats[f].low_info}
    inliers, aligned = [], []
    for v, x, y in zip(verdicts, pairs.a, pairs.b):
        ok = v.verified and x not in low and y not in low
        inliers.append(v.inliers if ok and v.reason == Reason.VERIFIED else 0)
        aligned.append(ok and v.reason == Reason.ALIGNED)
    return np.array(inliers, dtype=np.int64), np.array(aligned, dtype=bool)


def inlier_curve(inliers: np.ndarray, labels: np.ndarray, aligned: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Precision and recall of "duplicate when inliers >= t (or aligned)" for t = 4..MAX_INLIERS."""
    inliers, labels = np.asarray(inliers), np.asarray(labels, dtype=bool)
    aligned = np.zeros(len(inliers), bool) if aligned is None else np.asarray(aligned, dtype=bool)
    out = []
    for t in range(4, MAX_INLIERS + 1):
        predicted = (inliers >= t) | aligned
        tp = int((predicted & labels).sum())
        npred, pos = int(predicted.sum()), int(labels.sum())
        out.append({"min_inliers": t, "precision": tp / npred if npred else None, "recall": tp / pos if pos else None,
                    "tp": tp, "fp": npred - tp, "fn": pos - tp})
    return out


def calibrate_verification(pairs: Pairs, target_precision: float, *, workers: int | None = None,
                           progress: bool = False) -> dict[str, Any]:
    """The smallest inlier threshold (most recall) whose precision reaches the target, next to the default;
    and how many pairs the dense check for smooth pictures verified (``aligned``), and how many of those
    are duplicates."""
    from retrieval.dedupe.verify import DEFAULT_THRESHOLDS
    inliers, aligned = verification_scores(pairs, workers=workers, progress=progress)
    curve = inlier_curve(inliers, pairs.labels, aligned)
    ok = [p for p in curve if p["precision"] is not None and p["precision"] >= target_precision]
    best = max(ok, key=lambda p: (p["recall"] or 0, -p["min_inliers"])) if ok else None
    at_default = next(p for p in curve if p["min_inliers"] == DEFAULT_THRESHOLDS.min_inliers)
    return {"min_ratio": DEFAULT_THRESHOLDS.min_ratio, "default_min_inliers": DEFAULT_THRESHOLDS.min_inliers,
            "default_precision": at_default["precision"], "default_recall": at_default["recall"],
            "min_inliers": best["min_inliers"] if best else None, "precision": best["precision"] if best else None,
            "recall": best["recall"] if best else None, "curve": curve,
            "aligned": {"pairs": int(aligned.sum()), "duplicates": int((aligned & pairs.labels).sum())}}
