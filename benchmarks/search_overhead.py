"""Search overhead: retr's query path (IndexStore.search: faiss + catalog ids -> paths -> results)
against raw faiss on the same index and queries. Goal: >= 0.95 of raw faiss throughput.

    .venv/bin/python benchmarks/search_overhead.py [--n 100000] [--dim 128] [--queries 2000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402

from _common import clustered_unit_vectors  # noqa: E402
from index.catalog.database import Catalog  # noqa: E402
from index.catalog.schema import STATUS_OK  # noqa: E402
from index.directory import IndexStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--index-type", default="auto")
    args = ap.parse_args()

    vecs = clustered_unit_vectors(args.n + args.queries, args.dim)
    db, queries = vecs[:args.n], vecs[args.n:]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.for_index(tmp)
        for start in range(0, args.n, 20_000):
            catalog.write_images([{"path": f"/photos/{i:07}.jpg", "status": STATUS_OK, "vector": db[i]}
                                  for i in range(start, min(args.n, start + 20_000))])
        catalog.close()
        store = IndexStore.open(tmp, create=True)
        t = time.perf_counter()
        manifest = store.rebuild(index_type=args.index_type,
                                 model={"spec": "synthetic", "weights": "none", "dim": args.dim})
        print(f"index: {manifest.factory} over {args.n} x {args.dim}, tuned {manifest.search}, "
              f"built in {time.perf_counter() - t:.1f}s")
        searcher = store.searcher()
        raw = searcher.cpu  # the very same faiss index object retr serves from
        store.search(queries[:10], args.k)  # warm: loads the id -> path table once per store
        raw_t, retr_t = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            t = time.perf_counter()
            raw.search(queries, args.k)
            raw_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            results = store.search(queries, args.k)
            retr_t.append(time.perf_counter() - t)
        assert len(results) == args.queries and results[0][0].path.startswith("/photos/")
        raw_q, retr_q = args.queries / min(raw_t), args.queries / min(retr_t)
        print(f"raw faiss : {raw_q:10.0f} queries/s  (best of {args.rounds}, batch {args.queries}, k={args.k})")
        print(f"retr query: {retr_q:10.0f} queries/s")
        print(f"ratio retr/raw: {retr_q / raw_q:.3f}  (goal >= 0.95)")
        store.close()


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
