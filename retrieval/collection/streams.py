"""Parallel inference streams: several single-image forwards at once, one per group of a CPU's cores.

OpenVINO's recommended way to serve concurrent requests on a CPU: the network compiled with the THROUGHPUT
performance hint (it picks the number of streams for the model and the machine) and an AsyncInferQueue of
OPTIMAL_NUMBER_OF_INFER_REQUESTS requests. On a CPU, one batch of N images ran slower per image than N
single images (benchmarks/serve_latency.py), so a group of queries that arrive together is run as N
single-image requests spread over the streams, while a lone query keeps the runtime's LATENCY session (all
cores on one image). The export is the runtime's own cached one; the vectors are checked against that
session's on a probe batch before the streams are used.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

import numpy as np

log = logging.getLogger(__name__)


class InferStreams:
    """``streams(tensors)``: uint8 [1, 3, H, W] arrays (any iterable, consumed as the streams free up) ->
    vectors [n, dim] in the same order. One caller at a time (the queue is shared)."""

    def __init__(self, compiled: Any, jobs: int):
        import openvino as ov
        self.queue = ov.AsyncInferQueue(compiled, jobs)
        self.jobs = len(self.queue)
        self.streams = int(compiled.get_property("NUM_STREAMS"))
        self._lock = threading.Lock()
        self._out: dict[int, np.ndarray] = {}
        self.queue.set_callback(self._done)

    def _done(self, request: Any, i: int) -> None:
        self._out[i] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def __call__(self, tensors: Iterable[np.ndarray]) -> np.ndarray:
        with self._lock:
            self._out = {}
            n = 0
            try:
                for x in tensors:  # start_async waits for a free request: the next image is prepared meanwhile
                    self.queue.start_async({0: np.ascontiguousarray(x)}, n)
                    n += 1
            finally:
                self.queue.wait_all()
            missing = [i for i in range(n) if i not in self._out]
            if missing:
                raise RuntimeError(f"{len(missing)} of {n} inference requests returned no vector")
            return np.concatenate([self._out[i] for i in range(n)]) if n else np.zeros((0, 0), np.float32)


def open_streams(embedder: Any, precision: str = "f32") -> InferStreams | None:
    """Streams over ``embedder``'s OpenVINO export on a CPU; None for another runtime, a single stream, or
    when anything goes wrong (said in one warning line: queries then run on the runtime's session)."""
    if getattr(embedder, "runtime_used", None) != "openvino" or embedder.device.type != "cpu":
        return None
    try:
        import openvino as ov

        from retrieval.runtimes import RUNTIMES
        from retrieval.runtimes.check import EXACT_COSINE, min_cosine, probe_batch
        from retrieval.runtimes.export import cached_export, input_size
        from retrieval.workers import usable_cores
        folder, _ = cached_export(embedder.model, RUNTIMES.get("openvino"))
        core = ov.Core()
        core.set_property({"ENABLE_MMAP": False})  # as the runtime's session: weights read, never mapped
        compiled = core.compile_model(core.read_model(str(folder / "model.xml")), "CPU",
                                      {"INFERENCE_PRECISION_HINT": precision,
                                       "INFERENCE_NUM_THREADS": usable_cores(), "PERFORMANCE_HINT": "THROUGHPUT"})
        jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        if int(compiled.get_property("NUM_STREAMS")) < 2 or jobs < 2:
            return None  # one stream: nothing would run in parallel
        streams = InferStreams(compiled, jobs)
        probe = probe_batch(input_size(embedder.model))
        cosine = min_cosine(embedder.session(probe), streams(p[None].numpy() for p in probe))
        floor = EXACT_COSINE if precision == "f32" else 0.99
        if cosine < floor:
            log.warning(f"OpenVINO streams give other vectors than its session (min cosine {cosine:.5f}); "
                        "concurrent queries run one after another")
            return None
        return streams
    except Exception as exc:  # noqa: BLE001 - streams are a speed-up: without them queries still run
        text = str(exc).strip().splitlines()
        log.warning(f"OpenVINO streams unavailable ({type(exc).__name__}: {text[0][:160] if text else ''}); "
                    "concurrent queries run one after another")
        return None
