"""One simulated two-node Ray cluster for the session (about 7 s to start), every process on 127.0.0.1."""
from __future__ import annotations

import os

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray listens and connects on loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # tests are offline


@pytest.fixture(scope="session")
def ray_cluster(_export_cache):
    """A head node and one worker node of 1 CPU each, this process its driver (``ray.init`` done: builds given
    an address use this connection). Yields the ``ray.cluster_utils.Cluster``."""
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
