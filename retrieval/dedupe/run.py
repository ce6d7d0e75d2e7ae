"""The dedupe operations the CLI calls: find (in an index or in folders), act, undo, check one image."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.hamming import search_within
from index.errors import RetrError
from index.catalog.hashes import ids_with_sha256, load_hashes
from index.directory import IndexStore
from retrieval.dedupe.actions import ActionReport, CatalogLink, delete_duplicates, move_duplicates, undo
from retrieval.dedupe.collection import Collection, ensure_hashes, from_index, from_paths
from retrieval.dedupe.finder import EMBEDDING, EXACT, NEIGHBOURS, VERIFIED, DedupeResult, find_duplicates
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.parallel_hashing import HashJob, hash_file
from retrieval.dedupe.manifest import read_manifest
from retrieval.images.decode import shown


@dataclasses.dataclass(frozen=True)
class Action:
    move_to: str | None = None
    manifest: str | None = None
    delete: bool = False
    yes: bool = False

    def check(self) -> None:
        if self.move_to and self.delete:
            raise RetrError("choose one of --move-to and --delete")
        if self.delete and not self.yes:
            raise RetrError("--delete removes files for good: add --yes to confirm (or use --move-to DIR)")
        if self.move_to and os.path.lexists(self.move_to) and not os.path.isdir(self.move_to):
            raise RetrError(f"--move-to {shown(self.move_to)} is not a folder")


def _find(col: Collection, opts: DedupeOptions, workers: int | None = None, progress: bool = False) -> DedupeResult:
    return find_duplicates(col.items, col.codes, opts, col.vectors, col.vector_rows, col.errors, col.aliases,
                           workers=workers, progress=progress)


def _act(result: DedupeResult, action: Action, link: CatalogLink | None, root: str | None) -> ActionReport | None:
    if action.move_to:
        return move_duplicates(result.groups, action.move_to, root=root, manifest=action.manifest, catalog=link)
    if action.delete:
        return delete_duplicates(result.groups, yes=action.yes, catalog=link)
    return None


def _store_link(store: IndexStore) -> CatalogLink:
    return CatalogLink(store.catalog, store.manifest.dim if store.manifest else None, str(Path(store.dir).resolve()))


def dedupe_index(index_dir: str | Path, opts: DedupeOptions, action: Action = Action(), *,
                 db_url: str | None = None, workers: int | None = None,
                 progress: bool = False) -> tuple[DedupeResult, ActionReport | None]:
    """Find duplicates among an index's images (hashing only what is new) and apply ``action``."""
    action.check()
    acts = bool(action.move_to or action.delete)  # an action writes the catalog: it takes the writer lock
    with IndexStore.open(index_dir, db_url, mode="write" if acts else "read") as store:
        result = _find(from_index(store, opts, workers=workers, progress=progress), opts, workers, progress)
        report = _act(result, action, _store_link(store), None)
        if report is not None and report.catalog_rows:
            store.reconcile()  # the faiss file follows the catalog
    return result, report


def dedupe_paths(paths: Sequence[str | Path], opts: DedupeOptions, action: Action = Action(), *,
                 workers: int | None = None, progress: bool = False,
                 model_spec: str | None = None) -> tuple[DedupeResult, ActionReport | None]:
    """Find duplicates among the images under ``paths`` (scanned and hashed now) and apply ``action``."""
    action.check()
    model = None
    if opts.embeddings:
        from retrieval.models import DEFAULT_MODEL
        from retrieval.models.identity import ModelName, ModelRef
        model = ModelRef(ModelName(model_spec or DEFAULT_MODEL))  # loaded only when its export is not cached
    col = from_paths(paths, opts, workers=workers, progress=progress, model=model)
    result = _find(col, opts, workers, progress)
    roots = [r if os.path.isdir(r) else os.path.dirname(r) for r in col.roots]
    root = os.path.commonpath(roots) if roots else None
    return result, _act(result, action, None, root)


def undo_manifest(manifest: str | Path, *, index_dir: str | Path | None = None,
                  db_url: str | None = None) -> ActionReport:
    """Reverse a --move-to run; the catalog rows come back too when its index is known."""
    if index_dir is None and db_url is None:  # the manifest's own header names its index, if any
        index_dir = read_manifest(manifest)[0].get("index")
    if index_dir is None and db_url is None:
        return undo(manifest)
    with IndexStore.open(index_dir, db_url, mode="write") as store:
        report = undo(manifest, catalog=_store_link(store))
        if report.catalog_rows:
            store.reconcile()
    return report


