"""ordered_map's contract on a Ray cluster: order, the shared value, errors, a task whose worker dies."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from retrieval.scaleout.cluster import ClusterInfo
from retrieval.scaleout.tasks import mapper_for, ray_ordered_map
from retrieval.workers import ordered_map


def scaled(shared: dict, x: int) -> tuple[int, int]:
    return x * shared["factor"], os.getpid()


def fails_on_three(_shared: None, x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def dies_once(marker: str, x: int) -> int:
    """Kills its own worker process the first time it sees item 2 (as a node or worker lost mid-task)."""
    if x == 2 and not Path(marker).exists():
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_results_come_in_order_with_the_shared_value(ray_cluster):
    tasks = [(i,) for i in range(40)]
    got = list(ray_ordered_map(scaled, tasks, shared={"factor": 3}, workers=2, ahead=1))
    assert [v for v, _ in got] == [v for v, _ in ordered_map(scaled, tasks, shared={"factor": 3}, workers=0)]
    assert len({pid for _, pid in got} - {os.getpid()}) >= 1  # ran in Ray's workers, not here


def test_an_error_raised_by_the_function_reaches_the_caller_as_itself(ray_cluster):
    with pytest.raises(ValueError, match="bad item 3"):
        list(ray_ordered_map(fails_on_three, [(i,) for i in range(6)], workers=2))


def test_a_task_whose_worker_dies_is_run_again(ray_cluster, tmp_path):
    marker = str(tmp_path / "died")
    assert list(ray_ordered_map(dies_once, [(i,) for i in range(5)], shared=marker, workers=2)) == [0, 1, 2, 3, 4]
    assert Path(marker).read_text() == "died"


def test_the_mapper_uses_the_cluster_s_cpus_whatever_the_caller_asks(ray_cluster):
    mapped = mapper_for(ClusterInfo("test", ()))
    assert [v for v, _ in mapped(scaled, [(1,), (2,)], shared={"factor": 2}, workers=99)] == [2, 4]


def test_a_node_shares_the_index_when_it_writes_the_folder_and_opens_the_catalog(tmp_path):
    from retrieval.scaleout.tasks import _shares
    from index.catalog.database import Catalog
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    Catalog(url).close()  # a catalog made
    assert _shares(str(tmp_path), url) is None
    assert _shares(str(tmp_path / "absent"), url) == f"cannot write {tmp_path / 'absent'}"
    assert _shares(str(tmp_path), "postgresql+psycopg2://nobody@127.0.0.1:9/none").startswith(
        "cannot open the catalog (")
