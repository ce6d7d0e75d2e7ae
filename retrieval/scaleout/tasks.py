"""``ordered_map`` on a Ray cluster: the per-item work of a command (dedupe's decoding, hashing and keypoints;
verification of candidate pairs) as Ray tasks, results in order, a bounded number in flight.

Same contract as ``retrieval.workers.ordered_map``: ``fn(shared, *task)`` for each task, where ``fn`` is a
top-level function and ``shared`` and the tasks are plain picklable values; ``shared`` is put in the object
store once and reaches every task by reference. A task whose worker or node dies is run again (Ray's
``max_retries``); an exception raised by ``fn`` itself reaches the caller as it was raised.
"""
from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Iterator, TypeVar

from retrieval.scaleout.cluster import ClusterInfo, import_ray

T = TypeVar("T")
TASK_RETRIES = 3  # runs of a task whose worker or node died, beyond the first


def _call(fn: Callable[..., T], shared: Any, *task: Any) -> T:
    return fn(shared, *task)


def ray_ordered_map(fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]], *, shared: Any = None,
                    workers: int, ahead: int = 4) -> Iterator[T]:
    """``fn(shared, *task)`` for each task on the connected cluster, in order; at most ``workers * (ahead + 1)``
    tasks submitted and not yet read (``workers``: the cluster's CPUs is a good value)."""
    ray = import_ray()
    remote = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_call)
    shared_ref = ray.put(shared)
    window = max(1, workers) * (ahead + 1)
    queued: collections.deque = collections.deque()
    pending = iter(tasks)
    try:
        for task in pending:
            queued.append(remote.remote(fn, shared_ref, *task))
            if len(queued) >= window:
                break
        while queued:
            ref = queued.popleft()
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # fn raised: the caller sees its own exception
                raise exc.as_instanceof_cause() from None
            for task in pending:  # one in, one out
                queued.append(remote.remote(fn, shared_ref, *task))
                break
            yield result
    finally:
        for ref in queued:
            ray.cancel(ref)


def mapper_for(cluster: ClusterInfo) -> Callable[..., Iterator[Any]]:
    """An ``ordered_map`` for ``cluster``: ``workers`` is the cluster's CPUs whatever the caller asks."""
    cpus = max(1, int(cluster.cpus))

    def mapped(fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]], *, shared: Any = None, workers: int = 0,
               ahead: int = 4) -> Iterator[T]:
        return ray_ordered_map(fn, tasks, shared=shared, workers=cpus, ahead=ahead)
    return mapped
