"""Dynamic micro-batching: image queries that arrive together are served together.

Requests wait on an asyncio queue; one worker takes up to ``max_batch`` of them (waiting at most
``max_wait`` seconds for more after the first), runs the group in a worker thread so the event loop
never blocks on the model, and hands each request its own result. Two groups may run at once, so one is
decoded while the other's forward passes finish (a group never waits for the previous one to drain). ``run`` returns one result or one
exception per request, so a bad request fails only itself. How a group is embedded is ``run``'s choice:
one forward pass of the batch (a GPU), or parallel single-image streams (OpenVINO on a CPU).
"""
from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Hashable, Sequence

Run = Callable[[Sequence[Any], Sequence[str], Hashable], Sequence[Any]]  # a result or an exception each


@dataclasses.dataclass
class _Request:
    key: Hashable  # requests batch together only with the same key (k, nprobe, ef)
    picture: Any
    name: str
    future: asyncio.Future


class MicroBatcher:
    """``await submit(picture, name, key)`` -> that picture's result from ``run(pictures, names, key)``."""

    def __init__(self, run: Run, *, max_batch: int = 16, max_wait: float = 0.0, in_flight: int = 2):
        if max_batch < 1 or max_wait < 0 or in_flight < 1:
            raise ValueError(f"max_batch and in_flight must be >= 1 and max_wait >= 0, got {max_batch}, "
                             f"{in_flight}, {max_wait}")
        self.run, self.max_batch, self.max_wait, self.in_flight = run, max_batch, max_wait, in_flight
        self.executor = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="retr-embed")
        self.batches: list[int] = []  # sizes of the batches run (for tests and benchmarks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def submit(self, picture: Any, name: str, key: Hashable) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():  # a new event loop: new worker
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._work())
        request = _Request(key, picture, name, loop.create_future())
        await self._queue.put(request)
        return await request.future

    async def _work(self) -> None:
        loop, queue = asyncio.get_running_loop(), self._queue
        slots = asyncio.Semaphore(self.in_flight)
        while True:
            await slots.acquire()  # before taking a group: what queues up meanwhile joins it
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except asyncio.TimeoutError:
                    break
            task = loop.create_task(self._run_groups(loop, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _run_groups(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        groups: dict[Hashable, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.key, []).append(request)
        for key, requests in groups.items():
            await self._run_group(loop, key, requests)

    async def _run_group(self, loop: asyncio.AbstractEventLoop, key: Hashable, requests: list[_Request]) -> None:
        self.batches.append(len(requests))
        try:
            results = await loop.run_in_executor(self.executor, self.run, [r.picture for r in requests],
                                                 [r.name for r in requests], key)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error, the worker goes on
            if len(requests) > 1:  # one bad request must not fail the others: run them one by one
                for request in requests:
                    await self._run_group(loop, key, [request])
                return
            if not requests[0].future.done():
                requests[0].future.set_exception(exc)
            return
        for request, result in zip(requests, results):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for task in list(self._running):
            task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