@dataclasses.dataclass(frozen=True)
class Match:
    path: str
    distance: float
    reason: str
    inliers: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "distance": self.distance, "reason": self.reason, "inliers": self.inliers}


def check_image(image: str | Path, index_dir: str | Path, opts: DedupeOptions, *, db_url: str | None = None,
                workers: int | None = None, progress: bool = False) -> list[Match]:
    """Catalogued images that ``image`` duplicates: the same bytes, or (candidates from the hash at the
    loose radius and, with --embeddings, embedding neighbours) verified with local features; only the
    candidates are decoded. A low-information image matches only exact copies."""
    opts = opts.validated()
    image = str(Path(image).resolve())
    if not os.path.isfile(image):
        raise RetrError(f"no such image: {image}")
    res = hash_file(image, HashJob(opts.hash, opts.hash_size))
    if res.bits is None:
        raise RetrError(f"{image}: {res.error}")
    matches: dict[str, Match] = {}
    with IndexStore.open(index_dir, db_url) as store:
        for path in ids_with_sha256(store.catalog, res.sha256).values():
            matches[path] = Match(path, 0, EXACT)
        ensure_hashes(store, opts, workers=workers, progress=progress)
        nbytes = HashJob(opts.hash, opts.hash_size).hasher().nbytes(opts.hash_size)
        table = load_hashes(store.catalog, opts.hash, opts.hash_size, nbytes)
        q = np.frombuffer(res.bits, dtype=np.uint8)[None, :]
        _, pos, dist = search_within(table.codes, q, opts.candidate_radius(), method=opts.method)
        if opts.verify:  # beyond --threshold, only the nearest few are worth decoding and verifying
            order = np.argsort(dist, kind="stable")
            keep = order[(np.arange(len(order)) < NEIGHBOURS) | (dist[order] <= opts.threshold)]
            pos, dist = pos[keep], dist[keep]
        paths = store.catalog.paths_by_id(table.ids[pos].tolist())
        for p, d in zip(pos.tolist(), dist.tolist()):
            path = paths[int(table.ids[p])]
            if path not in matches:
                matches[path] = Match(path, int(d), opts.hash)
        if opts.embeddings:
            from retrieval.embed import embed_images
            from retrieval.images.decode import load_image
            from retrieval.collection.model import index_model
            model = index_model(store)
            from retrieval.runtimes.settings import InferenceSettings
            vec = embed_images(model, [load_image(image)],
                               settings=InferenceSettings(runtime=opts.runtime, precision=opts.precision))
            for hit in store.search(vec, k=50)[0]:
                if hit.score >= opts.similarity and hit.path not in matches:
                    matches[hit.path] = Match(hit.path, round(max(0.0, 1.0 - hit.score), 4), EMBEDDING)
    matches.pop(image, None)
    if opts.verify:
        matches = _verified(image, matches, opts, workers)  # the image itself, when it is already catalogued
    return sorted(matches.values(), key=lambda m: (m.reason != EXACT, m.distance, m.path))


def _verified(image: str, matches: dict[str, Match], opts: DedupeOptions, workers: int | None) -> dict[str, Match]:
    """The exact matches, and the candidates that local features verify against ``image``."""
    from retrieval.dedupe.verify import compute_features, verify_pairs
    cands = sorted(p for p, m in matches.items() if m.reason != EXACT)
    out = {p: m for p, m in matches.items() if m.reason == EXACT}
    if not cands:
        return out
    feats = compute_features([image, *cands], workers=workers)
    if feats[image].low_info:
        return out
    order = [feats[image], *(feats[p] for p in cands)]
    pairs = [(0, k) for k in range(1, len(order))]
    for p, v in zip(cands, verify_pairs(pairs, order, thresholds=opts.thresholds(), workers=workers)):
        if v.verified and not feats[p].low_info:
            dist = matches[p].distance if matches[p].reason == opts.hash else 0
            out[p] = Match(p, dist, v.reason, v.inliers if v.reason == VERIFIED else None)
    return out
