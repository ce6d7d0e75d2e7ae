"""Where the images to deduplicate come from: an index directory's catalog, or folders scanned now.

From an index, hashes are read from the catalog and only missing or stale ones are computed (then
stored); from folders, every file is hashed in this run (nothing is written).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from index.errors import RetrError
from index.hashes import load_hashes, pending_hashes, store_hashes
from index.store import IndexStore
from retrieval.dedupe.finder import DedupeOptions, Item
from retrieval.dedupe.hashing import HashJob, hash_files
from retrieval.images import scan

STORE_BATCH = 2000  # hashes written per transaction while hashing an index's images


@dataclasses.dataclass
class Collection:
    items: list[Item]
    codes: np.ndarray  # uint8 [n, nbytes], aligned with items
    errors: list[tuple[str, str]]
    vectors: np.ndarray | None = None  # float32, rows belong to positions ``vector_rows``
    vector_rows: np.ndarray | None = None
    roots: list[str] = dataclasses.field(default_factory=list)  # scanned roots (folders mode)


def _job(opts: DedupeOptions) -> HashJob:
    return HashJob(opts.hash, opts.hash_size)


def ensure_hashes(store: IndexStore, opts: DedupeOptions, *, workers: int | None = None,
                  progress: bool = False) -> list[tuple[str, str]]:
    """Hash the catalog's images that have no current hash of this kind (incremental); returns errors."""
    opts = opts.validated()
    todo = pending_hashes(store.catalog, opts.hash, opts.hash_size)
    errors: list[tuple[str, str]] = []
    batch: list[tuple[int, bytes, str]] = []
    by_path = {p.path: p for p in todo}
    for res in hash_files(list(by_path), _job(opts), workers=workers, progress=progress):
        if res.bits is None:
            errors.append((res.path, res.error or "cannot hash"))
            continue
        if res.sha256 != by_path[res.path].sha256:  # its row and vector describe other content
            errors.append((res.path, "changed since it was indexed; run `retr index build` first"))
            continue
        batch.append((by_path[res.path].id, res.bits, res.sha256))
        if len(batch) >= STORE_BATCH:
            store_hashes(store.catalog, opts.hash, opts.hash_size, batch)
            batch = []
    store_hashes(store.catalog, opts.hash, opts.hash_size, batch)
    return errors


def from_index(store: IndexStore, opts: DedupeOptions, *, workers: int | None = None,
               progress: bool = False) -> Collection:
    opts = opts.validated()
    errors = ensure_hashes(store, opts, workers=workers, progress=progress)
    hasher_bytes = (_job(opts).hasher().nbytes(opts.hash_size))
    table = load_hashes(store.catalog, opts.hash, opts.hash_size, hasher_bytes)
    rows = store.catalog.rows_by_id(table.ids)
    items = [Item(int(i), rows[int(i)].path, rows[int(i)].sha256, rows[int(i)].bytes, rows[int(i)].width,
                  rows[int(i)].height, rows[int(i)].mtime) for i in table.ids]
    col = Collection(items, table.codes, errors)
    if opts.embeddings:
        if store.manifest is None:
            raise RetrError(f"the index at {store.dir} has no vectors: build it before using --embeddings")
        with_vec = np.array([k for k, i in enumerate(table.ids) if rows[int(i)].has_vector], dtype=np.int64)
        col.vector_rows = with_vec
        col.vectors = store.catalog.vectors_for(table.ids[with_vec].tolist(), store.dim) if len(with_vec) \
            else np.zeros((0, store.dim), np.float32)
    return col


def from_paths(paths: Sequence[str | Path], opts: DedupeOptions, *, workers: int | None = None,
               progress: bool = False, model=None) -> Collection:
    """Scan and hash files now; ``model`` (a LoadedModel) embeds them too when --embeddings is on."""
    opts = opts.validated()
    found = scan([str(p) for p in paths])
    mtimes = {f.path: f.mtime for f in found.files}
    items, codes, errors = [], [], list(found.errors)
    for res in hash_files([f.path for f in found.files], _job(opts), workers=workers, progress=progress):
        if res.bits is None:
            errors.append((res.path, res.error or "cannot hash"))
            continue
        items.append(Item(len(items), res.path, res.sha256, res.bytes, res.width, res.height, mtimes[res.path]))
        codes.append(np.frombuffer(res.bits, dtype=np.uint8))
    nbytes = _job(opts).hasher().nbytes(opts.hash_size)
    col = Collection(items, np.stack(codes) if codes else np.zeros((0, nbytes), np.uint8), errors,
                     roots=[str(Path(p).resolve()) for p in paths])
    if opts.embeddings and items:
        if model is None:
            raise RetrError("--embeddings on folders needs a model to embed them")
        from retrieval.extract import embed_files
        pos = {it.path: k for k, it in enumerate(items)}
        rows, vecs = [], []
        for batch in embed_files(model, [it.path for it in items], progress=progress):
            rows += [pos[batch.paths[i]] for i in batch.ok]
            vecs.append(batch.vectors)
        col.vector_rows = np.asarray(rows, dtype=np.int64)
        col.vectors = np.concatenate(vecs) if vecs else None
    return col
