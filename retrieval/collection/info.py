"""What `retr index info` reports: counts, model, index type and size on disk, read without torch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from index.catalog.clusters import latest_run
from index.errors import RetrError
from index.directory import IndexStore


def index_info(index_dir: str | Path, db_url: str | None = None) -> dict[str, Any]:
    """What `retr index info` reports."""
    with IndexStore.open(index_dir, db_url) as store:  # reads only: a problem is reported, not repaired
        m = store.manifest
        if m is None:
            raise RetrError(f"{index_dir} has no manifest: build it with `retr index build`")
        if (problem := store.vectors_problem()) is not None:
            store.note(f"{problem}; queries search the catalog's vectors in memory until `retr index build` "
                       "rewrites it")
        counts = store.catalog.counts()
        return {"images": counts["images"], "vectors": m.vectors, "errors": counts["errors"],
                "model": m.model.get("spec"), "dim": m.dim, "index_type": m.index_type, "factory": m.factory,
                "search": m.search, "bytes": store.bytes_on_disk(), "weights": m.model.get("weights"),
                "catalog": store.catalog.safe_url, "cluster_run": latest_run(store.catalog),
                **({"ivfdata": {"file": m.ivfdata["file"], "bytes": m.ivfdata["bytes"]}} if m.ivfdata else {}),
                **({"regions": m.extra["regions"]} if "regions" in m.extra else {})}
