"""FasterPAM (kmedoids package, retr's default) against scikit-learn-extra's PAM and alternate.

Same cosine distance matrix for every method: n points in d=128 (40 overlapping Gaussian blobs,
L2-normalised), k=20. kmedoids reads the matrix column by column, so retr hands it the transposed view
of the (exactly symmetric) matrix; one row shows FasterPAM on the matrix as stored, for comparison. Prints time ratio and loss ratio against PAM. Each method runs in a child process
with a time limit, so a PAM run too slow for this machine is bounded and reported as such.

    .venv/bin/python benchmarks/kmedoids_vs_pam.py [--sizes 3000 10000] [--limit 600]

Needs the optional scikit-learn-extra (see pyproject's sklearn-extra extra for the build command).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

from retrieval.clustering import kmedoids as C
from retrieval.clustering.engines import sklearn_extra_kmedoids


def data(n: int, dim: int = 128, centres: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    x = means[rng.integers(0, centres, n)] + 0.9 * rng.normal(size=(n, dim))
    return C.normalise(x.astype(np.float32))


_D: np.ndarray | None = None  # the distance matrix, inherited by forked children


def _child(method: str, k: int, seed: int, n_cpu: int | None, queue, init: str = "random",
           row_order: bool = False) -> None:
    start = time.perf_counter()
    if n_cpu is not None:  # FasterPAM pinned to one thread: the same cores as PAM's single thread
        import kmedoids
        # retr's engine passes the transposed view (kmedoids reads columns); row_order shows the plain matrix
        r = kmedoids.fasterpam(_D if row_order else _D.T, k, init=init, random_state=seed, n_cpu=n_cpu)
        medoids = np.asarray(r.medoids, np.int64)
    else:
        medoids, _ = C.ENGINES.get(method).run(_D, k, seed)
    seconds = time.perf_counter() - start
    loss = float(_D[:, medoids].min(axis=1).sum(dtype=np.float64))
    queue.put((seconds, loss))


def timed(method: str, k: int, seed: int, limit: float, n_cpu: int | None = None,
          init: str = "random", row_order: bool = False) -> tuple[float, float | None]:
    """(seconds, loss); loss None when the run was stopped at ``limit`` seconds."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, k, seed, n_cpu, queue, init, row_order))
    start = time.perf_counter()
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return time.perf_counter() - start, None
    return queue.get()


def main() -> None:
    global _D
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--limit", type=float, default=600.0, help="seconds allowed per method run")
    parser.add_argument("--seeds", type=int, default=3, help="FasterPAM random initialisations")
    parser.add_argument("--loss-datasets", type=int, default=5,
                        help="data sets (at the smallest size) over which to compare losses, 8 seeds each")
    args = parser.parse_args()
    sklearn_extra_kmedoids()  # fail early with the install hint
    print(f"cores: {os.cpu_count()}, k={args.k}, d=128, time limit per run {args.limit:.0f}s")
    for n in args.sizes:
        _D = C.cosine_distances(data(n))
        print(f"\nn={n}")
        pam_s, pam_loss = timed("pam", args.k, 0, args.limit)
        rows = [("sklearn-extra pam (build+swap)", pam_s, pam_loss)]
        rows.append(("sklearn-extra alternate", *timed("alternate", args.k, 0, args.limit)))
        for seed in range(args.seeds):
            rows.append((f"fasterpam seed {seed} (default threads)", *timed("fasterpam", args.k, seed, args.limit)))
        for seed in range(args.seeds):
            rows.append((f"fasterpam seed {seed} (1 thread)", *timed("fasterpam", args.k, seed, args.limit, n_cpu=1)))
        rows.append(("fasterpam seed 0, matrix in row order", *timed("fasterpam", args.k, 0, args.limit, n_cpu=1,
                                                                     row_order=True)))
        rows.append(("fasterpam, BUILD init (1 thread)", *timed("fasterpam", args.k, 0, args.limit, n_cpu=1,
                                                                init="build")))
        print(f"{'method':40} {'seconds':>9} {'loss':>12} {'PAM time / time':>16} {'loss / PAM loss':>16}")
        for name, seconds, loss in rows:
            bound = ">" if pam_loss is None else ""
            speed = f"{bound}{pam_s / seconds:.1f}x"
            loss_txt = f"{loss:.3f}" if loss is not None else f"stopped at {args.limit:.0f}s"
            ratio = f"{loss / pam_loss:.5f}" if loss is not None and pam_loss is not None else "n/a"
            print(f"{name:40} {seconds:>9.2f} {loss_txt:>12} {speed:>16} {ratio:>16}")
        if pam_loss is None:
            print(f"PAM did not finish within {args.limit:.0f}s: its time, and so every speed-up, is a lower bound")
    if args.loss_datasets:
        loss_across_datasets(min(args.sizes), args.k, args.loss_datasets, args.limit)


def loss_across_datasets(n: int, k: int, datasets: int, limit: float, seeds: int = 8) -> None:
    """Both reach local optima: how FasterPAM's loss compares with PAM's over data sets and seeds."""
    global _D
    print(f"\nloss of FasterPAM (retr's engine, {seeds} seeds) / loss of PAM, n={n}, over {datasets} data sets")
    print(f"{'data set':>8} {'PAM loss':>10} {'min':>8} {'mean':>8} {'max':>8} {'runs <= PAM':>12}")
    means = []
    for ds in range(datasets):
        _D = C.cosine_distances(data(n, seed=ds))
        _, pam_loss = timed("pam", k, 0, limit)
        if pam_loss is None:
            print(f"{ds:>8} PAM did not finish within {limit:.0f}s")
            continue
        ratios = []
        for seed in range(seeds):
            medoids, _ = C.ENGINES.get("fasterpam").run(_D, k, seed)
            ratios.append(float(_D[:, medoids].min(axis=1).sum(dtype=np.float64)) / pam_loss)
        r = np.array(ratios)
        means.append(r.mean())
        print(f"{ds:>8} {pam_loss:>10.3f} {r.min():>8.5f} {r.mean():>8.5f} {r.max():>8.5f} "
              f"{int((r <= 1).sum()):>6}/{seeds}")
    if means:
        print(f"mean loss ratio over {len(means)} data sets x {seeds} seeds: {np.mean(means):.5f}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
