"""`retr eval recall`: labelled images -> embeddings (a model, or an index's stored vectors) -> metrics."""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from index.errors import RetrError
from retrieval.evaluation.metrics import DEFAULT_KS, RecallReport, clustering_agreement, evaluate_embeddings
from retrieval.images.labelled import LabelledSet, read_labelled
from retrieval.runtimes.settings import InferenceSettings
from retrieval.scaleout.cluster import RaySettings


@dataclasses.dataclass(frozen=True)
class RecallOptions:
    ks: tuple[int, ...] = DEFAULT_KS
    model: str | None = None  # embed with this model (default model when no index is given)
    weights: str | None = None
    random_weights: bool = False
    index_dir: Path | None = None  # use the stored vectors of this index instead of a model
    db_url: str | None = None
    clusters: bool = False  # add NMI/AMI of the index's latest clustering run (needs index_dir)
    inference: InferenceSettings = InferenceSettings()  # device, runtime, precision, batch size, workers
    progress: bool = False
    ray: RaySettings | None = None  # embed on a Ray cluster (retrieval.scaleout)


@dataclasses.dataclass(frozen=True)
class Split:
    """Queries and gallery as labelled paths; ``gallery`` None means all against all."""

    queries: LabelledSet
    gallery: LabelledSet | None

    @classmethod
    def read(cls, data: Path | None, queries: Path | None, gallery: Path | None) -> "Split":
        if (queries is None) != (gallery is None):
            raise RetrError("--queries and --gallery go together")
        if queries is not None:
            if data is not None:
                raise RetrError("give either DATA or --queries/--gallery, not both")
            return cls(read_labelled(queries), read_labelled(gallery))
        if data is None:
            raise RetrError("no labelled data: give DATA (class folders or a path,label CSV)")
        return cls(read_labelled(data), None)

    def paths(self) -> list[str]:
        """Every distinct absolute path, queries first."""
        seen = dict.fromkeys(_abs(p) for p in self.queries.paths)
        if self.gallery is not None:
            seen.update(dict.fromkeys(_abs(p) for p in self.gallery.paths))
        return list(seen)


def _abs(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))


def _select(labelled: LabelledSet, row_of: dict[str, int]) -> tuple[np.ndarray, list[str], int]:
    """(rows into the vector table, labels, count without a vector) of a labelled set."""
    rows, labels, missing = [], [], 0
    for path, label in zip(labelled.paths, labelled.labels):
        row = row_of.get(_abs(path))
        if row is None:
            missing += 1
        else:
            rows.append(row)
            labels.append(label)
    return np.asarray(rows, dtype=np.int64), labels, missing


def evaluate_split(split: Split, vectors: np.ndarray, row_of: dict[str, int], ks: Sequence[int]
                   ) -> tuple[RecallReport, int]:
    """The report of ``split`` given a vector table and each path's row in it; and how many paths had none."""
    q_rows, q_labels, missing = _select(split.queries, row_of)
    if split.gallery is None:
        report = evaluate_embeddings(vectors[q_rows], q_labels, ks=ks)
        return report, missing
    g_rows, g_labels, g_missing = _select(split.gallery, row_of)
    where = {int(r): i for i, r in enumerate(g_rows)}
    own = np.asarray([where.get(int(r), -1) for r in q_rows], dtype=np.int64)
    report = evaluate_embeddings(vectors[q_rows], q_labels, vectors[g_rows], g_labels, ks=ks,
                                 query_in_gallery=own)
    return report, missing + g_missing


def _embed(paths: list[str], opts: RecallOptions) -> tuple[np.ndarray, dict[str, int]]:
    from retrieval.embed import Embedder
    from retrieval.models import DEFAULT_MODEL
    from retrieval.scaleout.pipeline import embedded
    from retrieval.models.identity import ModelName, ModelRef
    model = ModelRef(ModelName(opts.model or DEFAULT_MODEL, opts.weights, pretrained=not opts.random_weights))
    embedder = Embedder(model, opts.inference, lazy=True)  # no torch when the model's checked export is cached
    parts, row_of = [np.zeros((0, embedder.dim), np.float32)], {}
    with embedded(embedder, paths, opts.ray, progress=opts.progress) as batches:
        for batch in batches:
            for i in batch.ok:
                row_of[batch.paths[i]] = len(row_of)
            parts.append(batch.vectors)
    return np.concatenate(parts), row_of


def _stored(paths: list[str], opts: RecallOptions) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """(vectors, path -> row, path -> catalog id) of the paths the index holds vectors for."""
    from index.directory import IndexStore
    with IndexStore.open(opts.index_dir, opts.db_url) as store:
        rows = store.catalog.image_rows(paths)
        ids = {p: r.id for p, r in rows.items() if r.has_vector}
        ordered = [p for p in paths if p in ids]
        if not ordered:
            raise RetrError(f"none of the {len(paths)} labelled paths is in the index at {opts.index_dir} "
                            "(paths are matched as absolute paths)")
        vectors = store.vectors_for([ids[p] for p in ordered])
    return vectors, {p: i for i, p in enumerate(ordered)}, ids


def _agreement(split: Split, ids: dict[str, int], opts: RecallOptions) -> tuple[float, float]:
    from index.catalog.clusters import latest_members
    from index.directory import IndexStore
    with IndexStore.open(opts.index_dir, opts.db_url) as store:
        members = latest_members(store.catalog)
    if members is None:
        raise RetrError(f"the index at {opts.index_dir} has no clustering run: run `retr cluster` first")
    cluster_of = {m.image_id: m.cluster for m in members}
    labels, clusters = [], []
    sets = [split.queries] + ([split.gallery] if split.gallery is not None else [])
    seen: set[str] = set()
    for labelled in sets:
        for path, label in zip(labelled.paths, labelled.labels):
            path = _abs(path)
            image_id = ids.get(path)
            if path in seen or image_id not in cluster_of:
                continue
            seen.add(path)
            labels.append(label)
            clusters.append(cluster_of[image_id])
    if not labels:
        raise RetrError("none of the labelled images is in the latest clustering run")
    return clustering_agreement(labels, clusters)


def run_recall(split: Split, opts: RecallOptions = RecallOptions()) -> tuple[RecallReport, int]:
    """Evaluate ``split``: (report, number of labelled images left out for want of a vector)."""
    start = time.perf_counter()
    if opts.index_dir is not None and (opts.model or opts.weights or opts.random_weights):
        raise RetrError("give either --model (embed the images) or --index (use its stored vectors), not both")
    if opts.clusters and opts.index_dir is None:
        raise RetrError("--clusters needs --index: the clustering is read from the index's catalog")
    paths = split.paths()
    ids: dict[str, int] = {}
    if opts.index_dir is None:
        vectors, row_of = _embed(paths, opts)
    else:
        vectors, row_of, ids = _stored(paths, opts)
    embedded = time.perf_counter()
    report, missing = evaluate_split(split, vectors, row_of, opts.ks)
    if opts.clusters:
        nmi, ami = _agreement(split, ids, opts)
        report = dataclasses.replace(report, nmi=nmi, ami=ami)
    seconds = dict(report.seconds, embed=embedded - start, total=time.perf_counter() - start)
    return dataclasses.replace(report, seconds=seconds), missing
