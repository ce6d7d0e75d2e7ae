"""Clustering runs stored in the catalog: one ClusterRun row per run, one ClusterMember row per image."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

from sqlalchemy import func, insert, select

from index.catalog.database import Catalog
from index.catalog.schema import ClusterMember, ClusterRun

_INSERT_CHUNK = 5000


@dataclasses.dataclass(frozen=True)
class Member:
    image_id: int
    cluster: int
    is_medoid: bool


def store_run(catalog: Catalog, *, k: int, method: str, loss: float, silhouette: float | None, seconds: float,
              image_ids: Sequence[int], clusters: Sequence[int], medoid_ids: Sequence[int],
              sampled: bool = False) -> int:
    """Record a clustering run and every image's cluster (and medoid flag) in one transaction; its id."""
    if len(image_ids) != len(clusters):
        raise ValueError(f"{len(image_ids)} image ids but {len(clusters)} cluster ids")
    medoids = {int(i) for i in medoid_ids}
    unknown = medoids - {int(i) for i in image_ids}
    if unknown:
        raise ValueError(f"medoid ids {sorted(unknown)[:5]} are not among the clustered images")
    with catalog.session() as s:
        run = ClusterRun(k=int(k), method=method, loss=float(loss),
                         silhouette=None if silhouette is None else float(silhouette), seconds=float(seconds),
                         created=time.time(), n=len(image_ids), sampled=bool(sampled))
        s.add(run)
        s.flush()
        rows = [{"run_id": run.id, "image_id": int(i), "cluster": int(c), "is_medoid": int(i) in medoids}
                for i, c in zip(image_ids, clusters)]
        for start in range(0, len(rows), _INSERT_CHUNK):
            s.execute(insert(ClusterMember), rows[start:start + _INSERT_CHUNK])
        return int(run.id)


def _latest_id(catalog: Catalog) -> int | None:
    with catalog.session() as s:
        return s.scalar(select(ClusterRun.id).order_by(ClusterRun.id.desc()).limit(1))


def run_members(catalog: Catalog, run_id: int) -> list[Member]:
    """Every image of run ``run_id`` with its cluster and medoid flag, by cluster then image id."""
    with catalog.session() as s:
        rows = s.execute(select(ClusterMember.image_id, ClusterMember.cluster, ClusterMember.is_medoid)
                         .where(ClusterMember.run_id == run_id)
                         .order_by(ClusterMember.cluster, ClusterMember.image_id)).all()
    return [Member(int(i), int(c), bool(m)) for i, c, m in rows]


def latest_members(catalog: Catalog) -> list[Member] | None:
    """The members of the newest run, or None when there is no run."""
    run_id = _latest_id(catalog)
    return None if run_id is None else run_members(catalog, run_id)


def latest_run(catalog: Catalog) -> dict[str, Any] | None:
    """The newest clustering run as a dict (for `retr index info`), or None."""
    with catalog.session() as s:
        run = s.scalars(select(ClusterRun).order_by(ClusterRun.id.desc()).limit(1)).first()
        if run is None:
            return None
        clusters = s.scalar(select(func.count(func.distinct(ClusterMember.cluster)))
                            .where(ClusterMember.run_id == run.id))
        return {"id": run.id, "k": run.k, "method": run.method, "loss": run.loss,
                "silhouette": run.silhouette, "seconds": run.seconds, "created": run.created, "n": run.n,
                "sampled": run.sampled, "clusters": int(clusters or 0)}
