"""IVF indexes larger than memory, built and served faiss's on-disk way: ``build_ondisk``, ``open_ondisk``.

The recipe of faiss's ``contrib/ondisk.py`` and autofaiss, in stages that each write files the next reads:

1. ``train``: the coarse quantizer (and PQ, and any preprocessing) is trained once on a sample of the
   vectors and written as an empty index (``trained.faiss``).
2. ``fill_shard``: each shard, an empty copy of the trained index, is filled with one contiguous id range
   of the vectors, read in chunks, and written to its own file. Shards are filled in parallel by a
   *mapper*; each holds at most ``shard_bytes`` of vectors in memory.
3. ``merge_shards``: the shards' inverted lists are merged into one ``OnDiskInvertedLists`` file (the
   ``.ivfdata``) with ``faiss.contrib.ondisk.merge_ondisk``; the index file (quantizer and list offsets,
   small) names it.
4. ``open_ondisk``: the index file is read and the ``.ivfdata`` memory-mapped, read-only: a search
   touches only the lists it probes, so RAM stays far below the index's size.

Vectors come from a ``VectorSource``: a small picklable description of where they are, never the vectors
themselves (``index.catalog.vectors.CatalogVectors`` reads a catalog table by id range; ``NpyVectors``
reads ``.npy`` files).

The mapper contract (for worker processes here, Ray tasks or any other pool): a mapper is a function
``map_shards(fill_shard, tasks) -> iterator of shard file paths`` that calls ``fill_shard(task)`` for
every task, anywhere, and yields what each call returns in the order of ``tasks``. A ``ShardTask`` is a
frozen dataclass of plain values (shard number, the trained index's path, the source, the id range, the
output path): it pickles, and the function needs nothing but this package and the files it names, so
another node that sees the same filesystem can run it. ``fill_shard`` writes its output atomically, so a
task that is retried or run twice leaves one whole file. ``process_map`` (worker processes) is the default.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import faiss
import numpy as np
# imported here, not in the functions a forked worker runs: an import in a child forked from a threaded
# process (retr serve) can wait forever on the import lock another thread held at the fork
from faiss.contrib.exhaustive_search import knn_ground_truth
from faiss.contrib.ondisk import merge_ondisk

from index.ann.factory import available_memory
from index.ann.neighbours import drop_self
from index.ann.searcher import BLAS_MIN_QUERIES, blas_from, faiss_message
from index.ann.tune import TARGET_RECALL, sweep
from index.atomic import atomic_path, file_sha256, fsync_dir
from index.errors import RetrError

log = logging.getLogger(__name__)

MIN_BYTES_ENV = "RETR_ONDISK_MIN_BYTES"  # raw vectors from this size on are built on disk
WORKERS_ENV = "RETR_ONDISK_WORKERS"  # shard-filling processes (0: in this process)
SHARD_BYTES_ENV = "RETR_ONDISK_SHARD_BYTES"  # vectors per shard, in bytes
ONDISK_MIN_BYTES = 2 << 30  # default threshold (lower where free memory is short: see min_bytes)
SHARD_BYTES = 256 << 20  # vectors per shard, in bytes of float32: what one filling process holds
SAMPLE_BYTES = 1 << 30  # training sample budget, beyond faiss's minimum of 39 points per list
CHUNK_ROWS = 20_000  # vectors read at a time
TRAINED_FILE = "trained.faiss"
MERGED_FILE = "merged.faiss"


class VectorSource(Protocol):
    """Where the vectors of an index are: picklable, opened again by each process that reads it."""

    dim: int

    def ids(self) -> np.ndarray:
        """Every id, ascending (int64)."""

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """float32 [len(ids), dim], in the order of ``ids`` (ascending)."""

    def chunks(self, first: int | None = None, last: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in id order, a chunk at a time; only ids from ``first`` to ``last`` (included)."""


