"""Catalog images: the file and a cached thumbnail (only catalog rows of this index are served)."""
from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from cli.server.errors import ApiError, Kind
from cli.server.params import Digits
from cli.server.state import Col, State

router = APIRouter(tags=["images"])
ImageId = Annotated[Digits, Path(description="A catalog image id.")]


@router.get("/api/images/{image_id}")
async def image_file(col: Col, image_id: ImageId) -> FileResponse:
    """The file of a catalog image (only catalog rows of this index are served)."""
    path = await run_in_threadpool(col.path_of, image_id)
    if not os.path.isfile(path):
        raise ApiError(Kind.NOT_FOUND, f"image {image_id} is no longer on disk")
    return FileResponse(path)


@router.get("/api/images/{image_id}/thumbnail")
async def thumbnail(state: State, col: Col, image_id: ImageId,
                    size: Annotated[Digits, Query(ge=16, le=1024)] = 256) -> Response:
    """A JPEG thumbnail of a catalog image, at most ``size`` pixels on its longer side (cached)."""
    data = await run_in_threadpool(state.thumbnail, image_id, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
