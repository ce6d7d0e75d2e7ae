"""Where the images to deduplicate come from: an index directory's catalog, or folders scanned now.

From an index, hashes and per-image features are read from the catalog and only missing or stale ones
are computed (then stored); from folders, every file is read once in this run (nothing is written).
Either way, paths that reach the same file (device and inode: a symlink and its target, hard links) are
one image. Verifying needs the features (retrieval.dedupe.features); --no-verify needs the hash only.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from index.errors import RetrError
from index.catalog.features import load_feature_heads, load_features, pending_features, store_features
from index.catalog.hashes import load_hashes, pending_hashes, store_hashes
from index.directory import IndexStore
from retrieval.dedupe.features import HEAD_BYTES, RECIPE, FeatureJob, Features, compute_features, head_of
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
    feats: list[Features] | None = None  # aligned with items, when verifying


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


def _feature_job(opts: DedupeOptions) -> FeatureJob:
    return FeatureJob(opts.hash, int(opts.hash_size))


def ensure_features(store: IndexStore, opts: DedupeOptions, *, workers: int | None = None,
                    progress: bool = False, mapper=None) -> list[tuple[str, str]]:
    """Compute and store the features (and hashes) of the catalog's images that have none current; returns
    the files that could not be read. Work is proportional to the images that are new or changed."""
    opts = opts.validated()
    todo = pending_features(store.catalog, RECIPE)
    errors: list[tuple[str, str]] = []
    by_path = {p.path: p for p in todo}
    paths = list(by_path)
    for start in range(0, len(paths), STORE_BATCH):
        feats, hashes = [], []
        for f in compute_features(paths[start:start + STORE_BATCH], _feature_job(opts), workers=workers,
                                  progress=progress, mapper=mapper):
            row = by_path[f.path]
            if f.error is not None or f.bits is None:
                errors.append((f.path, f.error or "cannot hash"))
            elif f.sha256 != row.sha256:  # its row and vector describe other content
                errors.append((f.path, "changed since it was indexed; run `retr index build` first"))
            else:
                feats.append((row.id, row.sha256, f.to_bytes()))
                hashes.append((row.id, f.bits, row.sha256))
        store_features(store.catalog, RECIPE, feats)
        store_hashes(store.catalog, opts.hash, opts.hash_size, hashes)
    return errors


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
               progress: bool = False, mapper=None) -> Collection:
    """The catalog's images with their hashes and (verifying) features, computing what is missing through
    ``mapper`` (shaped like retrieval.workers.ordered_map, its default)."""
    opts = opts.validated()
    errors = ensure_features(store, opts, workers=workers, progress=progress, mapper=mapper) if opts.verify else []
    errors += ensure_hashes(store, opts, workers=workers, progress=progress)
    hasher_bytes = (_job(opts).hasher().nbytes(opts.hash_size))
    table = load_hashes(store.catalog, opts.hash, opts.hash_size, hasher_bytes)
    blobs = load_features(store.catalog, RECIPE) if opts.verify else {}
    if opts.verify:  # an image whose features could not be made is an error already
        with_feats = np.array([k for k, i in enumerate(table.ids) if int(i) in blobs], dtype=np.int64)
        table = dataclasses.replace(table, ids=table.ids[with_feats], codes=table.codes[with_feats])
    rows = store.catalog.rows_by_id(table.ids)
    items = [Item(int(i), rows[int(i)].path, rows[int(i)].sha256, rows[int(i)].bytes, rows[int(i)].width,
                  rows[int(i)].height, rows[int(i)].mtime) for i in table.ids]
    kept, items, aliases = fold_aliases(items)
    ids = table.ids[kept]
    col = Collection(items, table.codes[kept], errors, aliases=aliases)
    if opts.verify:
        col.feats = [Features.from_bytes(blobs[it.id], it.path, it.sha256, it.bytes, code.tobytes())
                     for it, code in zip(items, col.codes)]
    if opts.embeddings:
        if store.manifest is None:
            raise RetrError(f"the index at {store.dir} has no vectors: build it before using --embeddings")
        with_vec = np.array([k for k, i in enumerate(ids) if rows[int(i)].has_vector], dtype=np.int64)
        col.vector_rows = with_vec
        col.vectors = store.catalog.vectors_for(ids[with_vec].tolist(), store.dim) if len(with_vec) \
            else np.zeros((0, store.dim), np.float32)
    return col


def from_paths(paths: Sequence[str | Path], opts: DedupeOptions, *, workers: int | None = None,
               progress: bool = False, model=None, mapper=None) -> Collection:
    """Scan and hash files now; ``model`` (a LoadedModel) embeds them too when --embeddings is on."""
    opts = opts.validated()
    found = scan([str(p) for p in paths])
    mtimes = {f.path: f.mtime for f in found.files}
    items, codes, feats, errors = [], [], [], list(found.errors)
    files = [f.path for f in found.files]
    results = (compute_features(files, _feature_job(opts), workers=workers, progress=progress, mapper=mapper)
               if opts.verify
               else hash_files(files, _job(opts), workers=workers, progress=progress))
    for res in results:
        if res.bits is None:
            errors.append((res.path, res.error or "cannot hash"))
            continue
        items.append(Item(len(items), res.path, res.sha256, res.bytes, res.width, res.height, mtimes[res.path]))
        codes.append(np.frombuffer(res.bits, dtype=np.uint8))
        feats.append(res)
    nbytes = _job(opts).hasher().nbytes(opts.hash_size)
    kept, items, aliases = fold_aliases(items)
    items = [dataclasses.replace(it, id=k) for k, it in enumerate(items)]  # ids stay positions
    codes = [codes[k] for k in kept]
    col = Collection(items, np.stack(codes) if codes else np.zeros((0, nbytes), np.uint8), errors,
                     roots=[str(Path(p).resolve()) for p in paths], aliases=aliases,
                     feats=[feats[k] for k in kept] if opts.verify else None)
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


@dataclasses.dataclass
class CheckView:
    """What `retr dedupe --check` needs of every catalog image: ids, hashes and (verifying) each image's
    thumbnail and low-information measures; items and full features are read for its candidates only."""

    ids: np.ndarray
    codes: np.ndarray
    heads: list[Features] | None  # head_of each stored form: thumbnail, low_info (no keypoints)
    errors: list[tuple[str, str]]

    def items(self, store: IndexStore, positions: Sequence[int]) -> dict[int, Item]:
        rows = store.catalog.rows_by_id([int(self.ids[k]) for k in positions])
        return {k: Item(int(self.ids[k]), rows[int(self.ids[k])].path, rows[int(self.ids[k])].sha256,
                        rows[int(self.ids[k])].bytes, rows[int(self.ids[k])].width, rows[int(self.ids[k])].height,
                        rows[int(self.ids[k])].mtime) for k in positions if int(self.ids[k]) in rows}

    def features(self, store: IndexStore, items: dict[int, Item]) -> dict[int, Features]:
        blobs = load_features(store.catalog, RECIPE, [it.id for it in items.values()])
        return {k: Features.from_bytes(blobs[it.id], it.path, it.sha256, it.bytes, self.codes[k].tobytes())
                for k, it in items.items() if it.id in blobs}


def check_view(store: IndexStore, opts: DedupeOptions, *, workers: int | None = None, progress: bool = False,
               mapper=None) -> CheckView:
    """The catalog for --check: features and hashes computed for images that have none (then stored), and
    of each image only what candidates need (the first HEAD_BYTES of its stored features)."""
    opts = opts.validated()
    errors = ensure_features(store, opts, workers=workers, progress=progress, mapper=mapper) if opts.verify else []
    errors += ensure_hashes(store, opts, workers=workers, progress=progress)
    table = load_hashes(store.catalog, opts.hash, opts.hash_size, _job(opts).hasher().nbytes(opts.hash_size))
    if not opts.verify:
        return CheckView(table.ids, table.codes, None, errors)
    heads = load_feature_heads(store.catalog, RECIPE, HEAD_BYTES)
    keep = np.array([k for k, i in enumerate(table.ids) if int(i) in heads], dtype=np.int64)
    ids = table.ids[keep] if len(keep) else table.ids[:0]
    return CheckView(ids, table.codes[keep] if len(keep) else table.codes[:0],
                     [head_of(heads[int(i)]) for i in ids], errors)
