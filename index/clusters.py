"""Clustering runs stored in the catalog."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from index.catalog import Catalog
from index.schema import ClusterMember, ClusterRun


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
