"""The Python API: one warm object over an index directory (model, faiss searcher and catalog loaded once).

    from retrieval import Collection
    with Collection("retr-index") as col:
        col.query("holiday.jpg", k=5)[0].results     # the same results as `retr query holiday.jpg --json`

`retr query` and `retr serve` call it. Queries are thread-safe: decoding, preprocessing and result rows run
in the calling threads, the forward pass and the faiss search each one at a time (one can overlap the
other). A rebuild by another process is picked up by ``refresh()`` (the manifest's version changed and
the new files agree with the catalog), while queries already running finish on the state they started with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import numpy as np
from PIL import Image

from index.catalog.clusters import latest_members, latest_run
from index.directory import IndexStore
from index.errors import NotFound, RetrError
from index.manifest import MANIFEST_FILE
from index.regions import RegionIndex
from retrieval.collection.info import index_info
from retrieval.collection.model import index_model
from retrieval.collection.query import QueryResult, check_not_empty, search_pictures
from retrieval.collection.streams import InferStreams, open_streams
from retrieval.embed import Embedder, embed_images
from retrieval.images.decode import ImageLoadError, check_files, decode, load_image, to_rgb
from retrieval.regions.proposal import check_region_query
from retrieval.collection.checks import searched_regions
from retrieval.regions.query import RegionQueryResult
from retrieval.runtimes.settings import InferenceSettings

QueryInput = Union[str, os.PathLike, Image.Image, bytes, int, np.integer, np.ndarray]
Results = Union[list[QueryResult], list[RegionQueryResult]]


def manifest_version(index_dir: Path) -> tuple[int, int, int] | None:
    """What changes whenever manifest.json is rewritten (atomic rename: a new inode, mtime)."""
    try:
        st = os.stat(index_dir / MANIFEST_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclasses.dataclass
class _Warm:
    """One opened version of the index: store, searcher, embedder; closed once retired and unused."""

    store: IndexStore
    embedder: Embedder
    version: tuple[int, int, int] | None
    regions: RegionIndex | None
    streams: InferStreams | None = None  # parallel single-image forwards for a group of queries
    users: int = 0
    retired: bool = False

    def close_if_done(self) -> None:
        if self.retired and self.users == 0:
            self.store.close()


class Collection:
    """An index directory opened once: ``query``, ``info``, ``add``, ``duplicates_of``, ``reload``."""

    def __init__(self, index_dir: str | os.PathLike, *, db_url: str | None = None, model: str | None = None,
                 weights: str | None = None, inference: InferenceSettings = InferenceSettings(),
                 streams: bool = False):
        """``inference``: where and how the model runs (device, runtime, precision, batch size, workers), for
        queries and ``add`` alike. ``streams``: also open parallel inference streams (OpenVINO on a CPU) for
        ``query_each`` groups."""
        self.dir = Path(index_dir)
        self.inference, self.use_streams = inference, streams
        self.db_url, self.model_spec, self.weights = db_url, model, weights
        self._lock = threading.Lock()  # guards the swap and the users counts
        # a runtime session is not shared between threads (OpenVINO's call reuses one infer request), and a
        # faiss search sets nprobe/ef on the shared index and a process-wide BLAS threshold: one at a time each
        self._model_lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._warm = self._open(None)

    # -- opening and swapping ------------------------------------------------------------------------

    def _open(self, previous: _Warm | None) -> _Warm:
        version = manifest_version(self.dir)
        store = IndexStore.open(self.dir, self.db_url)
        try:
            check_not_empty(store, self.dir)
            # the faiss file (loaded and checked now, not on the first query) and the id -> path table first:
            # a prefetched model (retrieval.embed.prefetch) goes on compiling meanwhile
            store.searcher()
            store.path_of(0)
            if previous is not None and previous.store.manifest.model == store.manifest.model:
                embedder, streams = previous.embedder, previous.streams  # same model: keep it warm
            else:
                embedder = Embedder(index_model(store, self.model_spec, self.weights), self.inference)
                streams = open_streams(embedder) if self.use_streams else None
            regions = RegionIndex(store) if RegionIndex(store).state is not None else None
        except BaseException:
            store.close()
            raise
        return _Warm(store, embedder, version, regions, streams)

    def reload(self) -> bool:
        """Open the index again now and swap to it; False (old one kept) while its files disagree with
        the catalog (a build still running)."""
        fresh = self._open(self._warm)
        if fresh.store.vectors_problem() is not None:
            fresh.store.close()
            return False
        with self._lock:
            old, self._warm = self._warm, fresh
            old.retired = True
            old.close_if_done()
        return True

    def refresh(self) -> bool:
        """Swap to a rebuilt index when the manifest's version changed; True when it swapped."""
        version = manifest_version(self.dir)
        if version is None or version == self._warm.version:
            return False
        try:
            return self.reload()
        except RetrError:
            return False  # half-written or being replaced: keep answering from the old one

    @property
    def version(self) -> tuple[int, int, int] | None:
        return self._warm.version

    @property
    def store(self) -> IndexStore:
        return self._warm.store

    @property
    def embedder(self) -> Embedder:
        """The warm model (its ``device`` and ``runtime_used`` say where it runs)."""
        return self._warm.embedder

    @property
    def parallel_requests(self) -> int:
        """How many single-image forwards ``query_each`` runs at once on streams (0: no streams)."""
        streams = self._warm.streams
        return streams.jobs if streams is not None else 0

    def _use(self) -> "_Using":
        return _Using(self)

    def close(self) -> None:
        with self._lock:
            self._warm.retired = True
            self._warm.close_if_done()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ---------------------------------------------------------------------------------------

    def query(self, images: QueryInput | Sequence[QueryInput], *, k: int = 10, nprobe: int | None = None,
              ef: int | None = None, regions: bool = False, box: str | Sequence[float] | None = None,
              detect: bool = False, names: Sequence[str] | None = None) -> Results:
        """The k nearest catalog images of each query, best first, as `retr query --json` gives them.

        A query is a file path, a PIL image, encoded image bytes, a catalog id (its stored vector), or
        a numpy vector (``[dim]`` or ``[n, dim]``); one or a list. ``names`` label the queries in the results.
        """
        if k < 1:
            raise RetrError(f"-k must be at least 1, got {k}")
        if box is not None and not isinstance(box, str):
            box = ",".join(f"{float(v):g}" for v in box)
        the_box = check_region_query(box, detect)
        items = _as_list(images)
        if names is not None and len(names) != len(items):
            raise RetrError(f"{len(names)} names for {len(items)} queries")
        with self._use() as warm:
            region_index = warm.regions if regions else None
            if regions and region_index is None:
                searched_regions(warm.store, self.dir)  # the one-line "has no regions" error
            parts = regions or detect or the_box is not None
            vectors, pictures, labels = self._inputs(warm, items, names, needs_pixels=parts)
            if pictures and parts:  # crops, detected regions, the region index: the one query path, whole
                with self._model_lock, self._search_lock:
                    return search_pictures(warm.store, warm.embedder, labels, pictures, k=k, nprobe=nprobe, ef=ef,
                                           region_index=region_index, box=the_box, detect=detect)
            if pictures:  # search_pictures' plain path, with the forward and the search locked apart
                vectors = self._embed(warm, pictures)
            with self._search_lock:
                hits = region_index.search(vectors, k) if region_index is not None \
                    else warm.store.search(vectors, k, nprobe=nprobe, ef=ef)
            if region_index is not None:
                return [RegionQueryResult(q, None, None, h) for q, h in zip(labels, hits)]
            return [QueryResult(q, h) for q, h in zip(labels, hits)]

    def query_each(self, images: Sequence[QueryInput], *, names: Sequence[str], k: int = 10,
                   nprobe: int | None = None, ef: int | None = None) -> list[QueryResult | RetrError]:
        """Whole-image queries that arrived together (paths, PIL images or encoded bytes; a catalog id
        is read from its file): each one's result, or the error that query alone caused (an unreadable
        upload fails only itself). With ``streams`` the images are decoded one after
        another while the previous ones run as parallel single-image forwards (a lone image takes every core
        unless the streams are busy with other calls); one faiss search for all."""
        if k < 1:
            raise RetrError(f"-k must be at least 1, got {k}")
        if len(names) != len(images):
            raise RetrError(f"{len(names)} names for {len(images)} queries")
        out: list[QueryResult | RetrError | None] = [None] * len(images)
        with self._use() as warm:
            prep = warm.embedder.prep
            good: list[int] = []

            def tensors() -> Any:
                for i, x in enumerate(images):
                    try:
                        picture = (decode(bytes(x), draft_size=prep.draft_size, reduce=True) if _kind(x) == "bytes"
                                   else self._picture(warm, x, side=prep.draft_size))
                        tensor = prep.to_uint8(picture)[None]
                    except RetrError as exc:  # ImageLoadError included: the reason, as decoding gives it
                        out[i] = exc
                        continue
                    good.append(i)
                    yield tensor
            if warm.streams is not None and (len(images) > 1 or warm.streams.busy()):
                vectors = warm.streams(tensors())
            else:
                batch = list(tensors())
                if batch:
                    with self._model_lock:
                        vectors = warm.embedder(np.concatenate(batch))
            if good:
                with self._search_lock:
                    hits = warm.store.search(vectors, k, nprobe=nprobe, ef=ef)
                for i, h in zip(good, hits):
                    out[i] = QueryResult(names[i], h)
        return out  # type: ignore[return-value]

    def _embed(self, warm: _Warm, pictures: list[Image.Image]) -> np.ndarray:
        with self._model_lock:
            return embed_images(None, pictures, embedder=warm.embedder)

    def _inputs(self, warm: _Warm, items: list[Any], names: Sequence[str] | None, *, needs_pixels: bool
                ) -> tuple[np.ndarray | None, list[Image.Image], list[str]]:
        """Either query vectors (ids and numpy vectors, when no pixels are needed) or decoded pictures."""
        kinds = {_kind(x) for x in items}
        labels = list(names) if names is not None else [_label(x) for x in items]
        if kinds <= {"id", "vector"} and not needs_pixels:
            dim = warm.store.dim
            parts = []
            for x in items:
                if _kind(x) == "id":
                    parts.append(warm.store.vectors_for([self._known_id(warm, int(x))]))
                else:
                    v = np.asarray(x, dtype=np.float32)
                    v = v[None, :] if v.ndim == 1 else v
                    if v.ndim != 2 or v.shape[1] != dim:
                        raise RetrError(f"a query vector must have {dim} values (the index's dim), got shape "
                                        f"{tuple(np.shape(x))}")
                    parts.append(v)
            vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
            if len(vectors) != len(labels):
                labels = [f"{labels[0]}[{i}]" for i in range(len(vectors))] if len(labels) == 1 else labels
            return vectors, [], labels
        if "vector" in kinds:
            raise RetrError("numpy vectors cannot be mixed with images, or used with a box or regions")
        side = None if needs_pixels else warm.embedder.prep.draft_size  # boxes and regions crop full-size pixels
        return None, [self._picture(warm, x, side=side) for x in items], labels

    def _known_id(self, warm: _Warm, image_id: int) -> int:
        if warm.store.path_of(image_id) is None:
            raise NotFound(f"no image with id {image_id} in the index at {self.dir}")
        return image_id

    def _picture(self, warm: _Warm, x: Any, side: int | None = None) -> Image.Image:
        """A query as an RGB picture; with ``side`` (whole-image queries) decoded at the smallest scale
        whose shorter side is still >= it (JPEG draft, a whole-factor reduce for other formats)."""
        kind = _kind(x)
        reduced = {"draft_size": side, "reduce": side is not None}
        try:
            if kind == "image":
                return to_rgb(x)
            if kind == "bytes":
                return decode(bytes(x), **reduced)
            if kind == "id":
                return load_image(warm.store.path_of(self._known_id(warm, int(x))), **reduced)
            check_files([x], "query image")
            return load_image(x, **reduced)
        except ImageLoadError as exc:
            raise RetrError(f"cannot read query image {exc}") from exc

    # -- everything else -----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What `retr index info --json` reports."""
        return index_info(self.dir, self.db_url)

    def path_of(self, image_id: int) -> str:
        """The file of catalog image ``image_id`` (a one-line error for an id the index does not hold)."""
        with self._use() as warm:
            return warm.store.path_of(self._known_id(warm, image_id))

    def id_of(self, path: str) -> int | None:
        """The catalog id of ``path``, or None."""
        rows = self.store.catalog.image_rows([path])
        return rows[path].id if path in rows else None

    def add(self, paths: Sequence[str | os.PathLike], **build_options: Any) -> Any:
        """Index (incrementally) the images under ``paths`` into this index, then swap to the result.

        Embeds with this collection's inference settings unless ``build_options`` names others (``inference=``).
        Takes the writer lock for this call only; returns the build's report (`retr index build --json`).
        """
        from retrieval.collection.build import BuildOptions, build_index
        opts = BuildOptions(**{"model": self.model_spec, "weights": self.weights, "db_url": self.db_url,
                               "inference": self.inference, **build_options})
        report = build_index(list(paths), self.dir, opts)
        self.reload()
        return report

    def duplicates_of(self, image: str | os.PathLike | bytes, **options: Any) -> list[Any]:
        """Catalogued images that ``image`` duplicates (as `retr dedupe --check`): exact, perceptual hash."""
        from retrieval.dedupe.options import DedupeOptions
        from retrieval.dedupe.run import check_image
        if isinstance(image, (bytes, bytearray)):
            with tempfile.TemporaryDirectory(prefix="retr-dup-") as tmp:
                path = Path(tmp) / "query"
                path.write_bytes(image)
                return check_image(path, self.dir, DedupeOptions(**options), db_url=self.db_url)
        return check_image(image, self.dir, DedupeOptions(**options), db_url=self.db_url)

    def duplicates(self, **options: Any) -> Any:
        """The duplicate groups of the index (`retr dedupe --json`'s result)."""
        from retrieval.dedupe.options import DedupeOptions
        from retrieval.dedupe.run import dedupe_index
        return dedupe_index(self.dir, DedupeOptions(**options), db_url=self.db_url)[0]

    def quarantine(self, keep: str, move_to: str | os.PathLike, **options: Any) -> Any:
        """Move the duplicates of the group that keeps ``keep`` into ``move_to`` (as `retr dedupe --move-to`,
        one group); returns the action report, whose manifest ``undo`` reverses."""
        from retrieval.dedupe.actions import CatalogLink, move_duplicates
        from retrieval.dedupe.collection import from_index
        from retrieval.dedupe.finder import find_duplicates
        from retrieval.dedupe.options import DedupeOptions
        opts = DedupeOptions(**options).validated()
        with IndexStore.open(self.dir, self.db_url, mode="write", command="retr serve (quarantine)") as store:
            col = from_index(store, opts)
            result = find_duplicates(col.items, col.codes, opts, col.vectors, col.vector_rows, col.errors,
                                     col.aliases, feats=col.feats)
            groups = [g for g in result.groups if g.keep.path == keep]
            if not groups:
                raise RetrError(f"no duplicate group keeps {keep}")
            link = CatalogLink(store.catalog, store.manifest.dim if store.manifest else None,
                               str(Path(store.dir).resolve()), hold=self._leaving)
            report = move_duplicates(groups, move_to, catalog=link)
            if report.catalog_rows:
                store.reconcile()
        self.refresh()
        return report

    @contextlib.contextmanager
    def _leaving(self, image_id: int) -> Iterator[None]:
        """Around an image's row leaving the catalog: searches wait, then never name it again (the warm
        index forgets its path until the swap to the rebuilt one)."""
        with self._search_lock:
            yield
            self._warm.store.forget(image_id)

    def undo(self, manifest: str | os.PathLike) -> Any:
        """Reverse a quarantine from its manifest (as `retr dedupe --undo`): only what this index's catalog
        recorded moving goes back, each image under its own id."""
        from retrieval.dedupe.run import undo_manifest
        report = undo_manifest(manifest, index_dir=self.dir, db_url=self.db_url)
        self.refresh()
        return report

    def quarantines(self) -> list[dict[str, Any]]:
        """The manifests whose files are in the quarantine (path, files, moved_at), newest first."""
        from index.catalog.quarantine import manifests
        with self._use() as warm:
            return manifests(warm.store.catalog)

    def settle_quarantine(self) -> list[str]:
        """Complete or roll back quarantine moves and undos a crash cut short, and rewrite a faiss file a crash
        left behind the catalog (until then it is searched exactly in memory); what was done. Nothing to do
        costs a query; the writer lock is taken only when there is something to settle."""
        from index.catalog.quarantine import pending
        with self._use() as warm:
            if not pending(warm.store.catalog) and warm.store.vectors_problem() is None:
                return []
        with IndexStore.open(self.dir, self.db_url, mode="write", command="retr serve (recovery)") as store:
            if store.reconcile():
                store.note("the faiss file was behind the catalog (a crash?); rewritten from the catalog")
            notes = list(store.repairs)
        self.refresh()
        return notes

    def clusters(self) -> dict[str, Any] | None:
        """The latest clustering run with its clusters, medoid first; None when there is none."""
        with self._use() as warm:
            catalog = warm.store.catalog
            run, members = latest_run(catalog), latest_members(catalog)
            if run is None or members is None:
                return None
            paths = catalog.paths_by_id([m.image_id for m in members])
        clusters: dict[int, list[dict[str, Any]]] = {}
        for m in members:
            if m.image_id in paths:
                clusters.setdefault(m.cluster, []).append({"id": m.image_id, "path": paths[m.image_id],
                                                           "medoid": m.is_medoid})
        out = [{"cluster": c, "medoid": next((x for x in ms if x["medoid"]), ms[0]),
                "members": sorted(ms, key=lambda x: not x["medoid"])} for c, ms in sorted(clusters.items())]
        return {"run": run, "clusters": out}


