"""Hashing files in parallel: one read per file gives its sha256, size, full resolution and perceptual hash.

JPEGs are decoded at reduced scale (PIL draft) when the hasher allows it: the hash shrinks the image to a
few dozen pixels anyway, and decoding at 1/2..1/8 scale skips most of the inverse DCT work.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import multiprocessing
from typing import Iterator, Sequence

from retrieval.dedupe.hashers import Hasher, get_hasher
from retrieval.images.decode import ImageLoadError, decode_sized, read_bytes
from retrieval.progress import progress_bar
from retrieval.workers import frozen_heap, process_pool_workers


@dataclasses.dataclass(frozen=True)
class HashResult:
    path: str
    sha256: str | None
    bytes: int | None
    width: int | None
    height: int | None
    bits: bytes | None  # packed hash; None when the file could not be decoded
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class HashJob:
    """What to compute: picklable, so worker processes rebuild the hasher from its registry name."""

    kind: str = "phash"
    hash_size: int | None = None
    draft: bool = True  # decode JPEGs at reduced size when the hasher allows it

    def hasher(self) -> Hasher:
        return get_hasher(self.kind)


def hash_bytes(data: bytes, job: HashJob, path: str = "") -> HashResult:
    """Hash image bytes (never raises for a bad image: the result carries the reason)."""
    hasher = job.hasher()
    digest = hashlib.sha256(data).hexdigest()
    try:
        img, width, height = decode_sized(data, draft_size=hasher.draft_size(job.hash_size) if job.draft else None)
        bits = hasher.packed(img, job.hash_size)
    except ImageLoadError as exc:
        return HashResult(path, digest, len(data), None, None, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - one odd file (e.g. a 1-pixel image for whash) must not stop a run
        return HashResult(path, digest, len(data), None, None, None,
                          f"cannot hash: {type(exc).__name__}: {str(exc)[:120]}")
    return HashResult(path, digest, len(data), width, height, bits)


def hash_file(path: str, job: HashJob) -> HashResult:
    try:
        data = read_bytes(path)
    except ImageLoadError as exc:
        return HashResult(path, None, None, None, None, None, str(exc))
    return hash_bytes(data, job, path)


def _hash_chunk(paths: Sequence[str], job: HashJob) -> list[HashResult]:
    return [hash_file(p, job) for p in paths]


def _context() -> multiprocessing.context.BaseContext:
    """fork where available: workers only run PIL, numpy and imagehash, and fork needs no ``__main__``
    guard in the caller's script (spawn and forkserver re-import it)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def hash_files(paths: Sequence[str], job: HashJob = HashJob(), *, workers: int | None = None,
               chunk: int = 64, progress: bool = False) -> Iterator[HashResult]:
    """Hash ``paths`` over ``workers`` processes (1: in this process), yielding results in input order."""
    job.hasher()  # fail fast on an unknown name, before any process starts
    # one process per core: hashing is CPU-bound and holds the GIL in imagehash's numpy code
    workers = process_pool_workers() if workers is None else max(1, int(workers))
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    with progress_bar(len(paths), desc=f"hashing ({job.kind})", enabled=progress) as bar:
        if workers == 1 or len(chunks) <= 1:
            for part in chunks:
                results = _hash_chunk(part, job)
                bar.update(len(results))
                yield from results
            return
        ctx = _context()
        with frozen_heap(), cf.ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx) as pool:
            for results in pool.map(_hash_chunk, chunks, [job] * len(chunks)):
                bar.update(len(results))
                yield from results
