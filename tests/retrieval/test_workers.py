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
