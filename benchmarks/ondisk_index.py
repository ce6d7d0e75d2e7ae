"""An IVF index larger than memory, built and served on disk: build wall time, peak memory of every process
(goal: each <= 25% of the raw vectors), recall@10 at the tuned nprobe against exact search (goal >= 0.90),
and the memory (goal <= 1 GB) and query latency of a fresh process that opens the merged index.

    .venv/bin/python benchmarks/ondisk_index.py [--n 10000000] [--dim 128] [--factory IVF4096,Flat]

The vectors (clustered unit vectors, 10M x 128-d = 5.1 GB by default) are generated shard by shard into .npy
files, never all in memory, and fed to the build through ``index.ann.ondisk.NpyVectors``: the build itself is
``index.ann.ondisk.build_ondisk``, the function a rebuild of an index directory calls (training on a sample,
shards filled by worker processes, merged with faiss's merge_ondisk, nprobe tuned on a sample), with the
catalog's ``CatalogVectors`` replaced by the .npy files because a SQLite catalog of 10M rows takes too long to
write here. Everything is written under --out (bench-out/ondisk by default) and removed afterwards.

Memory is sampled from /proc every 0.2 s for this process and each worker it starts: peak RSS, split into
anonymous memory (the process's own) and file-backed pages (the mapped .npy, shard and .ivfdata files:
page cache the kernel shares and drops under memory pressure, not memory the process holds).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402

from _common import record_result  # noqa: E402

GB = 1e9


def status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of a process, in bytes (empty when it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out + [g for c in out for g in children(c)]


class Sampler(threading.Thread):
    """Peak memory of this process and its workers, each tagged with the build stage it was first seen in."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stage, self.peaks, self.roles = "generate", {}, {}
        self._done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._done.is_set():
            self.sample(me)
            time.sleep(0.2)

    def sample(self, me: int) -> None:
        for pid in [me, *children(me)]:
            got = status(pid)
            if not got:
                continue
            self.roles.setdefault(pid, "driver" if pid == me else f"{self.stage} worker")
            peak = self.peaks.setdefault(pid, {})
            for key, value in got.items():
                peak[key] = max(peak.get(key, 0), value)
            if pid == me:
                peak.setdefault("stages", set()).add(self.stage)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample(os.getpid())


