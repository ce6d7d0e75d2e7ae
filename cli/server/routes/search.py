"""Search by an uploaded image (or a box of it) and by a catalog image's id ("more like this")."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from cli.server.errors import ApiError, Kind, kind_of
from cli.server.params import Digits
from cli.server.state import Col, State, json_bytes

router = APIRouter(tags=["search"])

K = Annotated[Digits, Query(ge=1, le=1000)]
Probe = Annotated[Digits | None, Query(ge=1, le=65536)]


class HitOut(BaseModel):
    rank: int
    id: int
    path: str
    score: float
    region: dict[str, Any] | None = None


class SearchOut(BaseModel):
    query: str
    results: list[HitOut]
    query_box: list[float] | None = None
    query_label: str | None = None


@router.post("/api/search", response_model=SearchOut, response_model_exclude_unset=True)
async def search_upload(request: Request, state: State, col: Col,
                        image: Annotated[UploadFile, File(description="The query image (one).")],
                        k: K = 10, nprobe: Probe = None, ef: Probe = None,
                        regions: bool = False, box: str | None = None) -> Response:
    """The k nearest catalog images of an uploaded image (or of its ``box`` crop, x0,y0,x1,y1)."""
    if len((await request.form()).getlist("image")) != 1:
        raise ApiError(Kind.BAD_INPUT, "send exactly one image field")
    data = await _read_upload(image, state.opts.max_upload)
    name = image.filename or "upload"
    if not regions and box is None:
        key = (k, nprobe, ef)
        if state.batching:
            return _answer(await state.batcher.submit(data, name, key))
        return _answer((await run_in_threadpool(state.run_batch, [data], [name], key))[0])

    def one() -> bytes:
        from retrieval.regions.proposal import parse_box
        the_box = parse_box(box) if box is not None else None
        picture, scale = _reduced(data, col.embedder.prep.draft_size, the_box)
        scaled = None if the_box is None else tuple(v * s for v, s in zip(the_box, scale * 2))
        result = col.query(picture, names=[name], k=k, nprobe=nprobe, ef=ef, regions=regions, box=scaled)[0]
        if getattr(result, "box", None) is not None:  # back in the uploaded picture's own pixels
            result = dataclasses.replace(result, box=tuple(v / s for v, s in zip(result.box, scale * 2)))
        return json_bytes(result.to_json())
    return _answer(await run_in_threadpool(one))


@router.get("/api/search", response_model=SearchOut, response_model_exclude_unset=True)
async def search_id(col: Col, id: Annotated[Digits, Query(description="A catalog image id.")],
                    k: K = 10, nprobe: Probe = None, ef: Probe = None,
                    regions: bool = False, box: str | None = None) -> Response:
    """The k nearest catalog images of catalog image ``id`` ("more like this")."""
    if col.store.path_of(id) is None:
        raise ApiError(Kind.NOT_FOUND, f"no image with id {id} in the index")

    def one() -> bytes:
        result = col.query(id, names=[f"id:{id}"], k=k, nprobe=nprobe, ef=ef, regions=regions, box=box)
        return json_bytes(result[0].to_json())
    return _answer(await run_in_threadpool(one))


def _reduced(data: bytes, side: int, box: tuple[float, ...] | None) -> tuple[Any, tuple[float, float]]:
    """The upload decoded at the smallest scale whose shorter side (or the box's) stays >= the model's
    ``side``, and that scale (x, y) against the full-size picture."""
    from retrieval.images.decode import ImageLoadError, decode_sized
    try:
        picture, width, height = decode_sized(data, draft_size=side, reduce=True, region=box)
    except ImageLoadError as exc:
        raise ApiError(kind_of(exc), f"cannot read the uploaded image: {exc}") from None
    return picture, (picture.width / width, picture.height / height)


def _answer(body: Any) -> Response:
    """A search's JSON, serialised in the worker thread (the OpenAPI schema still says SearchOut)."""
    if isinstance(body, BaseException):
        raise body
    return Response(body, media_type="application/json")


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    """The uploaded file's bytes: over ``limit`` is refused (the whole body was already capped at the limit
    plus the form's overhead while it streamed, by cli.server.guards.BodyLimit), and so is an empty file."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(Kind.TOO_LARGE, f"upload too large: over {limit:,} bytes (limit set by --max-upload-mb)")
    if not data:
        raise ApiError(Kind.BAD_INPUT, "cannot read the uploaded image: empty file (0 bytes)")
    return data
