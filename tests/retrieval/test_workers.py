import os

import pytest

from retrieval import workers


@pytest.mark.parametrize("cores, loader, embed, pool", [(1, 0, 0, 1), (2, 1, 2, 2), (4, 3, 3, 4), (64, 8, 8, 64)])
def test_each_worker_count_means_one_thing(monkeypatch, cores, loader, embed, pool):
    monkeypatch.setattr(workers, "usable_cores", lambda: cores)
    # decode workers leave the main process its core and stop at 8; beside an embedding forward at least
    # two on two cores; a hashing pool takes every core
    assert workers.loader_workers() == loader
    assert workers.embed_workers() == embed
    assert workers.process_pool_workers() == pool


def test_usable_cores_is_asked_at_call_time(monkeypatch):
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert workers.usable_cores() == 3


class _Node:
    def __init__(self):
        self.other = self  # a reference cycle: only the garbage collector frees it


def test_frozen_heap_exempts_the_objects_of_now_and_hands_them_back():
    import gc
    import weakref
    assert gc.get_freeze_count() == 0
    node = _Node()
    alive = weakref.ref(node)
    with workers.frozen_heap():
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None  # frozen: a full collection passes it by
        with workers.frozen_heap():  # an enclosing freeze is left as it is
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None  # handed back and collected: nothing leaks


def test_frozen_heap_ends_on_an_error_and_leaves_a_programs_own_freeze(monkeypatch):
    import gc
    with pytest.raises(KeyError):
        with workers.frozen_heap():
            raise KeyError("x")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        with workers.frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the program's freeze is not undone
    finally:
        gc.unfreeze()


def _square(offset, x):
    import os
    return x * x + offset, os.getpid()


def test_ordered_map_keeps_the_order_shares_one_value_and_queues_a_bounded_number_ahead():
    from retrieval.workers import ordered_map
    pulled = []

    def tasks():
        for x in range(20):
            pulled.append(x)
            yield (x,)
    here = [v for v, _ in ordered_map(_square, ((x,) for x in range(20)), shared=100, workers=0)]
    assert here == [x * x + 100 for x in range(20)]
    out, pids = [], set()
    stream = ordered_map(_square, tasks(), shared=100, workers=2, ahead=1)
    for value, pid in stream:
        out.append(value)
        pids.add(pid)
        assert len(pulled) <= len(out) + 2 * (1 + 1)  # never more than workers * (ahead + 1) queued
    assert out == here and len(pids) >= 1 and os.getpid() not in pids


def test_ordered_map_left_early_stops_its_workers():
    import multiprocessing

    from retrieval.workers import ordered_map
    stream = ordered_map(_square, ((x,) for x in range(100)), shared=0, workers=2, ahead=1)
    assert next(stream)[0] == 0
    assert len(multiprocessing.active_children()) >= 1
    stream.close()
    assert multiprocessing.active_children() == []
