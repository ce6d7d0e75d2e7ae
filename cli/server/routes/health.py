"""Liveness, readiness and the index's facts."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from cli.server.state import Col, State

open_router = APIRouter(tags=["health"])  # no API key needed
router = APIRouter(tags=["index"])


@open_router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no key needed)."""
    return {"status": "ok"}


@open_router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """The model and index are loaded."""
    if state.collection is None:
        return JSONResponse({"status": "error" if state.error else "loading", "detail": state.error},
                            status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/api/info")
async def info(col: Col) -> dict[str, Any]:
    """What `retr index info --json` reports."""
    return await run_in_threadpool(col.info)
