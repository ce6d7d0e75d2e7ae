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


class _OpenVINOSession:
    """One image or batch at a time on every thread (latency); a stream of batches on parallel requests."""

    def __init__(self, core: Any, model: Any, config: dict[str, Any]):
        self.core, self.model, self.config = core, model, config
        self.compiled = core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"})
        self.output = self.compiled.output(0)
        self._throughput: Any = None  # compiled for streams on first use (a build, not a query)
        self._lock = threading.Lock()

    def __call__(self, uint8_batch: Any) -> Any:
        import numpy as np
        result = self.compiled(np.ascontiguousarray(uint8_batch.numpy()))
        return np.asarray(result[self.output], dtype=np.float32)

    def stream(self, batches: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """(uint8 batch or None, tag) -> (vectors or None, tag), in order, batches running side by side.

        OpenVINO's throughput mode: one stream per core group, each an infer request of the async queue,
        so the caller reads the next batch and stores the last while the network runs, and a core that
        is busy elsewhere (decoding) holds up one stream, not every thread of one big request.
        """
        import numpy as np
        import openvino as ov
        with self._lock:
            if self._throughput is None:
                self._throughput = self.core.compile_model(self.model, "CPU",
                                                           {**self.config, "PERFORMANCE_HINT": "THROUGHPUT"})
        compiled = self._throughput
        queue = ov.AsyncInferQueue(compiled, max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))))
        done: dict[int, Any] = {}
        queue.set_callback(lambda request, key: done.__setitem__(
            key, np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)))
        pending: collections.deque[tuple[int, Any, bool]] = collections.deque()
        try:
            for key, (batch, tag) in enumerate(batches):
                if batch is not None:
                    queue.start_async(np.ascontiguousarray(batch.numpy()), key)  # waits for a free request
                pending.append((key, tag, batch is not None))
                while pending and (not pending[0][2] or pending[0][0] in done):
                    k, t, ran = pending.popleft()
                    yield (done.pop(k) if ran else None), t
        finally:
            queue.wait_all()  # never leave a request writing after the caller has gone
        for k, t, ran in pending:
            yield (done.pop(k) if ran else None), t


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
