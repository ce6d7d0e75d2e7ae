"""The micro-batcher on its own: groups, two groups in flight, and errors that stay with their request."""
from __future__ import annotations

import asyncio
import threading

import pytest

from cli.server.batching import MicroBatcher


def test_a_group_runs_while_another_waits_for_its_model():
    started, release = threading.Event(), threading.Event()

    def run(items, names, key):
        if items == ["slow"]:
            started.set()
            assert release.wait(30)
        return [f"{x} done" for x in items]

    async def main():
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(run, max_batch=4)
        slow = asyncio.ensure_future(batcher.submit("slow", "s", 1))
        assert await loop.run_in_executor(None, started.wait, 30)
        fast = await asyncio.wait_for(batcher.submit("fast", "f", 1), 30)  # not behind the slow group
        release.set()
        out = (await asyncio.wait_for(slow, 30), fast, batcher.batches)
        batcher.close()
        return out
    assert asyncio.run(main()) == ("slow done", "fast done", [1, 1])


def test_each_request_gets_its_own_result_or_error():
    def run(items, names, key):
        return [ValueError(f"bad {x}") if x.startswith("bad") else f"{x} ok" for x in items]

    async def main():
        batcher = MicroBatcher(run, max_batch=8, max_wait=0.5)
        got = await asyncio.gather(*(batcher.submit(x, x, 1) for x in ("a", "bad b", "c")), return_exceptions=True)
        batcher.close()
        return got, batcher.batches
    (a, b, c), batches = asyncio.run(main())
    assert (a, c) == ("a ok", "c ok") and isinstance(b, ValueError) and str(b) == "bad bad b"
    assert batches == [3]  # they arrived together: one group


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(lambda *a: [], in_flight=0)