class StageLog(logging.Handler):
    """Follows build_ondisk's progress messages: the stage each worker belongs to and each stage's time."""

    STAGES = (("training", "train"), ("filling", "fill"), ("merging", "merge"), ("tuning", "tune"),
              ("checksumming", "checksum"))

    def __init__(self, sampler: Sampler):
        super().__init__(logging.INFO)
        self.sampler, self.started, self.times, self.notes = sampler, time.perf_counter(), {}, {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for prefix, stage in self.STAGES:
            if message.startswith(prefix):
                now = time.perf_counter()
                self.times[self.sampler.stage] = now - self.started
                self.sampler.stage, self.started, self.notes[stage] = stage, now, message

    def finish(self) -> None:
        self.times[self.sampler.stage] = time.perf_counter() - self.started


def generate(folder: Path, n: int, dim: int, queries: int, *, rows: int, noise: float, seed: int = 0
             ) -> tuple[list[str], np.ndarray]:
    """Clustered unit vectors (``n // 100`` centres) in .npy files of ``rows`` each, and held-out queries
    from the same clusters."""
    folder.mkdir(parents=True, exist_ok=True)
    centres = np.random.default_rng(seed).standard_normal((max(100, n // 100), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(rng, m):
        x = centres[rng.integers(0, len(centres), m)]
        x += noise / np.sqrt(dim) * rng.standard_normal((m, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    paths = []
    for i, start in enumerate(range(0, n, rows)):
        paths.append(str(folder / f"part-{i:04d}.npy"))
        m, rng = min(rows, n - start), np.random.default_rng(seed + 1 + i)
        with open(paths[-1], "wb") as fh:  # written 50,000 rows at a time: the file is never in memory
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (m, dim)})
            for s in range(0, m, 50_000):
                fh.write(draw(rng, min(50_000, m - s)).tobytes())
    return paths, draw(np.random.default_rng(seed + 10**6), queries)


def query_child(spec: dict) -> None:
    """In a fresh process: open the merged index, answer the queries one at a time and as a batch."""
    import faiss

    from index.ann.ondisk import open_ondisk
    from index.ann.searcher import Searcher
    faiss.omp_set_num_threads(spec["threads"])
    before = status()
    t = time.perf_counter()
    searcher = Searcher(open_ondisk(spec["index"], spec["data"]))
    open_s = time.perf_counter() - t
    opened = status()
    queries = np.load(spec["queries"])
    latencies = []
    for q in queries:
        t = time.perf_counter()
        searcher.search(q[None], spec["k"], nprobe=spec["nprobe"])
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    _, found = searcher.search(queries, spec["k"], nprobe=spec["nprobe"])
    batch_s = time.perf_counter() - t
    np.save(spec["found"], found)
    after = status()
    print(json.dumps({"before": before, "opened": opened, "after": after, "open_s": open_s,
                      "latency_ms": [1000 * x for x in latencies], "batch_s": batch_s}))


def run_query_child(spec: dict) -> dict:
    import subprocess
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the query process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--factory", default="IVF4096,Flat",
                    help="any IVF factory string (`ivf` would pick IVF16384 at 10M: hours of k-means on 2 cores)")
    ap.add_argument("--noise", type=float, default=0.8, help="spread of each cluster, as benchmarks/auto_index.py")
    ap.add_argument("--rows", type=int, default=500_000, help="vectors per generated .npy file")
    ap.add_argument("--workers", type=int, default=2, help="shard-filling processes")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "bench-out" / "ondisk")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return query_child(json.loads(args.child))

    from index.ann import ondisk
    from index.ann.tune import recall_against
    raw = args.n * args.dim * 4
    args.out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.out.parent).free
    if free < 3.3 * raw:  # the .npy files, the shards and the merged lists at once
        raise SystemExit(f"{args.out.parent} has {free / GB:.1f} GB free; this run needs {3.3 * raw / GB:.1f} GB")
    sampler = Sampler()
    sampler.start()
    stages = StageLog(sampler)
    logging.getLogger("index.ann.ondisk").addHandler(stages)
    logging.getLogger("index.ann.ondisk").setLevel(logging.INFO)
    try:
        t = time.perf_counter()
        paths, queries = generate(args.out / "data", args.n, args.dim, args.queries, rows=args.rows, noise=args.noise)
        print(f"{args.n:,} x {args.dim} clustered unit vectors (noise {args.noise}, {max(100, args.n // 100):,} "
              f"centres) in {len(paths)} .npy files: {raw / GB:.2f} GB raw [{time.perf_counter() - t:.0f} s to write]")
        source = ondisk.NpyVectors(tuple(paths), args.dim)
        data = args.out / "vectors.ivfdata"

        sampler.stage, stages.started = "train", time.perf_counter()
        t = time.perf_counter()
        built = ondisk.build_ondisk(source, args.factory, args.out / "work", data,
                                    map_shards=lambda fn, tasks: ondisk.process_map(fn, tasks, workers=args.workers))
        build_s = time.perf_counter() - t
        stages.finish()
        index_file = args.out / "vectors.faiss"
        os.replace(built.index_file, index_file)
        nprobe, tune_recall = built.search["nprobe"], built.recall
        del built
        sampler.stage = "query"

        print(f"\nbuild {args.factory} through index.ann.ondisk.build_ondisk, {args.workers} fill processes: "
              f"{build_s:.0f} s wall")
        for stage in ("train", "fill", "merge", "tune", "checksum"):
            note = stages.notes.get(stage, "")
            print(f"  {stage:9} {stages.times.get(stage, 0):7.0f} s   {note.split(' into ')[0]}")
        print(f"  tuned: nprobe={nprobe} (recall@10 {tune_recall:.3f} on 500 sampled vectors)")
        print(f"  files: vectors.faiss {index_file.stat().st_size / 1e6:.1f} MB, "
              f"vectors.ivfdata {data.stat().st_size / GB:.2f} GB")

        np.save(args.out / "queries.npy", queries)
        q = run_query_child({"index": str(index_file), "data": str(data), "queries": str(args.out / "queries.npy"),
                             "found": str(args.out / "found.npy"), "k": args.k, "nprobe": nprobe, "threads": 1})
        t = time.perf_counter()
        truth = ondisk.exact_neighbours(source, source.ids(), queries, args.k)
        exact_s = time.perf_counter() - t
        recall = recall_against(np.load(args.out / "found.npy"), truth)
    finally:
        sampler.stop()
        logging.getLogger("index.ann.ondisk").removeHandler(stages)
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)

    goal = 0.25 * raw
    print(f"\npeak memory of every process (goal: each <= 25% of the raw vectors = {goal / GB:.2f} GB):")
    print(f"  {'pid':>7} {'peak RSS':>9} {'anonymous':>10} {'file-backed':>12}   {'goal':22} process")
    for pid, role in sampler.roles.items():
        peak = sampler.peaks[pid]
        if role == "driver":
            role = "driver (" + ", ".join(s for s in ("generate", "train", "tune", "query")
                                          if s in peak.get("stages", ())) + ")"
        rss = max(peak.get("VmHWM", 0), peak.get("VmRSS", 0))
        anon = peak.get("RssAnon", 0)
        verdict = "met" if rss <= goal else ("met by its own memory" if anon <= goal else "MISSED")
        print(f"  {pid:>7} {rss / GB:8.2f}G {anon / GB:9.2f}G {peak.get('RssFile', 0) / GB:11.2f}G   {verdict:22} "
              f"{role}")
    print("  (file-backed: the faiss and numpy libraries and the mapped .npy, shard and .ivfdata pages)")
    lat = np.asarray(q["latency_ms"])
    after, opened = q["after"], q["opened"]
    print(f"\nfresh query process: opens the index in {q['open_s'] * 1000:.0f} ms, RSS {opened['VmRSS'] / GB:.3f} GB "
          f"after opening; after {args.queries} queries at nprobe={nprobe}: peak RSS {after['VmHWM'] / GB:.3f} GB "
          f"(anonymous {after['RssAnon'] / GB:.3f} GB, file-backed {after['RssFile'] / GB:.3f} GB; "
          f"goal <= 1 GB)")
    print(f"  latency, one query at a time, 1 thread: median {np.median(lat):.2f} ms, p95 "
          f"{np.percentile(lat, 95):.2f} ms; a batch of {args.queries}: {args.queries / q['batch_s']:.0f} queries/s")
    print(f"recall@10 against exact search ({args.queries} held-out queries, exact in chunks, {exact_s:.0f} s): "
          f"{recall:.3f} (goal >= 0.90)")


if __name__ == "__main__":
    with record_result(__file__):
        main()
