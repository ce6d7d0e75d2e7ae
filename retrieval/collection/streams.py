"""Parallel inference streams: several single-image forwards at once, one per group of a CPU's cores.

OpenVINO's recommended way to serve concurrent requests on a CPU: the network compiled with the THROUGHPUT
performance hint (it picks the number of streams for the model and the machine) and asynchronous infer
requests, twice OPTIMAL_NUMBER_OF_INFER_REQUESTS (AsyncInferQueue's design, here shared by several calling
threads so that no call waits for another's images). On this 2-core CPU, single images on
2 streams ran 248 images/s against 214 for the latency session on batches of 16 (and took less CPU per
image); a lone query keeps the runtime's LATENCY session (all cores on one image). The streams run on
the runtime session's own THROUGHPUT compilation; their vectors are checked against its LATENCY ones on
a probe batch before use.
"""
from __future__ import annotations

import logging
import queue
import threading
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Iterable

import numpy as np

log = logging.getLogger(__name__)


class InferStreams:
    """``streams(tensors)``: uint8 [1, 3, H, W] arrays (any iterable, consumed as requests free up) -> vectors
    [n, dim] in the same order. Callers in several threads share the requests: one group's images start while
    another's finish, so the streams never wait for a whole group."""

    def __init__(self, compiled: Any, jobs: int):
        self.jobs = jobs
        self.streams = int(compiled.get_property("NUM_STREAMS"))
        self._requests = [compiled.create_infer_request() for _ in range(jobs)]
        self._futures: list[Future | None] = [None] * jobs  # the caller waiting on each request
        self._idle: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot, request in enumerate(self._requests):
            # set once, holding neither the request nor these streams: a callback that did (the request
            # as its userdata, a bound method) made a cycle through OpenVINO that Python's collector cannot
            # see, and every swap to another model kept the old compiled network (~47 MB) for good
            request.set_callback(_callback(weakref.ref(self)), slot)
            self._idle.put(slot)
        self._count = threading.Lock()
        self._in_flight = 0

    def busy(self) -> bool:
        """Some request is running (a lone query then joins the streams instead of taking every core)."""
        return self._in_flight > 0

    def _finish(self, slot: int) -> tuple[Future, np.ndarray | None, BaseException | None]:
        """A finished request's caller, vector (a copy: the request is reused) or error; the request freed."""
        future, self._futures[slot] = self._futures[slot], None
        try:
            vector, error = np.array(self._requests[slot].get_output_tensor(0).data, dtype=np.float32), None
        except BaseException as exc:  # noqa: BLE001 - the waiting caller gets it
            vector, error = None, exc
        self._release(slot)  # free before the waiter wakes: busy() is already false when the last result is in
        return future, vector, error

    def _release(self, slot: int) -> None:
        with self._count:
            self._in_flight -= 1
        self._idle.put(slot)

    def __call__(self, tensors: Iterable[np.ndarray]) -> np.ndarray:
        futures: list[Future] = []
        try:
            for x in tensors:
                slot = self._idle.get()  # waits for a free request: the next image is prepared meanwhile
                future: Future = Future()
                self._futures[slot] = future
                with self._count:
                    self._in_flight += 1
                try:
                    self._requests[slot].start_async({0: np.ascontiguousarray(x)})
                except BaseException:
                    self._release(slot)
                    raise
                futures.append(future)
        except BaseException:
            # never return with a callback pending: one that runs while the compiled model is being
            # destroyed (a swap to another model, the process ending) can deadlock on the GIL
            for f in futures:
                f.exception()
            raise
        if not futures:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([f.result() for f in futures])


def _callback(streams: weakref.ref[InferStreams]) -> Callable[[int], None]:
    """A request's completion callback that reaches its streams through a weak reference."""
    def done(slot: int) -> None:
        alive = streams()
        if alive is None:
            return
        future, vector, error = alive._finish(slot)
        # dropped before the caller wakes: the caller holds the streams until its results are in, so they are
        # never freed here, inside a callback of one of their own requests
        del alive
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(vector)
    return done


def open_streams(embedder: Any) -> InferStreams | None:
    """Streams over ``embedder``'s OpenVINO export (a CPU runtime); None for another runtime, a single stream,
    or when anything goes wrong (said in one warning line: queries then run on the runtime's session)."""
    if getattr(embedder, "runtime_used", None) != "openvino":
        return None
    try:
        from retrieval.runtimes.check import EXACT_COSINE, min_cosine, probe_batch
        # the runtime session's own throughput compilation (the one a build streams through): its
        # settings and one copy of the weights
        compiled = embedder.session.throughput()
        optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        if int(compiled.get_property("NUM_STREAMS")) < 2 or optimal < 2:
            return None  # one stream: nothing would run in parallel
        # twice the optimal number: a stream starts its queued request at once, while the finished one's
        # Python callback waits for the GIL (16 clients: 0.84-0.93x the bare batch of 16, against 0.74-0.83x)
        streams = InferStreams(compiled, 2 * optimal)
        probe = probe_batch(embedder.prep.size)
        cosine = min_cosine(embedder.session(probe), streams(p[None] for p in probe))
        floor = EXACT_COSINE if embedder.settings.precision == "f32" else 0.99
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
