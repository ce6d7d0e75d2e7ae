"""OpenVINO: the network converted from torch (no ONNX step), saved as IR (model.xml + model.bin).

f32 inference precision by default: OpenVINO's own default on a CPU with bf16 units is bf16, which
moves vectors (min cosine 0.98 against torch), so reduced precision is only used when asked for.
"""
from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from retrieval.runtimes.base import Runtime, Session


STREAM_SLICE = 4  # images per infer request when batches stream (see _OpenVINOSession.stream)


class _OpenVINOSession:
    """One image or batch at a time on every thread (latency); a stream of batches on parallel requests."""

    def __init__(self, core: Any, model: Any, config: dict[str, Any]):
        self.core, self.model, self.config = core, model, config
        # each mode is compiled on its first use: a build only streams, a query only calls
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _mode(self, hint: str) -> Any:
        with self._lock:
            if hint not in self._compiled:
                self._compiled[hint] = self.core.compile_model(self.model, "CPU",
                                                               {**self.config, "PERFORMANCE_HINT": hint})
            return self._compiled[hint]

    @property
    def compiled(self) -> Any:
        """The network compiled for latency: every thread on one request."""
        return self._mode("LATENCY")

    def throughput(self) -> Any:
        """The network compiled for throughput: parallel streams, each fed by its own infer requests."""
        return self._mode("THROUGHPUT")

    def __call__(self, uint8_batch: Any) -> Any:
        import numpy as np
        compiled = self.compiled
        result = compiled(np.ascontiguousarray(uint8_batch.numpy()))
        return np.asarray(result[compiled.output(0)], dtype=np.float32)

    def stream(self, batches: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """(uint8 batch or None, tag) -> (vectors or None, tag), in order, batches running side by side.

        OpenVINO's throughput mode: one stream per core group, each fed by its own infer requests, so the caller reads the next batch and stores the last while the network runs, and a core
        busy elsewhere (decoding) holds up one stream, not every thread of one big request. A batch runs
        as slices of STREAM_SLICE images: measured here, 2-4 images a request cost 15-25% less CPU per
        image than 32 (benchmarks/runtimes.py).
        """
        import numpy as np
        compiled = self.throughput()
        streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        # plain infer requests, waited for in order: no Python callback, so OpenVINO's threads never need
        # the GIL (a callback pending while the compiled model is freed deadlocks its destructor)
        free = [compiled.create_infer_request() for _ in range(2 * streams)]  # a slice waits in each stream
        running: collections.deque[tuple[Any, tuple[int, int]]] = collections.deque()
        done: dict[tuple[int, int], Any] = {}
        pending: collections.deque[tuple[int, Any, int]] = collections.deque()  # (key, tag, slices)

        def finish_oldest() -> None:
            request, slot = running.popleft()
            request.wait()
            done[slot] = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
            free.append(request)

        def ready() -> Iterator[tuple[Any, Any]]:
            while pending and all((pending[0][0], j) in done for j in range(pending[0][2])):
                key, tag, slices = pending.popleft()
                yield (np.concatenate([done.pop((key, j)) for j in range(slices)]) if slices else None), tag

        try:
            for key, (batch, tag) in enumerate(batches):
                slices = 0
                if batch is not None:
                    array = np.ascontiguousarray(batch.numpy())
                    for slices, start in enumerate(range(0, len(array), STREAM_SLICE), 1):
                        if not free:
                            finish_oldest()
                        request = free.pop()
                        request.start_async({0: array[start:start + STREAM_SLICE]})
                        running.append((request, (key, slices - 1)))
                pending.append((key, tag, slices))
                yield from ready()
            while running:
                finish_oldest()
        finally:
            for request, _ in running:
                request.wait()  # never leave a request writing after the caller has gone
        yield from ready()
        assert not pending, "a slice of the stream came back without vectors"


class OpenVINORuntime(Runtime):
    name = "openvino"
    module = "openvino"
    files = ("model.xml", "model.bin")
    precisions = ("f32", "bf16")

    def version(self) -> str:
        import openvino
        return str(openvino.__version__)

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
        return _OpenVINOSession(core, core.read_model(str(folder / "model.xml")), config)
