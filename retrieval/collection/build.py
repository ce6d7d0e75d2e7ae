"""`retr index build`: scan folders, embed new or changed files, keep catalog and faiss file in step.

Each batch is committed to the catalog in its own transaction (vectors included), so an interrupted
build keeps every finished batch; the next build embeds only what is still missing and the faiss file
is rebuilt from the catalog.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from index.ann.factory import check_index_type
from index.manifest import Manifest, ids_digest, model_key, write_manifest
from index.catalog.schema import STATUS_ERROR, STATUS_OK
from index.directory import IndexStore
from retrieval.embed import Embedder, ExtractBatch, embed_files
from retrieval.progress import stage_progress
from retrieval.images.decode import FileInfo, scan
from retrieval.collection.model import index_model
from retrieval.regions.build import RegionReport, build_regions, region_options_for
from retrieval.regions.settings import RegionOptions
from retrieval.runtimes.settings import InferenceSettings

if TYPE_CHECKING:
    from retrieval.scaleout.cluster import ClusterInfo, RaySettings


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    model: str | None = None  # None: the index's model, else the default
    weights: str | None = None
    random_weights: bool = False
    index_type: str | None = None  # None: keep the index's type (auto for a new index)
    db_url: str | None = None
    inference: InferenceSettings = InferenceSettings()  # device, runtime, precision, batch size, workers
    progress: bool = False
    regions: RegionOptions | None = None  # also build (or change) the region index
    ray: RaySettings | None = None  # embed on a Ray cluster (retrieval.scaleout) instead of this process


@dataclasses.dataclass
class BuildReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    total: int = 0
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    factory: str = ""
    regions: RegionReport | None = None  # when the index has regions
    repaired: list[str] = dataclasses.field(default_factory=list)  # damage found and repaired, as said

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed, "total": self.total,
                "skipped": [{"path": p, "error": e} for p, e in self.skipped],
                **({"regions": self.regions.to_json()} if self.regions is not None else {}),
                **({"repaired": self.repaired} if self.repaired else {})}


def _identity(embedder: Embedder, weights: str | None) -> dict[str, Any]:
    identity = dict(embedder.identity)
    if weights:
        identity["weights_file"] = str(Path(weights).resolve())
    return identity


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def plan(files: Sequence[FileInfo], rows: dict, roots: Sequence[str], unlisted: Sequence[str]):
    """(todo files, ids of rows to remove, unchanged count) for a scan against the catalog."""
    todo, unchanged = [], 0
    for f in files:
        row = rows.get(f.path)
        fresh = row is not None and row.mtime == f.mtime and row.bytes == f.bytes and (
            (row.status == STATUS_OK and row.has_vector) or row.status == STATUS_ERROR)
        if fresh:
            unchanged += 1
        else:
            todo.append(f)
    seen = {f.path for f in files}
    removed = [row.id for path, row in rows.items()
               if path not in seen and _under(path, roots) and not _under(path, unlisted)]
    return todo, removed, unchanged


def build_index(paths: Sequence[str | Path], index_dir: str | Path, opts: BuildOptions = BuildOptions(),
                *, on_batch: Callable[[int], None] | None = None) -> BuildReport:
    """Index (or update the index of) every image under ``paths``."""
    start = time.perf_counter()
    roots = [os.path.abspath(os.fspath(p)) for p in paths]
    found = scan(roots)  # raises for a path that does not exist, before anything is written
    with _cluster(opts, roots, found.files) as cluster:
        report = _build(found, roots, index_dir, opts, cluster, on_batch)
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _cluster(opts: BuildOptions, roots: Sequence[str], files: Sequence[FileInfo]) -> Iterator[ClusterInfo | None]:
    """The Ray cluster a ``--ray`` build runs on, connected and checked (every node reads the images) before
    the index is opened: an unreachable cluster or unshared paths write nothing."""
    if opts.ray is None:
        yield None
        return
    from retrieval.scaleout.cluster import connected
    with connected(opts.ray, roots, [f.path for f in files]) as cluster:
        yield cluster


def _build(found, roots: Sequence[str], index_dir: str | Path, opts: BuildOptions, cluster: ClusterInfo | None,
           on_batch: Callable[[int], None] | None) -> BuildReport:
    # the writer lock and the read-only check come before the model is loaded or anything embedded
    with IndexStore.open(index_dir, opts.db_url, mode="create", command="retr index build") as store:
        # the model's checked export is found (no torch), or the model loads; its runtime opens later, while
        # the decode workers start on the first batches
        embedder = Embedder(index_model(store, opts.model, opts.weights, opts.random_weights), opts.inference,
                            lazy=True)
        identity = _identity(embedder, opts.weights)
        index_type = opts.index_type or (store.manifest.index_type if store.manifest else "auto")
        check_index_type(index_type, embedder.dim)  # before anything is embedded or recorded
        damage = _start_manifest(store, identity, embedder.dim, index_type)

        rows = store.catalog.image_rows()
        todo, removed, unchanged = plan(found.files, rows, roots, [p for p, _ in found.errors])
        report = BuildReport(unchanged=unchanged)
        if removed:
            report.removed = store.catalog.delete_images(removed)
        if todo:
            _embed_new(store, embedder, todo, rows, opts, report, on_batch, cluster)

        if report.added or report.updated or report.removed or not store.consistent() \
                or index_type != store.manifest.index_type or store.manifest.checksum is None:
            store.rebuild(index_type=index_type, model=identity, map_shards=_shard_mapper(cluster, store),
                          progress=stage_progress(opts.progress))
        if damage is not None:
            store.note(f"{damage}: rebuilt it from the catalog's {store.manifest.vectors} vectors")
        report.total = store.manifest.vectors
        report.factory = store.manifest.factory
        scanned = {f.path for f in found.files}
        report.skipped = [(p, e) for p, e in store.catalog.errors() if p in scanned] + list(found.errors)
        if (regions := region_options_for(store, opts.regions)) is not None:
            report.regions = build_regions(store, embedder, regions, progress=opts.progress)
        report.repaired = list(store.repairs)
    return report


def _shard_mapper(cluster: ClusterInfo | None, store: IndexStore):
    """Where an on-disk IVF rebuild fills its shards: Ray tasks with ``--ray``, else worker processes (None)."""
    if cluster is None:
        return None
    from retrieval.scaleout.tasks import shard_mapper_for
    return shard_mapper_for(cluster, store.dir, store.catalog.url)


def _start_manifest(store: IndexStore, identity: dict[str, Any], dim: int, index_type: str) -> str | None:
    """Record the model before the first vector is stored; return the damage found in the faiss file, if any."""
    damage = store.file_problem() if store.manifest is not None else None
    if damage is not None and store.manifest.vectors == 0 and store.manifest.checksum is None:
        damage = None  # a first build that stopped before its first faiss file: nothing was damaged
    if store.manifest is None:
        # without a manifest, the catalog's vectors of another (or an unknown) model are embedded again
        if stale := store.catalog.forget_vectors_not_of(model_key(identity)):
            store.note(f"the index has no manifest and {stale} catalog vector(s) were made by another "
                       f"model (or an unknown one): they are embedded again with {identity['spec']}")
        store.manifest = Manifest(model=identity, dim=dim, factory="Flat", index_type=index_type,
                                  vectors=0, ids_digest=ids_digest([]))
        write_manifest(store.dir, store.manifest)
    return damage


def _embed_new(store: IndexStore, embedder: Embedder, todo: Sequence[FileInfo], rows: dict, opts: BuildOptions,
               report: BuildReport, on_batch: Callable[[int], None] | None, cluster: ClusterInfo | None = None
               ) -> None:
    """Embed the new and changed files, one catalog transaction per batch, counting them in ``report``."""
    made_by = model_key(_identity(embedder, opts.weights))
    info = {f.path: f for f in todo}
    names = [f.path for f in todo]
    if cluster is not None:
        from retrieval.scaleout.pipeline import ray_embed_files
        batches = ray_embed_files(embedder, names, cluster, opts.ray, model_key=made_by, progress=opts.progress)
    else:
        batches = embed_files(None, names, progress=opts.progress, embedder=embedder)
    for batch in batches:
        records = _records(batch, info, made_by)
        store.catalog.write_images(records)
        for rec in records:
            if rec["status"] == STATUS_OK:
                if rec["path"] in rows:
                    report.updated += 1
                else:
                    report.added += 1
        if on_batch is not None:
            on_batch(len(records))


def _records(batch: ExtractBatch, info: dict[str, FileInfo], made_by: str) -> list[dict[str, Any]]:
    """Catalog rows of one embedded batch: a vector per decoded file, the reason for each failure."""
    records = []
    for pos, i in enumerate(batch.ok):
        path = batch.paths[i]
        records.append({"path": path, **batch.infos[pos], "mtime": info[path].mtime, "status": STATUS_OK,
                        "error": None, "vector": batch.vectors[pos], "model": made_by})
    for path, reason in batch.errors:
        records.append({"path": path, "sha256": None, "bytes": info[path].bytes, "width": None, "height": None,
                        "mtime": info[path].mtime, "status": STATUS_ERROR, "error": reason, "vector": None})
    return records
