"""Connecting to a Ray cluster for `--ray ADDRESS`, and checking it can do the work before anything is written.

``local`` starts a private Ray instance on this machine (``ray.init(address="local")``: never a cluster
that a killed run left recorded in /tmp/ray), ``auto`` joins the cluster `ray start` runs on this machine,
``HOST:PORT`` the cluster whose head listens there (``ray://HOST:PORT`` through Ray Client). Ray is an
optional extra (``pip install '.[ray]'``, which installs ``ray[data]``), imported here and nowhere else unless ``--ray`` is given.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from index.errors import RetrError
from retrieval.images.decode import shown

T = TypeVar("T")
RAY_MISSING = ("--ray needs Ray, which is not installed: pip install 'ray[data]>=2.50' "
               "(on this machine and on every node of the cluster)")
ADDRESS_HELP = "local (a Ray instance on this machine), auto (the cluster `ray start` runs here) or HOST:PORT"
CONNECT_SECONDS = 5.0  # a head that does not accept a TCP connection in this long is unreachable
CHECK_SECONDS = 120.0  # every node answers the readability check within this long
CHECKED_PATHS = 32  # files each node is asked to open, spread over the list (plus every root)
_HOST_PORT = re.compile(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where the work runs: ``address`` as `--ray` takes it; ``actors``: embedding actors (None: one per GPU
    of the cluster, else one per node); ``num_cpus``: the CPUs a ``local`` instance may use (None: all)."""

    address: str
    actors: int | None = None
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.address not in ("local", "auto") and not _HOST_PORT.fullmatch(self.address):
            raise RetrError(f"--ray {self.address!r} is not an address: use {ADDRESS_HELP}")
        if self.actors is not None and (isinstance(self.actors, bool) or not isinstance(self.actors, int)
                                        or self.actors < 1):
            raise RetrError(f"--ray-actors must be a whole number of at least 1, got {self.actors!r}")


@dataclasses.dataclass(frozen=True)
class Node:
    node_id: str
    address: str
    cpus: float
    gpus: float


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    address: str
    nodes: tuple[Node, ...]

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    def default_actors(self) -> int:
        """One actor per GPU where the cluster has GPUs (each holds one), else one per node with a CPU (each
        runs the network on all of its node's cores)."""
        if self.gpus >= 1:
            return int(self.gpus)
        return max(1, sum(1 for n in self.nodes if n.cpus > 0))


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the pipeline needs Ray Data (the ray extra installs ray[data])
    except ImportError:
        raise RetrError(RAY_MISSING) from None
    return ray


def _reachable(host: str, port: int) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=CONNECT_SECONDS):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _recorded_address() -> str | None:
    """The address `ray start` recorded on this machine (what ``ray.init("auto")`` joins), if any."""
    try:
        return Path("/tmp/ray/ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _check_address(address: str) -> None:
    """Refuse an address with no cluster behind it in seconds, with what to do (``ray.init`` waits a minute)."""
    if address == "local":
        return
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS") or _recorded_address() or ""
        if not target:
            raise RetrError("--ray auto: no Ray cluster runs on this machine; start one with `ray start --head` "
                            "(and `ray start --address HEAD:6379` on each worker node), or use --ray local")
    found = _HOST_PORT.fullmatch(target)
    if found is None:
        return  # an address form Ray knows and we do not: Ray says what is wrong
    why = _reachable(found.group(1), int(found.group(2)))
    if why is not None:
        raise RetrError(f"cannot reach the Ray cluster at {target} ({why}): start it with `ray start --head` "
                        f"on the head node, check the address, or use --ray local")


def _nodes(ray: Any) -> tuple[Node, ...]:
    return tuple(Node(n["NodeID"], n.get("NodeManagerAddress", "?"), float(n["Resources"].get("CPU", 0)),
                      float(n["Resources"].get("GPU", 0)))
                 for n in ray.nodes() if n.get("Alive"))


@contextlib.contextmanager
def connect(settings: RaySettings) -> Iterator[ClusterInfo]:
    """Ray connected for the block (a connection this process already holds is used and kept open)."""
    ray = import_ray()
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from ray.data import DataContext
    context = DataContext.get_current()
    context.enable_progress_bars = False  # retr shows its own bar
    context.print_on_execution_start = False
    if ray.is_initialized():  # a notebook or test session that connected itself
        yield ClusterInfo(settings.address, _nodes(ray))
        return
    _check_address(settings.address)
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if settings.address == "local":
        kwargs.update(num_cpus=settings.num_cpus, include_dashboard=False)
    try:
        ray.init(address=settings.address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray's many connection errors become one line
        raise RetrError(f"cannot start or join Ray at {settings.address!r}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    try:
        yield ClusterInfo(settings.address, _nodes(ray))
    finally:
        ray.shutdown()


def _unreadable(paths: Sequence[bytes]) -> list[str]:
    """On a node: the paths it cannot open for reading (folders: cannot list)."""
    bad = []
    for raw in paths:
        path = os.fsdecode(raw)
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, "rb") as f:
                    f.read(1)
        except OSError:
            bad.append(path)
    return bad


def on_every_node(cluster: ClusterInfo, fn: Callable[..., T], *args: Any) -> list[tuple[Node, T]]:
    """``fn(*args)`` run once on each node of ``cluster`` (no CPU reserved, not retried): (node, answer) pairs;
    raises when some node does not answer within CHECK_SECONDS."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    probe = ray.remote(num_cpus=0, max_retries=0)(fn)
    pending = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
               .remote(*args): n for n in cluster.nodes}
    return list(zip(pending.values(), ray.get(list(pending), timeout=CHECK_SECONDS)))


def check_readable(cluster: ClusterInfo, roots: Sequence[str], files: Sequence[str]) -> None:
    """Refuse a cluster where some node cannot read the images at the paths the driver sees (no shared
    filesystem, another mount point): each node opens every root and a sample of the files."""
    step = max(1, len(files) // CHECKED_PATHS)
    sample = [os.fsencode(p) for p in [*roots, *files[::step][:CHECKED_PATHS]]]
    try:
        answers = on_every_node(cluster, _unreadable, sample)
    except Exception as exc:  # noqa: BLE001 - a node that cannot run the check cannot run the build
        raise RetrError(f"the Ray cluster's nodes did not answer a check of the image paths "
                        f"({type(exc).__name__}); is retr installed on every node?") from None
    for node, bad in answers:
        if bad:
            raise RetrError(f"the Ray node at {node.address} cannot read {shown(bad[0])}"
                            f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}: every node must see the "
                            f"images at the same paths (a shared filesystem mounted at the same place)")


@contextlib.contextmanager
def connected(settings: RaySettings, roots: Sequence[str], files: Sequence[str]) -> Iterator[ClusterInfo]:
    """``connect``, then ``check_readable``: the cluster a command's work runs on, refused before anything is
    written when some node cannot read ``roots`` and a sample of ``files``."""
    with connect(settings) as cluster:
        check_readable(cluster, roots, files)
        yield cluster