class _Using:
    """The current warm state for one call: counted, so a swap closes it only once the call is done."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def __enter__(self) -> _Warm:
        with self.collection._lock:
            self.warm = self.collection._warm
            self.warm.users += 1
        return self.warm

    def __exit__(self, *exc: object) -> None:
        with self.collection._lock:
            self.warm.users -= 1
            self.warm.close_if_done()


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, (str, os.PathLike, Image.Image, bytes, bytearray, int, np.integer)):
        return [images]
    if isinstance(images, np.ndarray):
        return [images]
    if not isinstance(images, (list, tuple)):
        _kind(images)  # names what is wrong with it
    out = list(images)
    if not out:
        raise RetrError("no query given")
    return out


def _kind(x: Any) -> str:
    if isinstance(x, Image.Image):
        return "image"
    if isinstance(x, (bytes, bytearray)):
        return "bytes"
    if isinstance(x, (bool, np.bool_)):
        raise RetrError(f"a query must be a path, image, bytes, id or vector, not {x!r}")
    if isinstance(x, (int, np.integer)):
        return "id"
    if isinstance(x, np.ndarray):
        return "vector"
    if isinstance(x, (str, os.PathLike)):
        return "path"
    raise RetrError(f"a query must be a path, image, bytes, id or vector, not {type(x).__name__}")


def _label(x: Any) -> str:
    kind = _kind(x)
    if kind == "path":
        return str(x)
    if kind == "id":
        return f"id:{int(x)}"
    return f"<{kind}>"
