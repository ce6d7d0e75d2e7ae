"""Small query batches on a flat index: retr's Searcher (BLAS from 4 queries on) against faiss's default
kernel choice (BLAS only from queries x dim >= 128,000), same index and queries, side by side.

    .venv/bin/python benchmarks/flat_batches.py [--n 1000000] [--dim 128]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from _common import clustered_unit_vectors  # noqa: E402
from index.ann.searcher import Searcher  # noqa: E402


def best_of(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    vecs = clustered_unit_vectors(args.n + 512, args.dim, centres=max(100, args.n // 100), noise=0.8)
    db, queries = vecs[:args.n], vecs[args.n:]
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(db)
    searcher = Searcher(flat)
    print(f"flat index {args.n} x {args.dim}, k={args.k}, faiss {faiss.__version__}, "
          f"{faiss.omp_get_max_threads()} threads; queries/s, best of 3")
    print(f"{'batch':>6} {'raw faiss':>10} {'retr':>10} {'retr/raw':>9}")
    for nq in (4, 16, 64, 256, 512):
        q = queries[:nq]
        raw = best_of(lambda: flat.search(q, args.k))
        ours = best_of(lambda: searcher.search(q, args.k))
        assert np.array_equal(flat.search(q, args.k)[1], searcher.search(q, args.k)[1])
        print(f"{nq:6d} {nq / raw:10.0f} {nq / ours:10.0f} {raw / ours:8.2f}x", flush=True)


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
