"""How many worker processes to start, computed when asked (never at import: the machine may differ), and
the garbage-collector setting to start them under."""
from __future__ import annotations

import collections
import contextlib
import functools
import gc
import multiprocessing
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
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


def ordered_map(fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]], *, shared: Any = None, workers: int,
                ahead: int = 4) -> Iterator[T]:
    """``fn(shared, *task)`` for each task, in order, on ``workers`` processes (0: in this process), at most
    ``ahead`` tasks a worker queued beyond the one being read: memory stays bounded however many tasks there are.

    ``shared`` (the model's preprocessing, a region source) reaches each worker once, not with every task. The
    processes are forked (as torch's DataLoader does on Linux; spawned elsewhere) under a frozen heap and need
    neither torch nor the model: ``fn``, ``shared`` and the tasks are plain picklable values. They are stopped
    when the iteration ends, also when the caller stops early or raises.
    """
    if workers <= 0:
        for task in tasks:
            yield fn(shared, *task)
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_set_shared,
                               initargs=(shared,))
    queued: collections.deque[Future] = collections.deque()
    with frozen_heap():  # the workers fork on the first submit
        yield from _in_order(pool, functools.partial(_call_shared, fn), tasks, queued, workers * (ahead + 1))


_shared: Any = None  # in a worker process: what ordered_map shares with every task


def _set_shared(value: Any) -> None:
    global _shared
    _shared = value


def _call_shared(fn: Callable[..., T], *task: Any) -> T:
    return fn(_shared, *task)


def _in_order(pool: ProcessPoolExecutor, fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]],
              queued: collections.deque[Future], window: int) -> Iterator[T]:
    try:
        pending = iter(tasks)
        for task in pending:
            queued.append(pool.submit(fn, *task))
            if len(queued) >= window:
                break
        while queued:
            result = queued.popleft().result()
            for task in pending:  # one in, one out
                queued.append(pool.submit(fn, *task))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
