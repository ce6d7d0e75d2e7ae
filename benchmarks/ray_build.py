"""`retr index build --ray` against a local build, and a simulated cluster of one node against two.

Real photos (JPEG copies of the scikit-image and scikit-learn photos), the default model on the default CPU
runtime, side by side in one run, rounds interleaved, each build in a fresh process:

(a) `--ray local` against a local build on the same cores: images/s over the whole command, and in the steady
    state (from the first committed batch to the last); goal: >= 0.8 of the local build's.
(b) a simulated cluster (``ray.cluster_utils.Cluster``) of one 1-CPU node against two 1-CPU nodes; each node's
    processes are pinned to a core of their own, so a node is one CPU as on a real cluster (the driver and the
    head node's processes, which a real cluster runs on a machine of their own, are not pinned); goal: two
    nodes >= 1.7x one node (steady-state images/s).
(c) seconds to the first committed batch in each.

Every Ray process listens on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``).

    .venv/bin/python benchmarks/ray_build.py [--copies 64] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from _common import record_result, run_child, write_photo_copies  # noqa: E402

SETUPS = ("local build", "--ray local", "cluster, 1 node", "cluster, 2 nodes")


def _pin_node(node, core: int, stop: threading.Event) -> None:
    """Keep every process of a simulated node (its raylet and the workers it starts) on one core."""
    root = node.all_processes["raylet"][0].process.pid
    while not stop.is_set():
        for pid in _descendants(root):
            try:
                threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                continue  # gone already
            for tid in threads:  # affinity is per thread: a runtime's pool threads started before the pin too
                try:
                    if os.sched_getaffinity(tid) != {core}:
                        os.sched_setaffinity(tid, {core})
                except OSError:
                    pass
        stop.wait(0.05)


def _descendants(root: int) -> list[int]:
    """``root`` and every process under it, from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += frontier
    return found


def child(setup: str, photos: str, kind: str = "build") -> dict:
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.scaleout.cluster import RaySettings
    stamps: list[float] = []
    cluster, stop = None, threading.Event()
    start = time.perf_counter()
    if setup.startswith("cluster"):
        import ray
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for core in range(2 if "2 nodes" in setup else 1):
            node = cluster.add_node(num_cpus=1)
            threading.Thread(target=_pin_node, args=(node, core, stop), daemon=True).start()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        ray_settings = RaySettings(cluster.address)
    else:
        ray_settings = RaySettings("local") if setup == "--ray local" else None
    with tempfile.TemporaryDirectory() as tmp:
        report = build_index([photos], Path(tmp) / "index", BuildOptions(ray=ray_settings),
                             on_batch=lambda n: stamps.append(time.perf_counter()))
    end = time.perf_counter()
    stop.set()
    if cluster is not None:
        import ray
        ray.shutdown()
        cluster.shutdown()
    first, n = stamps[0] - start, report.added
    return {"seconds": end - start, "first_batch": first, "images": n,
            "steady": (n - (n // len(stamps))) / max(1e-9, stamps[-1] - stamps[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=64, help="JPEG copies of each of the 12 photos")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(**json.loads(args.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        n = write_photo_copies(photos, args.copies)
        print(f"{n} photos, {os.cpu_count()} cores, {args.rounds} rounds, each build in a fresh process")
        runs: dict[str, list[dict]] = {s: [] for s in SETUPS}
        for _ in range(args.rounds):
            for setup in SETUPS:
                runs[setup].append(run_child(__file__, "build", setup=setup, photos=str(photos)))
    med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in ("seconds", "first_batch", "steady")}
           for s in SETUPS}
    print(f"{'setup':<20}{'images/s':>10}{'steady images/s':>17}{'first batch s':>15}{'total s':>9}")
    for s in SETUPS:
        m = med[s]
        print(f"{s:<20}{n / m['seconds']:>10.1f}{m['steady']:>17.1f}{m['first_batch']:>15.1f}{m['seconds']:>9.1f}")
    local, ray_local = med["local build"], med["--ray local"]
    print(f"(a) --ray local / local build: {local['seconds'] / ray_local['seconds']:.2f} over the command, "
          f"{ray_local['steady'] / local['steady']:.2f} steady (goal >= 0.8)")
    print(f"(b) two 1-CPU nodes / one: {med['cluster, 2 nodes']['steady'] / med['cluster, 1 node']['steady']:.2f}x "
          f"steady, {med['cluster, 1 node']['seconds'] / med['cluster, 2 nodes']['seconds']:.2f}x over the command "
          f"(goal >= 1.7x)")
    print("(c) first committed batch: " + ", ".join(f"{s} {med[s]['first_batch']:.1f} s" for s in SETUPS))


if __name__ == "__main__":
    with record_result(__file__):
        main()
