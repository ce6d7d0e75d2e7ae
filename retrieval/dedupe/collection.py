"""Where the images to deduplicate come from: an index directory's catalog, or folders scanned now.

From an index, hashes are read from the catalog and only missing or stale ones are computed (then
stored); from folders, every file is hashed in this run (nothing is written). Either way, paths that
reach the same file (device and inode: a symlink and its target, hard links) are one image.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from index.errors import RetrError
from index.catalog.hashes import load_hashes, pending_hashes, store_hashes
from index.directory import IndexStore
from retrieval.dedupe.fileops import file_id, is_direct
from retrieval.dedupe.finder import Item
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.parallel_hashing import HashJob, hash_files
from retrieval.images.decode import scan

STORE_BATCH = 2000  # hashes written per transaction while hashing an index's images


@dataclasses.dataclass
class Collection:
    items: list[Item]
    codes: np.ndarray  # uint8 [n, nbytes], aligned with items
    errors: list[tuple[str, str]]
    vectors: np.ndarray | None = None  # float32, rows belong to positions ``vector_rows``
    vector_rows: np.ndarray | None = None
    roots: list[str] = dataclasses.field(default_factory=list)  # scanned roots (folders mode)
    aliases: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, path of the same file)


def fold_aliases(items: Sequence[Item]) -> tuple[list[int], list[Item], list[tuple[str, str]]]:
    """One item per file: of paths reaching the same device and inode, the one without a symlink on the
    way (else the first) stands for the image and lists the others as its ``aliases``.

    Returns the positions kept, their items, and (alias, kept path) pairs. A path reaching nothing now
    (a stale catalog row) stays as it is.
    """
    by_file: dict[object, list[int]] = {}
    for k, it in enumerate(items):
        by_file.setdefault(file_id(it.path) or ("unreachable", k), []).append(k)
    kept: list[int] = []
    aliases: list[tuple[str, str]] = []
    out: dict[int, Item] = {}
    for members in by_file.values():
        main = min(members, key=lambda k: (not is_direct(items[k].path), items[k].path))
        others = tuple(sorted(items[k].path for k in members if k != main))
        kept.append(main)
        out[main] = dataclasses.replace(items[main], aliases=others) if others else items[main]
        aliases += [(a, items[main].path) for a in others]
    kept.sort()
    return kept, [out[k] for k in kept], sorted(aliases)


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
    kept, items, aliases = fold_aliases(items)
    ids = table.ids[kept]
    col = Collection(items, table.codes[kept], errors, aliases=aliases)
    if opts.embeddings:
        if store.manifest is None:
            raise RetrError(f"the index at {store.dir} has no vectors: build it before using --embeddings")
        with_vec = np.array([k for k, i in enumerate(ids) if rows[int(i)].has_vector], dtype=np.int64)
        col.vector_rows = with_vec
        col.vectors = store.catalog.vectors_for(ids[with_vec].tolist(), store.dim) if len(with_vec) \
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
    kept, items, aliases = fold_aliases(items)
    items = [dataclasses.replace(it, id=k) for k, it in enumerate(items)]  # ids stay positions
    codes = [codes[k] for k in kept]
    col = Collection(items, np.stack(codes) if codes else np.zeros((0, nbytes), np.uint8), errors,
                     roots=[str(Path(p).resolve()) for p in paths], aliases=aliases)
    if opts.embeddings and items:
        if model is None:
            raise RetrError("--embeddings on folders needs a model to embed them")
        from retrieval.embed import embed_files
        from retrieval.runtimes.settings import InferenceSettings
        pos = {it.path: k for k, it in enumerate(items)}
        rows, vecs = [], []
        settings = InferenceSettings(runtime=opts.runtime, precision=opts.precision)
        for batch in embed_files(model, [it.path for it in items], settings=settings, progress=progress):
            rows += [pos[batch.paths[i]] for i in batch.ok]
            vecs.append(batch.vectors)
        col.vector_rows = np.asarray(rows, dtype=np.int64)
        col.vectors = np.concatenate(vecs) if vecs else None
    return col
