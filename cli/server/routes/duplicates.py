"""Duplicate groups, and moving a group's duplicates to the quarantine folder and back."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from cli.server.errors import ApiError, Kind
from cli.server.params import Text
from cli.server.state import Col, ServerState, State

router = APIRouter(tags=["duplicates"])


class QuarantineIn(BaseModel):
    keep: Text


class UndoIn(BaseModel):
    manifest: Text


def quarantine_dir(state: ServerState, col: Any) -> Path:
    return Path(state.opts.quarantine_dir or col.dir / "quarantine")


@router.get("/api/duplicates")
async def duplicates(state: State, col: Col) -> dict[str, Any]:
    """Duplicate groups, as `retr dedupe --json` (plus ``ids``: path -> catalog id); computed once per
    index version (a rebuild, a quarantine or an undo computes them again)."""
    def compute() -> dict[str, Any]:
        result = col.duplicates()
        out = result.to_json()
        groups = [*result.groups, *result.similar]  # copies, and other shots of a scene
        paths = [g.keep.path for g in groups] + [d.item.path for g in groups for d in g.duplicates]
        out["ids"] = {p: i for p in paths if (i := col.id_of(p)) is not None}
        return out
    async with state.duplicates_lock:  # callers at once wait for one computation
        key = (col.version, state.writes)
        if state.duplicates is None or state.duplicates[0] != key:
            state.duplicates = (key, await run_in_threadpool(compute))
        return state.duplicates[1]


@router.post("/api/duplicates/quarantine")
async def quarantine(state: State, col: Col, body: QuarantineIn) -> dict[str, Any]:
    """Move the duplicates of the group that keeps ``keep`` to the quarantine folder (undo manifest)."""
    dest = quarantine_dir(state, col)

    def act() -> Any:
        with state.write_lock:
            try:
                return col.quarantine(body.keep, dest)
            finally:
                state.writes += 1
    return (await run_in_threadpool(act)).to_json()


@router.get("/api/duplicates/quarantine")
async def quarantines(col: Col) -> dict[str, Any]:
    """The quarantine manifests whose files are still in the quarantine (newest first), from the catalog's
    own record of the moves: each can be undone, even one whose answer never reached the client."""
    return {"manifests": await run_in_threadpool(col.quarantines)}


@router.post("/api/duplicates/undo")
async def undo(state: State, col: Col, body: UndoIn) -> dict[str, Any]:
    """Reverse a quarantine from its manifest (under the quarantine folder): only what the catalog recorded
    moving goes back, from the quarantine to where it came from, each image under its own id."""
    dest = quarantine_dir(state, col).resolve()
    manifest = Path(os.path.realpath(body.manifest))  # through every symlink, before the check
    if dest not in manifest.parents:
        raise ApiError(Kind.BAD_INPUT, f"not a quarantine manifest of this server: {body.manifest}")

    def act() -> Any:
        with state.write_lock:
            try:
                return col.undo(manifest)
            finally:
                state.writes += 1
    return (await run_in_threadpool(act)).to_json()