@dataclasses.dataclass(frozen=True)
class NpyVectors:
    """Vectors in ``.npy`` files (float32 [rows, dim] each), read memory-mapped; ids are row numbers
    across the files in order, from ``first_id``."""

    paths: tuple[str, ...]
    dim: int
    first_id: int = 0

    def _rows(self) -> list[int]:
        return [int(np.load(p, mmap_mode="r").shape[0]) for p in self.paths]

    def ids(self) -> np.ndarray:
        return np.arange(sum(self._rows()), dtype=np.int64) + self.first_id

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64) - self.first_id
        out = np.empty((len(ids), self.dim), np.float32)
        start = 0
        for path, rows in zip(self.paths, self._rows()):
            pick = (ids >= start) & (ids < start + rows)
            if pick.any():
                out[pick] = np.load(path, mmap_mode="r")[ids[pick] - start]
            start += rows
        return out

    def chunks(self, first: int | None = None, last: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        lo = -math.inf if first is None else first - self.first_id
        hi = math.inf if last is None else last - self.first_id
        start = 0
        for path, rows in zip(self.paths, self._rows()):
            a, b = max(lo, start), min(hi + 1, start + rows)
            if a < b:
                data = np.load(path, mmap_mode="r")
                for s in range(int(a), int(b), CHUNK_ROWS):
                    e = min(int(b), s + CHUNK_ROWS)
                    yield (np.arange(s, e, dtype=np.int64) + self.first_id,
                           np.ascontiguousarray(data[s - start:e - start], dtype=np.float32))
            start += rows


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One shard to fill: plain values only (see the mapper contract in the module docstring)."""

    shard: int
    trained: str  # the trained, empty index (train)
    source: VectorSource
    first: int  # the id range it holds, both ends included
    last: int
    output: str  # where the filled shard is written


@dataclasses.dataclass(frozen=True)
class OnDiskBuild:
    """A merged on-disk index, opened memory-mapped, and what the manifest records of it."""

    index: faiss.Index
    index_file: Path  # the merged index file (in the work folder: the caller moves it into place)
    ids: np.ndarray  # the ids it holds, ascending
    search: dict[str, int]  # tuned nprobe (empty when not tuned)
    recall: float  # the tuning sample's recall@10 at ``search``
    data: dict  # the .ivfdata: {"file", "bytes", "sha256", "mtime_ns"}


def _env_int(name: str, what: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise RetrError(f"{name}={value!r} is not a number of {what}") from None


def default_shard_bytes() -> int:
    """Bytes of vectors per shard: RETR_ONDISK_SHARD_BYTES, else 256 MiB."""
    return max(1, _env_int(SHARD_BYTES_ENV, "bytes") or SHARD_BYTES)


def min_bytes() -> int:
    """Raw vector bytes from which an IVF index is built on disk: RETR_ONDISK_MIN_BYTES, else the smaller of
    2 GiB and a quarter of the free memory."""
    value = _env_int(MIN_BYTES_ENV, "bytes")
    if value is not None:
        return value
    return min(ONDISK_MIN_BYTES, available_memory() // 4)


def is_ivf(factory: str, dim: int) -> bool:
    """Whether ``factory`` builds an IVF index whose lists faiss can keep on disk."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        return False  # build() reports the bad string
    ivf = faiss.try_extract_index_ivf(index)
    # merge_ondisk copies plain inverted lists: not IVFPQR's refinement codes, nor fast-scan's blocks
    return ivf is not None and not isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQR) and isinstance(
        faiss.downcast_InvertedLists(ivf.invlists), faiss.ArrayInvertedLists)


def wanted(factory: str, n: int, dim: int) -> bool:
    """Whether an index of ``n`` ``dim``-d vectors as ``factory`` is built on disk."""
    return n > 0 and n * dim * 4 >= min_bytes() and is_ivf(factory, dim)


# -- 1. train ---------------------------------------------------------------------------------------------

