"""Embedding on a Ray cluster: a Ray Data pipeline whose batches the driver commits as a local build does.

files (the driver's plan) -> read, decode and preprocess (CPU tasks: retrieval.images.preprocess, the same code
as a local build's decode workers) -> embed (an actor pool: each actor opens the model once, on a GPU where
the cluster has them, else on the fastest exact CPU runtime, without torch when its node has the checked
export) -> the driver, which receives the batches as they finish and writes each in its own transaction.

Paths travel as bytes (``os.fsencode``), so names that are not UTF-8 arrive intact. A file that cannot be
decoded is a row with its reason, never an error of its task: one bad image fails no batch. Actors are
restarted and their batches retried when they die and decode tasks are run again when their node goes (Ray
Data's defaults: actors ``max_restarts=-1``, ``max_task_retries=-1``, spread over the nodes); the catalog writes rows by path, so a retried batch never makes a second row.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterator, Sequence

import numpy as np

from retrieval.embed import Embedder, ExtractBatch, embed_files
from retrieval.images.preprocess import Preprocess, prepare_file
from retrieval.models.identity import ModelName, ModelRef
from retrieval.progress import progress_bar
from retrieval.runtimes.settings import InferenceSettings
from retrieval.scaleout.cluster import ClusterInfo, RaySettings, connected, import_ray

TASK_CPUS = 0.5  # a decode task and an actor share a 1-CPU node (whole CPUs each would leave one waiting)
ACTOR_CPUS = 0.4  # unequal to the tasks': equal arguments let Ray Data fuse decoding into the actor, where the
#                   network would wait for it
INFO = ("sha256", "bytes", "width", "height")


def decode_batch(batch: dict[str, np.ndarray], prep: Preprocess) -> dict[str, np.ndarray]:
    """A Ray Data batch of paths -> the model's uint8 pixels and each file's facts, or its reason."""
    paths = list(batch["path"])
    items = [prepare_file(os.fsdecode(bytes(p)), prep) for p in paths]
    height, width = prep.size
    pixels = np.zeros((len(items), 3, height, width), np.uint8)
    for pos, it in enumerate(items):
        if "pixels" in it:
            pixels[pos] = it.pop("pixels")
    return {"path": np.array(paths, dtype=object), "pixels": pixels, **_facts(items)}


def _facts(items: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {"error": np.array([it.get("error", "") for it in items], dtype=object),
            "sha256": np.array([it.get("sha256", "") for it in items], dtype=object),
            "bytes": np.array([it.get("bytes", -1) for it in items], np.int64),
            "width": np.array([it.get("width", -1) for it in items], np.int64),
            "height": np.array([it.get("height", -1) for it in items], np.int64)}


class EmbedActor:
    """One model per actor, opened once: uint8 batches in, L2-normalised vectors out."""

    def __init__(self, name: ModelName, settings: InferenceSettings, model_key: str):
        from index.manifest import model_key as key_of
        self.embedder = Embedder(ModelRef(name), settings)
        made = key_of(self.embedder.identity)
        if made != model_key:  # another cache or weights on this node: its vectors would not be the index's
            raise RuntimeError(f"this node's model is {made}, the index's is {model_key}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.array([not e for e in batch["error"]], bool)
        vectors = np.zeros((len(ok), self.embedder.dim), np.float32)
        if ok.any():
            vectors[ok] = self.embedder(np.ascontiguousarray(batch["pixels"][ok]))
        out = {k: v for k, v in batch.items() if k != "pixels"}
        out["vector"] = vectors
        return out


def to_extract_batch(batch: dict[str, np.ndarray]) -> ExtractBatch:
    """A finished Ray batch as the ExtractBatch a local build's ``embed_files`` yields."""
    paths = [os.fsdecode(bytes(p)) for p in batch["path"]]
    errors = [str(e) for e in batch["error"]]
    ok = [pos for pos, e in enumerate(errors) if not e]
    return ExtractBatch(paths=paths, vectors=np.ascontiguousarray(batch["vector"][ok], np.float32), ok=ok,
                        infos=[{k: (str(batch[k][pos]) if k == "sha256" else int(batch[k][pos])) for k in INFO}
                               for pos in ok],
                        errors=[(paths[pos], errors[pos]) for pos, e in enumerate(errors) if e])


def ray_embed_files(embedder: Embedder, paths: Sequence[str], cluster: ClusterInfo, settings: RaySettings, *,
                    model_key: str, progress: bool = False) -> Iterator[ExtractBatch]:
    """Embed ``paths`` on the cluster ``connect`` opened; batches come back as they finish (any order)."""
    ray = import_ray()
    if not paths:
        return
    gpus = 1 if cluster.gpus >= 1 and embedder.settings.device != "cpu" else 0
    if not gpus and embedder.found is None and not embedder.settings.needs_torch():
        # the model's first CPU build: export and check it here, once, into the export cache; the actors of every
        # node that shares the cache then open it without torch (others export it themselves)
        embedder.session  # noqa: B018
    size = embedder.settings.batch_size
    actors = settings.actors or cluster.default_actors()
    ds = ray.data.from_items([{"path": os.fsencode(p)} for p in paths],
                             override_num_blocks=max(1, math.ceil(len(paths) / size)))
    ds = ds.map_batches(decode_batch, fn_args=(embedder.prep,), batch_size=size, batch_format="numpy",
                        num_cpus=TASK_CPUS)
    ds = ds.map_batches(EmbedActor, fn_constructor_args=(embedder.ref.name, embedder.settings, model_key),
                        batch_size=size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                        num_cpus=0 if gpus else ACTOR_CPUS, num_gpus=gpus)
    with progress_bar(len(paths), desc="embedding (ray)", enabled=progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            extracted = to_extract_batch(batch)
            yield extracted
            bar.update(len(extracted.paths))


@contextlib.contextmanager
def embedded(embedder: Embedder, paths: Sequence[str], ray: RaySettings | None, *, roots: Sequence[str] = (),
             progress: bool = False) -> Iterator[Iterator[ExtractBatch]]:
    """``paths`` embedded in batches: in this process (``embed_files``) or, with ``ray``, on the cluster, connected
    and checked (every node reads the files) for the block. The model's key is checked on every actor."""
    if ray is None:
        yield embed_files(None, paths, progress=progress, embedder=embedder)
        return
    from index.manifest import model_key
    with connected(ray, roots, paths) as cluster:
        yield ray_embed_files(embedder, paths, cluster, ray, model_key=model_key(embedder.identity),
                              progress=progress)
