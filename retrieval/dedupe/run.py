"""The dedupe operations the CLI calls: find (in an index or in folders), act, undo, check one image."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.errors import RetrError
from index.catalog.hashes import ids_with_sha256
from index.directory import IndexStore
from retrieval.dedupe.actions import ActionReport, CatalogLink, delete_duplicates, move_duplicates, undo
from retrieval.dedupe.candidates import Candidates, hash_neighbours, thumbnail_neighbours
from retrieval.dedupe.collection import CheckView, Collection, check_view, from_index, from_paths
from retrieval.dedupe.finder import THUMB_SURE, DedupeResult, Duplicate, Item, Link, find_duplicates
from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.parallel_hashing import HashJob, hash_file
from retrieval.dedupe.manifest import read_manifest
from retrieval.dedupe.reasons import Reason
from retrieval.images.decode import shown
from retrieval.progress import stage_progress


@dataclasses.dataclass(frozen=True)
class Action:
    move_to: str | None = None
    manifest: str | None = None
    delete: bool = False
    yes: bool = False
    include_similar: bool = False  # act on other shots of one scene too (only copies otherwise)

    def check(self) -> None:
        if self.move_to and self.delete:
            raise RetrError("choose one of --move-to and --delete")
        if self.delete and not self.yes:
            raise RetrError("--delete removes files for good: add --yes to confirm (or use --move-to DIR)")
        if self.move_to and os.path.lexists(self.move_to) and not os.path.isdir(self.move_to):
            raise RetrError(f"--move-to {shown(self.move_to)} is not a folder")


def _find(col: Collection, opts: DedupeOptions, workers: int | None = None, progress: bool = False,
          mapper=None) -> DedupeResult:
    return find_duplicates(col.items, col.codes, opts, col.vectors, col.vector_rows, col.errors, col.aliases,
                           feats=col.feats, workers=workers, progress=progress, mapper=mapper)


PIPELINE = "kinds-v1"  # what a stored result was made by: changes with the candidate and verification rules


def _find_stored(store: IndexStore, opts: DedupeOptions, workers: int | None, progress: bool,
                 mapper=None) -> DedupeResult:
    """An index's duplicates, reusing what earlier runs stored: the whole result when neither the catalog
    nor the options changed; else the verdicts of every pair of file contents already matched (so a run
    after new images matches only the pairs they bring)."""
    import hashlib
    import json
    from index.catalog.dedupe_cache import forget_cached, load_cached, store_cached
    from retrieval.dedupe.features import RECIPE
    opts = opts.validated()
    if not opts.verify or opts.embeddings:  # vectors can change under an unchanged file: nothing reused
        return _find(from_index(store, opts, workers=workers, progress=progress, mapper=mapper), opts, workers,
                     progress, mapper)
    rows = sorted((r.id, r.path, r.sha256, r.bytes, r.width, r.height, r.mtime, r.status)
                  for r in store.catalog.image_rows().values())
    setting = json.dumps([PIPELINE, RECIPE, dataclasses.asdict(opts)], sort_keys=True)
    run_key = "run:" + hashlib.sha256(json.dumps([setting, rows]).encode()).hexdigest()
    memo = load_cached(store.catalog, run_key)
    if memo is not None:
        return _result_from(memo, store, opts)
    pairs_key = "pairs:" + hashlib.sha256(setting.encode()).hexdigest()
    verdicts = load_cached(store.catalog, pairs_key) or {}
    col = from_index(store, opts, workers=workers, progress=progress, mapper=mapper)
    result = find_duplicates(col.items, col.codes, opts, col.vectors, col.vector_rows, col.errors, col.aliases,
                             feats=col.feats, verdicts=verdicts, workers=workers, progress=progress,
                             mapper=mapper)
    store_cached(store.catalog, pairs_key, verdicts)
    forget_cached(store.catalog, "run:")  # one stored result: the latest
    store_cached(store.catalog, run_key, {"json": result.to_json(), "links": result.links,
                                          "similar_links": result.similar_links, "errors": result.errors,
                                          "verified_pairs": result.verified_pairs,
                                          "camera": {it.path: it.camera for g in result.groups + result.similar
                                                     for it in (g.keep, *(d.item for d in g.duplicates))}})
    return result


def _result_from(memo: dict[str, Any], store: IndexStore, opts: DedupeOptions) -> DedupeResult:
    """A stored result, its images read from the catalog again (and their aliases from the disk)."""
    from retrieval.dedupe.collection import fold_aliases
    from retrieval.dedupe.finder import Group, LowInfo, Unverified
    rows = store.catalog.image_rows()
    camera = memo["camera"]
    every = [Item(r.id, r.path, r.sha256, r.bytes, r.width, r.height, r.mtime, camera=camera.get(r.path))
             for r in rows.values()]
    _, items, aliases = fold_aliases(every)
    by_path = {**{it.path: it for it in every}, **{it.path: it for it in items}}  # with today's aliases

    def group(g: dict[str, Any]) -> Group:
        return Group(by_path[g["keep"]], tuple(Duplicate(by_path[d["path"]], d["distance"], Reason(d["reason"]),
                                                         d["inliers"]) for d in g["duplicates"]))
    data = memo["json"]
    return DedupeResult(data["n_images"], [group(g) for g in data["groups"]], opts,
                        [tuple(e) for e in memo["errors"]], aliases,
                        [LowInfo(by_path[x["path"]], x["reason"]) for x in data["low_information"]],
                        [Unverified(by_path[u["paths"][0]], by_path[u["paths"][1]], u["distance"], u["reason"])
                         for u in data["unverified"]], memo["verified_pairs"],
                        [tuple(p) for p in memo["links"]], [group(g) for g in data["similar"]],
                        [tuple(p) for p in memo["similar_links"]])


def _act(result: DedupeResult, action: Action, link: CatalogLink | None, root: str | None) -> ActionReport | None:
    groups = result.acted_on(action.include_similar)
    if action.move_to:
        return move_duplicates(groups, action.move_to, root=root, manifest=action.manifest, catalog=link)
    if action.delete:
        return delete_duplicates(groups, yes=action.yes, catalog=link)
    return None


def _store_link(store: IndexStore) -> CatalogLink:
    return CatalogLink(store.catalog, store.manifest.dim if store.manifest else None, str(Path(store.dir).resolve()))


def dedupe_index(index_dir: str | Path, opts: DedupeOptions, action: Action = Action(), *,
                 db_url: str | None = None, workers: int | None = None, progress: bool = False,
                 mapper=None) -> tuple[DedupeResult, ActionReport | None]:
    """Find duplicates among an index's images (hashing only what is new) and apply ``action``. Feature
    extraction and verification run through ``mapper`` (default retrieval.workers.ordered_map over
    ``workers`` processes; any callable of its shape: ``mapper(fn, tasks, shared=..., workers=...)`` yielding
    ``fn(shared, *task)`` in task order)."""
    action.check()
    acts = bool(action.move_to or action.delete)  # an action writes the catalog: it takes the writer lock
    with IndexStore.open(index_dir, db_url, mode="write" if acts else "read") as store:
        result = _find_stored(store, opts, workers, progress, mapper)
        report = _act(result, action, _store_link(store), None)
        if report is not None and report.catalog_rows:
            store.reconcile(progress=stage_progress(progress))  # the faiss file follows the catalog
    return result, report


def dedupe_paths(paths: Sequence[str | Path], opts: DedupeOptions, action: Action = Action(), *,
                 workers: int | None = None, progress: bool = False, model_spec: str | None = None,
                 mapper=None) -> tuple[DedupeResult, ActionReport | None]:
    """Find duplicates among the images under ``paths`` (scanned and hashed now) and apply ``action``
    (``mapper`` as for ``dedupe_index``)."""
    action.check()
    model = None
    if opts.embeddings:
        from retrieval.models import DEFAULT_MODEL
        from retrieval.models.identity import ModelName, ModelRef
        model = ModelRef(ModelName(model_spec or DEFAULT_MODEL))  # loaded only when its export is not cached
    col = from_paths(paths, opts, workers=workers, progress=progress, model=model, mapper=mapper)
    result = _find(col, opts, workers, progress, mapper)
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


def check_image(image: str | Path, index_dir: str | Path, opts: DedupeOptions, *, db_url: str | None = None,
                workers: int | None = None, progress: bool = False, mapper=None) -> list[Duplicate]:
    """Catalogued images that ``image`` duplicates, each with its kind: the same bytes, an edited copy, or
    (verifying) another shot of the same scene. The pipeline of a dedupe run: the catalog's stored features
    (computed for any image that has none), candidates from the hash at the loose radius, the nearest
    thumbnails and with --embeddings the embedding neighbours, then the same verification. Of each catalog
    image only its hash and the head of its stored features (thumbnail, low-information measures) are read;
    the whole features of the candidates only. A low-information image matches only exact copies."""
    opts = opts.validated()
    image = str(Path(image).resolve())
    if not os.path.isfile(image):
        raise RetrError(f"no such image: {image}")
    query = _query_features(image, opts)
    found: dict[str, Duplicate] = {}
    with IndexStore.open(index_dir, db_url) as store:
        paths = ids_with_sha256(store.catalog, query.sha256)
        found.update((p, Duplicate(_item(store, i), 0, Reason.EXACT)) for i, p in paths.items() if p != image)
        view = check_view(store, dataclasses.replace(opts, embeddings=False), workers=workers, progress=progress,
                          mapper=mapper)
        cand = _query_candidates(store, view, query, opts)
        items = view.items(store, sorted(cand.signals))
        feats = view.features(store, items) if opts.verify else {}
    for k, link in _query_links(cand, view, items, feats, query, opts, workers, mapper).items():
        it = items[k]
        if it.path not in found and it.path != image and link.reason.links:
            found[it.path] = Duplicate(it, link.distance, link.reason, link.inliers)
    return sorted(found.values(), key=lambda d: (d.reason != Reason.EXACT, d.kind.value, d.distance, d.path))


def _item(store: IndexStore, image_id: int) -> Item:
    r = store.catalog.rows_by_id([image_id])[image_id]
    return Item(r.id, r.path, r.sha256, r.bytes, r.width, r.height, r.mtime)


def _query_features(image: str, opts: DedupeOptions):
    if opts.verify:
        from retrieval.dedupe.features import FeatureJob, features_of
        q = features_of(image, FeatureJob(opts.hash, int(opts.hash_size)))
        error = q.error
    else:
        q = hash_file(image, HashJob(opts.hash, opts.hash_size))
        error = q.error if q.bits is None else None
    if error is not None or q.bits is None:
        raise RetrError(f"{shown(image)}: {error or 'cannot hash'}")
    return q


def _query_candidates(store: IndexStore, view: CheckView, query, opts: DedupeOptions) -> Candidates:
    """Candidates of the one query image against the catalog: position -> signals (the candidate stage,
    with the query on one side of every pair)."""
    cand = Candidates({}, set(), {}, {}, {})
    q = np.frombuffer(query.bits, dtype=np.uint8)
    if len(view.codes):
        pos, _ = hash_neighbours(view.codes, q, opts)
        cand.add((int(k) for k in pos), "hash")
    if opts.verify and view.heads:
        scores, pos = thumbnail_neighbours(np.stack([f.thumb for f in view.heads]), query.thumb[None, :])
        for k, sc in zip(pos[0].tolist(), scores[0].tolist()):
            if k >= 0 and sc >= THUMB_SURE / 2:
                cand.add([k], "thumbnail")
                cand.thumb[k] = sc
    if opts.embeddings:
        from retrieval.collection.model import index_model
        from retrieval.embed import embed_images
        from retrieval.images.decode import load_image
        from retrieval.runtimes.settings import InferenceSettings
        vec = embed_images(index_model(store), [load_image(query.path)],
                           settings=InferenceSettings(runtime=opts.runtime, precision=opts.precision))
        at = {int(i): k for k, i in enumerate(view.ids)}
        for hit in store.search(vec, k=50)[0]:
            if hit.score >= opts.similarity and hit.id in at:
                cand.add([at[hit.id]], "embedding")
                cand.cosine[at[hit.id]] = round(max(0.0, 1.0 - hit.score), 4)
    return cand


def _query_links(cand: Candidates, view: CheckView, items: dict[int, Item], feats: dict[int, Any], query,
                 opts: DedupeOptions, workers: int | None, mapper=None) -> dict[int, Link]:
    """The verification stage for the query's pairs (all of them: there are a few dozen at most)."""
    from index.hamming import hamming
    q = np.frombuffer(query.bits, dtype=np.uint8)[None, :]
    dist = {k: int(hamming(view.codes[k:k + 1], q)[0]) for k in cand.signals if k in items}
    if not opts.verify:
        return {k: Link(Reason.HASH, dist[k]) if "hash" in s else Link(Reason.EMBEDDING, cand.cosine[k])
                for k, s in cand.signals.items() if k in items}
    from retrieval.dedupe.verify import verify_pairs
    if query.low_info:
        return {}
    ks = sorted(k for k in cand.signals if k in feats and not feats[k].low_info)
    both = [query, *(feats[k] for k in ks)]
    verdicts = verify_pairs([(0, n) for n in range(1, len(both))], both, thresholds=opts.thresholds(),
                            workers=workers, mapper=mapper)
    return {k: Link(v.reason, dist[k], v.inliers if v.reason in (Reason.VERIFIED, Reason.OTHER_SHOT) else None)
            for k, v in zip(ks, verdicts)}
