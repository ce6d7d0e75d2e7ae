"""The `auto` index on a large collection: recall@10 against exact search (goal >= 0.95) and its
queries/s as a multiple of flat, measured side by side on the same vectors and queries.

    .venv/bin/python benchmarks/auto_index.py [--n 1000000] [--dim 128] [--queries 1000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402

from _common import clustered_unit_vectors  # noqa: E402
from index.ann.factory import build, build_tuned, choose_factory  # noqa: E402
from index.ann.searcher import Searcher  # noqa: E402
from index.ann.tune import recall_against  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.8,
                    help="spread of each cluster (0.35 is easy for IVF; 0.8 puts true neighbours across clusters)")
    args = ap.parse_args()

    t = time.perf_counter()
    vecs = clustered_unit_vectors(args.n + args.queries, args.dim, centres=max(100, args.n // 100), noise=args.noise)
    db, queries = vecs[:args.n], vecs[args.n:]
    ids = np.arange(args.n, dtype=np.int64) + 1
    print(f"{args.n} x {args.dim} clustered unit vectors (noise {args.noise}), {args.queries} held-out queries "
          f"[{time.perf_counter() - t:.0f}s to make]")

    t = time.perf_counter()
    auto, factory, params = build_tuned(db, ids, "auto")
    built = time.perf_counter() - t
    candidate = choose_factory(args.n, args.dim, "auto")
    if factory != candidate:
        print(f"auto: {candidate} did not reach recall 0.96 at 2x the speed of exact search on the tuning sample; "
              f"served as {factory}")
    print(f"auto -> {factory}: built and tuned {params} in {built:.0f}s")
    flat = build(db, ids, "Flat")

    best = {}
    for name, index, kw in (("flat", flat, {}), ("auto", auto, params), ("flat", flat, {}), ("auto", auto, params)):
        t = time.perf_counter()
        _, found = Searcher(index).search(queries, args.k, **kw)
        best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
        if name == "flat":
            truth = found
        else:
            got = found
    recall = recall_against(got, truth)
    print(f"flat: {args.queries / best['flat']:9.0f} queries/s")
    print(f"auto: {args.queries / best['auto']:9.0f} queries/s")
    print(f"auto recall@{args.k} vs exact: {recall:.4f}  (goal >= 0.95)")
    print(f"auto speed-up over flat: {best['flat'] / best['auto']:.1f}x")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
