"""``ordered_map`` on a Ray cluster: the per-item work of a command (dedupe's decoding, hashing and keypoints;
verification of candidate pairs; an on-disk index's shard fills) as Ray tasks, results in order, a bounded
number in flight.

Same contract as ``retrieval.workers.ordered_map``: ``fn(shared, *task)`` for each task, where ``fn`` is a
top-level function and ``shared`` and the tasks are plain picklable values; ``shared`` is put in the object
store once and reaches every task by reference. A task whose worker or node dies is run again (Ray's
``max_retries``); an exception raised by ``fn`` itself reaches the caller as it was raised.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar

from retrieval.scaleout.cluster import ClusterInfo, RaySettings, import_ray, on_every_node

if TYPE_CHECKING:
    from index.ann.ondisk import Mapper

log = logging.getLogger(__name__)

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


def _fill(_shared: None, fill: Callable[[Any], str], task: Any) -> str:
    return fill(task)


def _shares(folder: str, db_url: str) -> str | None:
    """On a node: None when it can write ``folder`` and open the catalog at ``db_url``, else why not."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {folder}"
    try:
        from index.catalog.database import Catalog
        Catalog(db_url, mode="read").close()
    except Exception as exc:  # noqa: BLE001 - any reason is a reason to fill the shards on the driver
        return f"cannot open the catalog ({type(exc).__name__})"
    return None


def shard_mapper_for(cluster: ClusterInfo, index_dir: str | os.PathLike, db_url: str) -> Mapper:
    """index.ann.ondisk's shard mapper on ``cluster``: each shard filled by a Ray task, when every node can
    write the index directory (where shards are written) and read the catalog (where vectors are read);
    else the default worker processes here, said in a warning. The check runs at the first fill only."""
    cpus = max(1, int(cluster.cpus))

    def map_shards(fill: Callable[[Any], str], tasks: Sequence[Any]) -> Iterator[str]:
        try:
            problems = [(n, why) for n, why in on_every_node(cluster, _shares, os.fspath(index_dir), db_url) if why]
        except Exception as exc:  # noqa: BLE001
            problems = [(None, f"the check failed ({type(exc).__name__})")]
        if problems:
            node, why = problems[0]
            log.warning(f"the index's shards are filled on this machine: the Ray node at "
                        f"{node.address if node else '?'} {why}")
            from index.ann.ondisk import process_map
            return process_map(fill, tasks)
        return ray_ordered_map(_fill, ((fill, task) for task in tasks), workers=cpus, ahead=0)
    return map_shards


@contextlib.contextmanager
def cluster_mapper(settings: RaySettings | None, roots: Sequence[str] = (), files: Sequence[str] = ()
                   ) -> Iterator[Callable[..., Iterator[Any]] | None]:
    """An ``ordered_map`` on the cluster ``settings`` names, connected and checked (every node reads ``roots``
    and a sample of ``files``) for the block; None without ``settings`` (the caller's default runs)."""
    if settings is None:
        yield None
        return
    from retrieval.scaleout.cluster import connected
    with connected(settings, roots, files) as cluster:
        yield mapper_for(cluster)
