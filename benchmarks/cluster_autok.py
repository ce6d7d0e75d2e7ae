"""Auto-k on real photos: does `retr cluster --k-min --k-max` choose the number of photos?

Classes: photos of the dedupe benchmark's test half (benchmarks/dedupe_quality.py builds them under
bench-out/dedupe-verified/test), each with its seven edited versions (crop, rotation, resize, tone, text,
JPEG, all combined), so a class is one photo. Embedded with the default model on the CPU, then k-medoids
for every k in the range; k chosen by the full silhouette (retr's criterion), by the medoid silhouette
(a cheaper approximation) and by the elbow (the point of the loss curve farthest from the chord), with the AMI of each
clustering against the photo labels.

    nice -n 5 .venv/bin/python benchmarks/cluster_autok.py [--classes 40 --k-min 10 --k-max 100]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.clustering.kmedoids import best_by_silhouette, cluster_vectors, edge_warning  # noqa: E402
from retrieval.clustering.run import write_elbow  # noqa: E402

FOLDER = ROOT / "bench-out" / "dedupe-verified" / "test"


def elbow_k(ks, losses) -> int:
    """The k whose (normalised) loss lies farthest below the chord from the first to the last k."""
    x = (np.asarray(ks, float) - ks[0]) / max(ks[-1] - ks[0], 1)
    y = np.asarray(losses, float)
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(ks[int(np.argmax(chord - y))])


def main() -> None:
    from sklearn.metrics import adjusted_mutual_info_score as ami
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--k-min", type=int, default=10)
    ap.add_argument("--k-max", type=int, default=100)
    args = ap.parse_args()
    files = sorted(p for p in FOLDER.glob("*__*.jpg"))
    if not files:
        raise SystemExit(f"no photos under {FOLDER}: run benchmarks/dedupe_quality.py first")
    groups = sorted({p.name.split("_")[0] for p in files})[:args.classes]
    files = [p for p in files if p.name.split("_")[0] in set(groups)]
    labels = np.array([groups.index(p.name.split("_")[0]) for p in files])
    from retrieval.embed import embed_images
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.images.decode import load_image
    from retrieval.models.load import load_model
    t = time.perf_counter()
    model = load_model()
    vecs = embed_images(model, [load_image(p) for p in files], settings=InferenceSettings(device="cpu"))
    print(f"{len(files)} images of {len(groups)} photos (8 versions each), {model.info.spec} dim {model.info.dim}, "
          f"embedded in {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    results = cluster_vectors(vecs, range(args.k_min, args.k_max + 1))
    print(f"k-medoids for k = {args.k_min}..{args.k_max} in {time.perf_counter() - t:.1f}s")
    best = best_by_silhouette(results)
    by_medoid = max(results, key=lambda r: (r.silhouette, -r.k))
    knee = elbow_k([r.k for r in results], [r.loss for r in results])
    at = {r.k: r for r in results}
    print(f"{'criterion':34} {'chosen k':>8} {'AMI':>6}")
    for name, r in (("full silhouette (retr's choice)", best), ("medoid silhouette", by_medoid),
                    ("elbow (farthest from the chord)", at[knee])):
        print(f"{name:34} {r.k:>8} {ami(labels, r.labels):6.3f}")
    if len(groups) in at:
        print(f"{'the true k':34} {len(groups):>8} {ami(labels, at[len(groups)].labels):6.3f}")
    print(f"warning: {edge_warning(results, best)}")
    out = write_elbow(ROOT / "bench-out" / "cluster-autok-elbow.png", results, best.k)
    print(f"elbow plot: {out}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
