"""How many worker processes to start, computed when asked (never at import: the machine may differ), and
the garbage-collector setting to start them under."""
from __future__ import annotations

import contextlib
import gc
import os
from typing import Iterator

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
    cores (on 2 cores one worker left `retr index build` 5-6% slower than two: benchmarks/build_settings.py;
    the stream waits on its single process at start and at each stall)."""
    return loader_workers() if usable_cores() < 2 else max(2, loader_workers())


def process_pool_workers() -> int:
    """Processes for CPU-bound work with no model (hashing): one per core, at least one."""
    return usable_cores()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep every object that exists now out of the garbage collector's passes until the block ends.

    Python's own advice for a process that forks workers (``gc.freeze`` before ``fork``): the workers'
    collections then never write to the objects they share with the parent (no copy-on-write of those
    pages), and the parent's full collections skip the ~425,000 objects torch, timm and a runtime leave
    after start-up. One such pass took 0.19 s of a 1,152-image build's main thread, time in which it
    feeds no infer request (benchmarks/build_settings.py measures the build with and without).
    Objects are only exempted, never lost: the block's end hands them back to the collector. A heap
    already frozen (by an enclosing block, or by the program itself) is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
