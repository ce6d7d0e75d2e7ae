"""How many worker processes to start, computed when asked (never at import: the machine may differ)."""
from __future__ import annotations

import os

MAX_LOADER_WORKERS = 8  # more decode workers than this only add memory: the model is the bottleneck


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def loader_workers() -> int:
    """DataLoader decode workers beside a model: every core but the main process's, at most 8; 0 = in process."""
    return max(0, min(MAX_LOADER_WORKERS, usable_cores() - 1))


def embed_workers() -> int:
    """Decode workers beside an embedding forward: as ``loader_workers``, but at least two where there are two
    cores (on 2 cores one worker left `retr index build` 5% slower than two: benchmarks/build_settings.py;
    the stream waits on its single process at start and at each stall)."""
    return loader_workers() if usable_cores() < 2 else max(2, loader_workers())


def process_pool_workers() -> int:
    """Processes for CPU-bound work with no model (hashing): one per core, at least one."""
    return usable_cores()
