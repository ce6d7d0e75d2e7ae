"""Embedding extraction: files -> safe decode + model preprocessing (worker processes) -> vectors.

Workers decode and resize to uint8 arrays (a quarter of float32's bytes to move between processes) with
Pillow and numpy (retrieval.images.preprocess); the main process runs the network on the runtime chosen
(retrieval.runtimes) while the workers decode the next batches. On a CPU with a checked export of the model
in the cache, nothing here imports torch, torchvision or timm: the export is found from the model's
identity (retrieval.runtimes.cache) and opened directly. Otherwise the model loads with torch: torch with
AMP and channels_last on CUDA, or a CPU runtime exported (once) and checked against torch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from retrieval.images.preprocess import Preprocess, prepare_files
from retrieval.models.identity import ModelName, ModelRef
from retrieval.progress import progress_bar
from retrieval.runtimes.base import RUNTIMES, Opened, Session
from retrieval.runtimes.cache import CheckedExport, candidates, find_checked
from retrieval.runtimes.settings import InferenceSettings
from retrieval.workers import embed_workers, ordered_map, usable_cores

if TYPE_CHECKING:
    from retrieval.models.load import LoadedModel

log = logging.getLogger(__name__)
PREFETCH = 4  # batches a decode worker prepares ahead of the network


@dataclasses.dataclass
class ExtractBatch:
    paths: list[str]
    vectors: np.ndarray  # float32 [len(ok), dim], L2-normalised
    ok: list[int]  # indices into ``paths`` that were embedded, in the order of ``vectors``
    infos: list[dict[str, Any]]  # per ok path: sha256, bytes, width, height
    errors: list[tuple[str, str]]  # (path, reason) for files that could not be decoded


class Embedder:
    """A model ready to embed uint8 batches, on the runtime ``settings`` names.

    ``auto``: torch on CUDA (AMP, channels_last); on a CPU the fastest exact runtime installed (see
    retrieval.runtimes.choose), else torch. ``runtime_used`` says which one runs after any fallback.
    ``identity`` (spec, weights, dim), ``dim`` and ``prep`` are known at once; ``model`` (the torch network)
    loads only when asked for.
    """

    def __init__(self, model: LoadedModel | ModelRef, settings: InferenceSettings = InferenceSettings(), *,
                 lazy: bool = False):
        """``lazy``: open the runtime on first use (embed_files starts its decode workers first)."""
        self.settings = settings
        self.ref = model if isinstance(model, ModelRef) else ModelRef.of(model)
        self._opened: Opened | None = None
        self._open_lock = threading.Lock()
        self.found: CheckedExport | None = None
        self._warm: Session | None = None
        if self.ref.loaded is None and not settings.needs_torch():
            prefetched = _claim_prefetched(self.ref.name, settings)
            if prefetched is not None:  # looked up already (found, or not there)
                self.found, self._warm = prefetched
            else:
                self.found = find_checked(self.ref.name, settings.runtime, settings.precision)
        if self.found is not None:
            self.ref.check(self.found.model)  # another model than the index's is refused, as a loaded one is
            self.identity, data_config = dict(self.found.model), self.found.data_config
        else:
            loaded = self.ref.load()
            self.identity, data_config = loaded.info.identity(), loaded.info.data_config
        self.dim = int(self.identity["dim"])
        self.spec = str(self.identity["spec"])
        self.prep = Preprocess.from_data_config(data_config)
        self.data_config = data_config
        if not lazy:
            self._open()

    @property
    def model(self) -> LoadedModel:
        """The torch network (loaded now if it was not: region detectors and training need it)."""
        return self.ref.load()

    def _open(self) -> Opened:
        if self._opened is None:
            with self._open_lock:
                if self._opened is None:
                    self._opened = self._open_found() or self._open_torch()
        return self._opened

    def _open_found(self) -> Opened | None:
        """The checked export, opened without torch; None (said in a warning) when it cannot be opened."""
        found = self.found
        if found is None:
            return None
        session = self._warm or _open_export(found)
        return Opened(session, found.runtime, found.min_cosine, False) if session is not None else None

    def _open_torch(self) -> Opened:
        from retrieval.models.load import resolve_device
        from retrieval.runtimes.choose import open_runtime
        return open_runtime(self.ref.load(), resolve_device(self.settings.device), self.settings.runtime,
                            self.settings.precision)

    @property
    def session(self) -> Session:
        return self._open().session

    @property
    def device_type(self) -> str:
        """``cpu`` or ``cuda``: where the network runs (the exported runtimes run on the CPU)."""
        return str(getattr(getattr(self.session, "device", None), "type", "cpu"))  # torch's session has a device

    @property
    def runtime_used(self) -> str:
        """The runtime that embeds, after any fallback."""
        return self._open().runtime

    def __call__(self, uint8_batch: np.ndarray) -> np.ndarray:
        return self.session(uint8_batch)

    def stream(self, batches: Iterable[tuple[np.ndarray | None, Any]]) -> Iterator[tuple[np.ndarray | None, Any]]:
        """(uint8 batch or None, tag) -> (vectors or None, tag) in order; the runtime may run several
        batches at once (OpenVINO's async requests) while the caller reads the next and stores the last."""
        streamed = getattr(self.session, "stream", None)
        if streamed is not None:
            yield from streamed(batches)
            return
        for batch, tag in batches:
            yield (self.session(batch) if batch is not None else None), tag


def _open_export(found: CheckedExport, *, warm: bool = False, throughput: bool = False) -> Session | None:
    """A checked export's session (``warm``: compiled and run once, so the first query pays neither;
    ``throughput``: OpenVINO's throughput compilation made too, for parallel streams); None, said in a warning,
    when it cannot be opened (the torch path then exports it again)."""
    try:
        session = RUNTIMES.get(found.runtime).open(found.folder, threads=usable_cores(), precision=found.precision)
        if warm:
            shape = tuple(found.data_config["input_size"])
            session(np.zeros((1, *shape), np.uint8))
        if throughput and hasattr(session, "throughput"):
            session.throughput()
        return session
    except Exception as exc:  # noqa: BLE001 - damaged in a way its digests did not catch: torch re-exports
        log.warning(f"the cached {found.runtime} export at {found.folder} cannot be opened "
                    f"({type(exc).__name__}); loading the model to export it again")
        return None


_prefetched: dict[tuple[ModelName, str, str], Future] = {}
_prefetch_lock = threading.Lock()


def prefetch(name: ModelName, settings: InferenceSettings = InferenceSettings(), *, streams: bool = False) -> None:
    """Start finding, opening and compiling ``name``'s checked export in a thread, while the caller imports and
    opens everything else (a process's start-up: `retr query`, `retr serve`; ``streams``: for parallel streams
    as well); the next Embedder of the same model and settings takes the session. Nothing happens where torch
    would embed anyway."""
    if settings.needs_torch():
        return
    key = (name, settings.runtime, settings.precision)
    with _prefetch_lock:
        if key in _prefetched:
            return
        future: Future = Future()
        _prefetched[key] = future
    # the runtime's library is imported here, before the thread starts: an import holds the interpreter's lock
    # (one done in the thread only slows the caller's imports down as much), while what the thread does after
    # it (reading files, OpenVINO importing the compiled network, a first inference) releases it
    with contextlib.suppress(Exception):  # a broken install: the Embedder says why, or torch embeds
        for rt in candidates(settings.runtime, settings.precision)[:1]:
            rt.load()

    def run() -> None:
        try:
            found = find_checked(name, settings.runtime, settings.precision)
            session = _open_export(found, warm=True, throughput=streams) if found is not None else None
            future.set_result((found, session))
        except BaseException as exc:  # noqa: BLE001 - the Embedder looks again itself
            future.set_exception(exc)
    # not a daemon: the interpreter waits for it rather than ending while it compiles
    threading.Thread(target=run, name="retr-prefetch").start()


@contextlib.contextmanager
def prefetching(name: ModelName | None, settings: InferenceSettings = InferenceSettings(), *,
                streams: bool = False) -> Iterator[None]:
    """``prefetch`` for the length of a block (a command): what no Embedder took by its end is dropped."""
    if name is not None:
        prefetch(name, settings, streams=streams)
    try:
        yield
    finally:
        if name is not None:
            with _prefetch_lock:
                _prefetched.pop((name, settings.runtime, settings.precision), None)


def _claim_prefetched(name: ModelName, settings: InferenceSettings
                      ) -> tuple[CheckedExport | None, Session | None] | None:
    """What a prefetch found (the export and its session, or nothing), taken once: a session serves one
    Embedder; None when nothing was prefetched or the prefetch failed."""
    with _prefetch_lock:
        future = _prefetched.pop((name, settings.runtime, settings.precision), None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001 - the Embedder looks itself
        return None


def embed_files(model: LoadedModel | ModelRef | None, paths: Sequence[str], *,
                settings: InferenceSettings = InferenceSettings(), progress: bool = False,
                embedder: Embedder | None = None) -> Iterator[ExtractBatch]:
    """Embed image files in batches; undecodable files come back as errors, never as exceptions."""
    # lazy: the runtime opens (exporting or checking) while the workers decode the first batches
    embedder = embedder or Embedder(model, settings, lazy=True)
    settings = embedder.settings
    workers = embed_workers() if settings.workers is None else settings.workers
    starts = range(0, len(paths), settings.batch_size)
    chunks = [list(paths[start:start + settings.batch_size]) for start in starts]
    with progress_bar(len(paths), desc="embedding", enabled=progress) as bar:
        decoded = ordered_map(prepare_files, ((names,) for names in chunks), shared=embedder.prep,
                              workers=workers, ahead=PREFETCH)
        for vecs, (names, chunk) in embedder.stream((chunk["batch"], (names, chunk))
                                                    for names, chunk in zip(chunks, decoded)):
            items = chunk["items"]
            yield ExtractBatch(
                paths=names,
                vectors=vecs if vecs is not None else np.zeros((0, embedder.dim), np.float32),
                ok=[pos for pos, it in enumerate(items) if "error" not in it],
                infos=[{k: it[k] for k in ("sha256", "bytes", "width", "height")} for it in items
                       if "error" not in it],
                errors=[(names[pos], it["error"]) for pos, it in enumerate(items) if "error" in it])
            bar.update(len(items))


def embed_images(model: LoadedModel | ModelRef | None, images: Sequence[Image.Image], *,
                 settings: InferenceSettings = InferenceSettings(), embedder: Embedder | None = None) -> np.ndarray:
    """Embed PIL images already in memory (query crops, augmented copies)."""
    embedder = embedder or Embedder(model, settings)
    out = [np.zeros((0, embedder.dim), np.float32)]
    size = embedder.settings.batch_size
    for start in range(0, len(images), size):
        chunk = [img.convert("RGB") for img in images[start:start + size]]
        out.append(embedder(embedder.prep.to_batch(chunk)))
    return np.concatenate(out)