def train(source: VectorSource, ids: np.ndarray, factory: str, out: str | os.PathLike, *, seed: int = 0) -> None:
    """Train an empty ``factory`` index on a sample of ``source`` and write it to ``out``."""
    dim = source.dim
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RetrError(f"invalid faiss index type {factory!r}: {faiss_message(exc)}") from exc
    ivf = faiss.extract_index_ivf(index)
    if len(ids) < ivf.nlist:
        raise RetrError(f"index type {factory!r} needs at least {ivf.nlist} vectors to train, "
                        f"the collection has {len(ids)}; use --index-type auto or flat")
    if not index.is_trained:
        # as build(): 64 points a list and at least 10,000 (PQ), within SAMPLE_BYTES, never below faiss's 39 a list
        size = min(len(ids), max(39 * ivf.nlist, min(max(64 * ivf.nlist, 10_000), SAMPLE_BYTES // (4 * dim))))
        pick = np.sort(np.random.default_rng(seed).choice(len(ids), size, replace=False))
        sample = source.vectors_of(ids[pick])
        log.info("training %s on %d of %d vectors", factory, size, len(ids))
        try:
            index.train(sample)
        except RuntimeError as exc:
            raise RetrError(f"cannot train index type {factory!r} on {size} vectors: "
                            f"{faiss_message(exc)}; use --index-type auto or flat") from exc
        del sample
    with atomic_path(out) as tmp:
        faiss.write_index(index, str(tmp))


# -- 2. fill ----------------------------------------------------------------------------------------------

def plan_shards(ids: np.ndarray, source: VectorSource, trained: str | os.PathLike, folder: str | os.PathLike, *,
                shard_bytes: int = SHARD_BYTES) -> list[ShardTask]:
    """Contiguous id ranges of at most ``shard_bytes`` of vectors each, one ShardTask per range."""
    rows = max(1, shard_bytes // (4 * source.dim))
    return [ShardTask(shard=i, trained=str(trained), source=source, first=int(ids[s]),
                      last=int(ids[min(s + rows, len(ids)) - 1]), output=str(Path(folder) / f"shard-{i:05d}.faiss"))
            for i, s in enumerate(range(0, len(ids), rows))]


def fill_shard(task: ShardTask) -> str:
    """Fill an empty copy of the trained index with the task's id range and write it (atomically) to
    ``task.output``; returns that path."""
    index = faiss.read_index(task.trained)
    for ids, vectors in task.source.chunks(task.first, task.last):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, np.int64))
    with atomic_path(task.output) as tmp:
        faiss.write_index(index, str(tmp))
    return task.output


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers(tasks: int) -> int:
    """Shard-filling processes: RETR_ONDISK_WORKERS, else one per core, at most one per task, and no more than
    free memory holds (a worker holds up to twice a shard's vectors while its lists grow)."""
    value = _env_int(WORKERS_ENV, "processes")
    if value is not None:
        return max(0, value)
    return max(1, min(tasks, usable_cores(), available_memory() // (3 * default_shard_bytes())))


def _worker_start(threads: int) -> None:
    """In a worker: faiss's threads share the cores with the other workers, and faiss's own messages on
    stdout ("resizing ...") are dropped, so they never reach a command's --json output."""
    faiss.omp_set_num_threads(threads)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Worker processes: forked on Linux (no re-import of the caller's script, as retr's decode workers), else
    spawned. faiss's OpenMP pool does not survive a fork (a forked child that starts threads hangs), so a
    forked worker runs one faiss thread; there is one worker per core."""
    fork = sys.platform.startswith("linux")
    threads = 1 if fork else max(1, usable_cores() // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                               initializer=_worker_start, initargs=(threads,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def process_map(fn: Callable[[ShardTask], str], tasks: Sequence[ShardTask], *, workers: int | None = None
                ) -> Iterator[str]:
    """The default mapper: ``fn(task)`` for each task on ``workers`` processes (default: ``default_workers``;
    0: in this process), results in the order of ``tasks``."""
    workers = default_workers(len(tasks)) if workers is None else workers
    if workers <= 0 or len(tasks) <= 1 and workers <= 1:
        yield from map(fn, tasks)
        return
    with _pool(workers) as pool:
        yield from pool.map(fn, tasks)


Mapper = Callable[[Callable[[ShardTask], str], Sequence[ShardTask]], Iterable[str]]

# (stage, done, total): what a long build reports as it goes; called with done 0 as a stage starts, then as it
# advances, with done == total as it ends. Stages, in order: STAGES (the words a progress line shows).
Progress = Callable[[str, int, int], None]
STAGES = ("training on a sample", "filling shards", "merging shards", "tuning nprobe")


# -- 3. merge ---------------------------------------------------------------------------------------------

def merge_shards(trained: str, shards: Sequence[str], data_tmp: str, data_path: str, index_out: str) -> None:
    """Merge ``shards`` into the trained empty index: its lists in ``data_path`` (written as ``data_tmp``,
    fsynced, then renamed), the index file, which names that file, in ``index_out``."""
    index = faiss.read_index(trained)
    merge_ondisk(index, list(shards), data_tmp)
    invlists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    invlists.filename = Path(data_path).name  # opened from the index's own folder (open_ondisk)
    with atomic_path(index_out) as tmp:
        faiss.write_index(index, str(tmp))
    del invlists, index  # unmapped: every page it wrote is in the file, which fsync now makes durable
    with open(data_tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(data_tmp, data_path)
    fsync_dir(Path(data_path).parent)


def _merge_in_child(*args: str) -> None:
    """merge_shards in a worker process: faiss prints its progress on stdout, which a --json command must
    keep clean, and the merge's mapped pages leave with the process."""
    with _pool(1) as pool:
        pool.submit(merge_shards, *args).result()


# -- 4. open ----------------------------------------------------------------------------------------------

def open_ondisk(index_file: str | os.PathLike, data_file: str | os.PathLike) -> faiss.Index:
    """The index in ``index_file`` with its lists memory-mapped, read-only, from ``data_file``.

    As ``faiss.read_index(index_file, IO_FLAG_ONDISK_SAME_DIR)`` (the lists' file found beside the index, so
    the folder can move), done in two steps: faiss prints that flag's renaming on stdout, which would land in
    a command's --json output, and the file's size is checked before it is mapped.
    """
    try:
        index = faiss.read_index(str(index_file), faiss.IO_FLAG_SKIP_IVF_DATA)
    except RuntimeError as exc:
        raise RetrError(f"cannot read faiss index {index_file}: {faiss_message(exc)}") from exc
    ivf = faiss.try_extract_index_ivf(index)
    invlists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    if not isinstance(invlists, faiss.OnDiskInvertedLists):
        raise RetrError(f"{index_file} is not an on-disk IVF index")
    try:
        size = os.path.getsize(data_file)
    except OSError as exc:
        raise RetrError(f"cannot read {data_file}: {exc.strerror or exc}") from exc
    if size < invlists.totsize:  # a mapping past the end of the file would crash the process on first touch
        raise RetrError(f"{data_file} is truncated ({size} of {invlists.totsize} bytes)")
    invlists.filename = str(data_file)
    try:
        invlists.do_mmap()
    except RuntimeError as exc:
        raise RetrError(f"cannot map {data_file}: {faiss_message(exc)}") from exc
    return index


# -- tuning on a sample -----------------------------------------------------------------------------------

def exact_neighbours(source: VectorSource, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The ids of the exact k nearest (inner product) of each query, streaming ``source`` chunk by chunk."""
    chunks = (vectors for _, vectors in source.chunks())
    with blas_from(BLAS_MIN_QUERIES * source.dim):
        _, positions = knn_ground_truth(np.ascontiguousarray(queries, np.float32), chunks, k,
                                        metric_type=faiss.METRIC_INNER_PRODUCT)
    return np.where(positions >= 0, ids[np.clip(positions, 0, len(ids) - 1)], -1)


def tune_ondisk(index: faiss.Index, source: VectorSource, ids: np.ndarray, *, k: int = 10,
                target: float = TARGET_RECALL, sample: int = 500, seed: int = 0) -> tuple[dict[str, int], float]:
    """(nprobe, recall@k) as ``tune_report`` finds them, with the exact neighbours of the sample found by
    streaming the vectors: only the sample and one chunk are in memory."""
    if len(ids) <= k + 1:
        return {}, 1.0
    pick = np.sort(np.random.default_rng(seed).choice(len(ids), min(sample, len(ids)), replace=False))
    queries = np.ascontiguousarray(source.vectors_of(ids[pick]), np.float32)
    truth = drop_self(exact_neighbours(source, ids, queries, k + 1), ids[pick])[:, :k]
    params, recall, _ = sweep(index, queries, ids[pick], truth, k=k, target=target)
    return params, recall


# -- the whole build --------------------------------------------------------------------------------------

def _silent(stage: str, done: int, total: int) -> None:
    pass


def build_ondisk(source: VectorSource, factory: str, work: str | os.PathLike, data_path: str | os.PathLike, *,
                 map_shards: Mapper | None = None, shard_bytes: int | None = None, tune: bool = True,
                 ids: np.ndarray | None = None, progress: Progress | None = None) -> OnDiskBuild:
    """Train, fill, merge and open an on-disk ``factory`` index of ``source`` (every stage's files in the
    folder ``work``, the lists in ``data_path``); tuned on a sample unless ``tune`` is False. ``progress``
    hears each stage start and advance (see Progress)."""
    report = progress or _silent
    training, filling, merging, tuning = STAGES
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(source.ids() if ids is None else ids, dtype=np.int64)
    if not len(ids):
        raise RetrError("an on-disk index needs at least one vector")
    trained = work / TRAINED_FILE
    report(training, 0, 1)
    train(source, ids, factory, trained)
    report(training, 1, 1)
    tasks = plan_shards(ids, source, trained, work, shard_bytes=shard_bytes or default_shard_bytes())
    log.info("filling %d shards", len(tasks))
    report(filling, 0, len(tasks))
    shards = []
    for shard in (map_shards or process_map)(fill_shard, tasks):
        shards.append(shard)
        report(filling, min(len(shards), len(tasks)), len(tasks))
    if len(shards) != len(tasks):
        raise RetrError(f"the shard mapper returned {len(shards)} shards for {len(tasks)} tasks")
    log.info("merging %d shards into %s", len(shards), data_path)
    merged = work / MERGED_FILE
    report(merging, 0, 1)
    _merge_in_child(str(trained), [str(s) for s in shards], str(work / "merged.ivfdata"), str(data_path),
                    str(merged))
    report(merging, 1, 1)
    for shard in shards:  # the merged file holds them now: free the disk before tuning
        Path(shard).unlink(missing_ok=True)
    index = open_ondisk(merged, data_path)
    if index.ntotal != len(ids):
        raise RetrError(f"the merged index holds {index.ntotal} vectors, not {len(ids)}")
    log.info("tuning nprobe on a sample")
    if tune:
        report(tuning, 0, 1)
        search, recall = tune_ondisk(index, source, ids)
        report(tuning, 1, 1)
    else:
        search, recall = {}, 1.0
    log.info("checksumming %s", data_path)
    stat = os.stat(data_path)
    data = {"file": Path(data_path).name, "bytes": stat.st_size, "sha256": file_sha256(data_path),
            "mtime_ns": stat.st_mtime_ns}
    return OnDiskBuild(index=index, index_file=merged, ids=ids, search=search, recall=recall, data=data)


def data_problem(folder: Path, record: dict) -> str | None:
    """Why the .ivfdata ``record`` names is not the file written; None when it is.

    Its size is checked on every open; its sha256 (a full read of a file that may hold gigabytes) only when
    its modification time differs from the one recorded, i.e. when something wrote to it or replaced it.
    """
    path = folder / str(record.get("file", ""))
    try:
        stat = path.stat()
    except OSError:
        return f"{path} is missing"
    if stat.st_size != record.get("bytes"):
        return f"{path} does not match its size in the manifest (damaged or truncated)"
    if stat.st_mtime_ns != record.get("mtime_ns"):
        if file_sha256(path) != record.get("sha256"):
            return f"{path} does not match its checksum in the manifest (damaged)"
    return None
