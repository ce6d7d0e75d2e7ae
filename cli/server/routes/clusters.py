"""The latest clustering run."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from cli.server.state import Col

router = APIRouter(tags=["clusters"])


@router.get("/api/clusters")
async def clusters(col: Col) -> dict[str, Any]:
    """The latest clustering run (`retr cluster`), each cluster's medoid first."""
    return await run_in_threadpool(col.clusters) or {"run": None, "clusters": []}
