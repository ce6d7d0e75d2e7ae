"""OpenVINO: the network converted from torch (no ONNX step), saved as IR (model.xml + model.bin).

f32 inference precision by default: OpenVINO's own default on a CPU with bf16 units is bf16, which
moves vectors (min cosine 0.98 against torch), so reduced precision is only used when asked for.

A network compiled for this CPU is kept next to the export (retrieval.runtimes.compiled), so a later
process imports it instead of compiling again.
"""
from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from retrieval.runtimes.base import Runtime, Session
from retrieval.runtimes.compiled import CompiledCache

REQUESTS_PER_STREAM = 3  # infer requests per stream when batches stream: one runs, the next ones wait


class _OpenVINOSession:
    """One image or batch at a time on every thread (latency); a stream of batches on parallel requests."""

    # the throughput compilation has a fixed batch of one image (benchmarks/build_settings.py sets it off)
    fixed_throughput_batch = True

    def __init__(self, core: Any, folder: Path, config: dict[str, Any]):
        self.core, self.folder, self.config = core, folder, config
        self._model: Any = None  # read from model.xml only when a mode is compiled, not imported
        # each mode is compiled on its first use: a build only streams, a query only calls
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._cache = CompiledCache(core, folder)

    def cached(self) -> bool:
        """Whether a network compiled from this export is kept (a mode may then be imported, not compiled)."""
        return self._cache.has_any()

    @property
    def model(self) -> Any:
        """The network as read from the export (ov.Model)."""
        if self._model is None:
            self._model = self.core.read_model(str(self.folder / "model.xml"))
        return self._model

    def _mode(self, hint: str) -> Any:
        with self._lock:
            if hint not in self._compiled:
                config = {**self.config, "PERFORMANCE_HINT": hint}
                shape = "one image" if hint == "THROUGHPUT" and self.fixed_throughput_batch else "dynamic batch"
                compiled = self._cache.load(config, shape)
                if compiled is None:
                    compiled = self.core.compile_model(self._model_for(hint), "CPU", config)
                    self._cache.store(config, shape, compiled)
                self._compiled[hint] = compiled
            return self._compiled[hint]

    @property
    def compiled(self) -> Any:
        """The network compiled for latency: every thread on one request."""
        return self._mode("LATENCY")

    def throughput(self) -> Any:
        """The network compiled for throughput with a fixed batch of one image: parallel streams, each fed by
        its own single-image infer requests (a fixed shape: 3% less CPU per image than the dynamic batch,
        benchmarks/build_settings.py)."""
        return self._mode("THROUGHPUT")

    def _model_for(self, hint: str) -> Any:
        if hint != "THROUGHPUT" or not self.fixed_throughput_batch:
            return self.model
        import openvino as ov
        one = self.model.clone()
        shape = list(one.input(0).get_partial_shape())
        one.reshape({one.input(0): ov.PartialShape([ov.Dimension(1), *shape[1:]])})
        return one

    def __call__(self, uint8_batch: Any) -> Any:
        import numpy as np
        compiled = self.compiled
        result = compiled(np.ascontiguousarray(uint8_batch))
        return np.asarray(result[compiled.output(0)], dtype=np.float32)

    def stream(self, batches: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """(uint8 batch or None, tag) -> (vectors or None, tag), in order, images running side by side.

        OpenVINO's throughput mode: one stream per core group, each fed by its own infer requests, so the
        caller reads the next batch and stores the last while the network runs, and a core busy elsewhere
        (decoding) holds up one stream, not every thread of one big request. Each image is a request of
        its own on the fixed-shape compilation (slices of 2-8 images a request ran slower in development
        checks); 2 and 3 requests a stream measure the same (benchmarks/build_settings.py).
        """
        import numpy as np
        compiled = self.throughput()
        streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        # plain infer requests, waited for in order: no Python callback, so OpenVINO's threads never need
        # the GIL (a callback pending while the compiled model is freed deadlocks its destructor)
        free = [compiled.create_infer_request() for _ in range(REQUESTS_PER_STREAM * streams)]
        running: collections.deque[tuple[Any, int, int]] = collections.deque()  # (request, key, row)
        pending: collections.deque[tuple[int, Any]] = collections.deque()  # (key, tag), in order
        out: dict[int, list[Any]] = {}  # key -> that batch's vectors, filled in as they come back
        left: dict[int, int] = {}  # key -> that batch's images still running

        def finish_oldest() -> None:
            request, key, row = running.popleft()
            request.wait()
            out[key][row] = np.array(request.get_output_tensor(0).data[0], dtype=np.float32)
            left[key] -= 1
            free.append(request)

        def ready() -> Iterator[tuple[Any, Any]]:
            while pending and left[pending[0][0]] == 0:
                key, tag = pending.popleft()
                del left[key]
                rows = out.pop(key)
                yield (np.stack(rows) if rows else None), tag

        try:
            for key, (batch, tag) in enumerate(batches):
                images = 0 if batch is None else len(batch)
                pending.append((key, tag))
                out[key], left[key] = [None] * images, images
                if images:
                    array = np.ascontiguousarray(batch)
                    for row in range(images):
                        if not free:
                            finish_oldest()
                        request = free.pop()
                        request.start_async({0: array[row:row + 1]})
                        running.append((request, key, row))
                yield from ready()
            while running:
                finish_oldest()
        finally:
            for request, _, _ in running:
                request.wait()  # never leave a request writing after the caller has gone
        yield from ready()
        assert not pending, "an image of the stream came back without its vector"


class OpenVINORuntime(Runtime):
    name = "openvino"
    module = "openvino"
    distributions = ("openvino",)
    files = ("model.xml", "model.bin")
    precisions = ("f32", "bf16")

    def export(self, module: Any, example: Any, folder: Path) -> None:
        import warnings

        import openvino as ov
        import torch
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notes: not the user's concern
            converted = ov.convert_model(module, example_input=example,
                                         input=[(ov.PartialShape([-1, *example.shape[1:]]), ov.Type.u8)])
        ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)

    def open(self, folder: Path, *, threads: int, precision: str) -> Session:
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads}
        # read the weights into memory, never mapped: a cache file rewritten under a mapping would crash us
        core.set_property({"ENABLE_MMAP": False})
        from retrieval.runtimes.altstack import enlarge_signal_stack
        enlarge_signal_stack()  # OpenVINO may enable AMX: see altstack
        session = _OpenVINOSession(core, folder, config)
        if not session.cached():
            session.model  # nothing compiled to import: read the network now, so a damaged one fails here
        return session
