"""The `retr serve` FastAPI app: the warm Collection behind JSON routes, and the web UI at `/`.

Errors are JSON ``{"detail": "one line"}``: 4xx for anything a request can cause (a bad image, an
unknown id, a bad box, a missing key), never a 500 for input. Blocking work (decoding, the model,
faiss, the catalog) runs in worker threads; whole-image searches go through the micro-batcher, each
search in one worker-thread call (decode, forward, faiss, result rows and JSON together).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import io
import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from cli.server.batching import MicroBatcher
from index.errors import RetrError

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    api_key: str | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD  # bytes
    batching: bool = True  # requests that arrive together are served together (see Collection.query_each)
    max_batch: int = 16
    max_wait: float = 0.0  # seconds the first request of a batch waits for others (0: takes what queued
    # up while the previous batch ran, so a lone request never waits)
    refresh_every: float = 2.0  # seconds between checks of the manifest's version (0: every request)
    quarantine_dir: str | None = None  # where duplicates are moved (default INDEX/quarantine)


# -- response models (the OpenAPI schema at /docs) -----------------------------------------------------

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


class QuarantineIn(BaseModel):
    keep: str


class UndoIn(BaseModel):
    manifest: str


async def _collection(request: Request) -> Any:
    """The warm Collection (swapped to a rebuilt index when its manifest changed); 503 while loading."""
    return await request.app.state.retr.ready()


Col = Annotated[Any, Depends(_collection)]


class _ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _status_for(message: str) -> int:
    return 404 if message.startswith("no image with id") else 400


class _State:
    """The warm collection (opened in a thread at start-up), the batcher and the thumbnail cache."""

    def __init__(self, open_collection: Callable[[], Any], opts: ServeOptions):
        self.opts = opts
        self.batching = opts.batching
        self.collection: Any = None
        self.error: str | None = None
        self.batcher = MicroBatcher(self._run_batch, max_batch=opts.max_batch, max_wait=opts.max_wait)
        self.thumbs: OrderedDict[tuple[int, int, str, float], bytes] = OrderedDict()
        self.thumb_lock = threading.Lock()
        self.write_lock = threading.Lock()  # one quarantine or undo at a time
        self.writes = 0  # quarantines and undos done: they change the duplicates without a rebuild
        self.duplicates: tuple[tuple, dict[str, Any]] | None = None  # (index version, writes) -> the groups
        self._duplicates_lock = asyncio.Lock()
        self._checked = 0.0
        self._refresh_lock = asyncio.Lock()
        self._open = open_collection

    def load(self) -> None:
        try:
            collection = self._open()
        except RetrError as exc:
            self.error = str(exc)
            return
        parallel = getattr(collection, "parallel_requests", 0)
        if parallel:  # streams: groups of a few, so each group's answers go out while the next one runs
            self.batcher.max_batch = min(self.opts.max_batch, 2 * parallel)
        self.collection = collection

    def _run_batch(self, uploads: list[Any], names: list[str], key: tuple) -> list[Any]:
        """Searches that arrived together -> each one's JSON body, or the error it alone caused."""
        k, nprobe, ef = key
        from retrieval.images.decode import ImageLoadError
        out: list[Any] = []
        for result in self.collection.query_each(uploads, names=names, k=k, nprobe=nprobe, ef=ef):
            if isinstance(result, ImageLoadError):
                out.append(_ApiError(400, f"cannot read the uploaded image: {result}"))
            elif isinstance(result, BaseException):
                out.append(result)
            else:
                out.append(_json(result.to_json()))
        return out

    async def ready(self) -> Any:
        if self.collection is None:
            raise _ApiError(503, self.error or "the index is still loading; try again in a moment")
        if time.monotonic() - self._checked >= self.opts.refresh_every:
            async with self._refresh_lock:  # one check at a time; the swap itself is atomic in Collection
                if time.monotonic() - self._checked >= self.opts.refresh_every:
                    await run_in_threadpool(self.collection.refresh)
                    self._checked = time.monotonic()
        return self.collection

    def thumbnail(self, image_id: int, size: int) -> bytes:
        from retrieval.images.decode import ImageLoadError, load_image
        path = self.collection.path_of(image_id)
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            raise _ApiError(404, f"image {image_id} is no longer on disk ({exc.strerror})") from None
        key = (image_id, size, path, mtime)
        with self.thumb_lock:
            if key in self.thumbs:
                self.thumbs.move_to_end(key)
                return self.thumbs[key]
        try:
            img = load_image(path, draft_size=size)
        except ImageLoadError as exc:
            raise _ApiError(422, f"cannot read image {image_id}: {exc}") from None
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
        data = out.getvalue()
        with self.thumb_lock:
            self.thumbs[key] = data
            while len(self.thumbs) > 2000:
                self.thumbs.popitem(last=False)
        return data


def create_app(open_collection: Callable[[], Any], opts: ServeOptions = ServeOptions()) -> FastAPI:
    """The app over the collection ``open_collection()`` returns (opened in a thread at start-up, so
    `/healthz` answers while the model loads; `/readyz` says when it is ready)."""
    state = _State(open_collection, opts)
    loader = threading.Thread(target=state.load, name="retr-open-index", daemon=True)
    loader.start()
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        state.batcher.close()
        if state.collection is not None:
            state.collection.close()

    app = FastAPI(title="retr", version="1", description="Image embedding search over a retr index.",
                  lifespan=lifespan)
    app.state.retr = state

    @app.exception_handler(_ApiError)
    async def _api_error(_: Request, exc: _ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(RetrError)
    async def _retr_error(_: Request, exc: RetrError) -> JSONResponse:
        message = str(exc).splitlines()[0] if str(exc) else "bad request"
        return JSONResponse({"detail": message}, status_code=_status_for(message))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}", "errors": _plain(errors)},
                            status_code=422)

    async def authorised(request: Request) -> None:  # async: a sync dependency costs a thread hop
        if not opts.api_key:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else request.cookies.get("retr_key", "")
        if not hmac.compare_digest(token.encode(), opts.api_key.encode()):
            raise _ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY")

    api = dict(dependencies=[Depends(authorised)])

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive (no key needed)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """The model and index are loaded."""
        if state.collection is None:
            return JSONResponse({"status": "error" if state.error else "loading", "detail": state.error},
                                status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/api/info", **api)
    async def info(col: Col) -> dict[str, Any]:
        """What `retr index info --json` reports."""
        return await run_in_threadpool(col.info)

    @app.post("/api/search", response_model=SearchOut, response_model_exclude_unset=True, **api)
    async def search_upload(col: Col, image: Annotated[UploadFile, File(description="The query image.")],
                            k: Annotated[int, Query(ge=1, le=1000)] = 10,
                            nprobe: Annotated[int | None, Query(ge=1, le=65536)] = None,
                            ef: Annotated[int | None, Query(ge=1, le=65536)] = None,
                            regions: bool = False, box: str | None = None) -> Response:
        """The k nearest catalog images of an uploaded image (or of its ``box`` crop, x0,y0,x1,y1)."""
        data = await _read_upload(image, opts.max_upload)
        name = image.filename or "upload"
        if not regions and box is None:
            key = (k, nprobe, ef)
            if state.batching:
                return _json_response(await state.batcher.submit(data, name, key))
            return _json_response((await run_in_threadpool(state._run_batch, [data], [name], key))[0])

        def one() -> bytes:
            result = col.query(_decode(data), names=[name], k=k, nprobe=nprobe, ef=ef, regions=regions, box=box)
            return _json(result[0].to_json())
        return _json_response(await run_in_threadpool(one))

    @app.get("/api/search", response_model=SearchOut, response_model_exclude_unset=True, **api)
    async def search_id(col: Col, id: Annotated[int, Query(description="A catalog image id.")],
                        k: Annotated[int, Query(ge=1, le=1000)] = 10,
                        nprobe: Annotated[int | None, Query(ge=1, le=65536)] = None,
                        ef: Annotated[int | None, Query(ge=1, le=65536)] = None,
                        regions: bool = False, box: str | None = None) -> Response:
        """The k nearest catalog images of catalog image ``id`` ("more like this")."""
        return await _search(col, id, f"id:{id}", k=k, nprobe=nprobe, ef=ef, regions=regions, box=box)

    async def _search(col: Any, query: int, name: str, *, k: int, nprobe: int | None, ef: int | None,
                      regions: bool, box: str | None) -> Response:
        if col.store.path_of(query) is None:
            raise _ApiError(404, f"no image with id {query} in the index")

        def one() -> bytes:
            result = col.query(query, names=[name], k=k, nprobe=nprobe, ef=ef, regions=regions, box=box)
            return _json(result[0].to_json())
        return _json_response(await run_in_threadpool(one))

    @app.get("/api/images/{image_id}", **api)
    async def image_file(col: Col, image_id: int) -> FileResponse:
        """The file of a catalog image (only catalog rows of this index are served)."""
        path = await run_in_threadpool(col.path_of, image_id)
        if not os.path.isfile(path):
            raise _ApiError(404, f"image {image_id} is no longer on disk")
        return FileResponse(path)

    @app.get("/api/images/{image_id}/thumbnail", **api)
    async def thumbnail(col: Col, image_id: int, size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
        """A JPEG thumbnail of a catalog image, at most ``size`` pixels on its longer side (cached)."""
        data = await run_in_threadpool(state.thumbnail, image_id, size)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/duplicates", **api)
    async def duplicates(col: Col) -> dict[str, Any]:
        """Duplicate groups, as `retr dedupe --json` (plus ``ids``: path -> catalog id); computed once per
        index version (a rebuild, a quarantine or an undo computes them again)."""
        def compute() -> dict[str, Any]:
            result = col.duplicates()
            out = result.to_json()
            paths = [g.keep.path for g in result.groups] + [d.item.path for g in result.groups for d in g.duplicates]
            out["ids"] = {p: i for p in paths if (i := col.id_of(p)) is not None}
            return out
        async with state._duplicates_lock:  # callers at once wait for one computation
            key = (col.version, state.writes)
            if state.duplicates is None or state.duplicates[0] != key:
                state.duplicates = (key, await run_in_threadpool(compute))
            return state.duplicates[1]

    @app.post("/api/duplicates/quarantine", **api)
    async def quarantine(col: Col, body: QuarantineIn) -> dict[str, Any]:
        """Move the duplicates of the group that keeps ``keep`` to the quarantine folder (undo manifest)."""
        dest = opts.quarantine_dir or str(col.dir / "quarantine")

        def act() -> Any:
            with state.write_lock:
                try:
                    return col.quarantine(body.keep, dest)
                finally:
                    state.writes += 1
        return (await run_in_threadpool(act)).to_json()

    @app.post("/api/duplicates/undo", **api)
    async def undo(col: Col, body: UndoIn) -> dict[str, Any]:
        """Reverse a quarantine from its manifest (a manifest under the quarantine folder only)."""
        dest = Path(opts.quarantine_dir or col.dir / "quarantine").resolve()
        manifest = Path(os.path.abspath(body.manifest))
        if dest not in manifest.parents or not manifest.is_file():
            raise _ApiError(400, f"not a quarantine manifest of this server: {body.manifest}")

        def act() -> Any:
            with state.write_lock:
                try:
                    return col.undo(manifest)
                finally:
                    state.writes += 1
        return (await run_in_threadpool(act)).to_json()

    @app.get("/api/clusters", **api)
    async def clusters(col: Col) -> dict[str, Any]:
        """The latest clustering run (`retr cluster`), each cluster's medoid first."""
        return await run_in_threadpool(col.clusters) or {"run": None, "clusters": []}

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="ui")

    return app


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json_response(body: Any) -> Response:
    """A search's JSON, serialised in the worker thread (the OpenAPI schema still says SearchOut)."""
    if isinstance(body, BaseException):
        raise body
    return Response(body, media_type="application/json")


def _plain(errors: Any) -> Any:
    """Validation errors as plain JSON (pydantic may put exceptions in ``ctx``)."""
    return [{k: (str(v) if k == "ctx" else v) for k, v in e.items() if k in ("loc", "msg", "type", "ctx")}
            for e in errors]


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    """The uploaded bytes, refusing more than ``limit`` (413) and an empty file (400)."""
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise _ApiError(413, f"upload too large: over {limit:,} bytes (limit set by --max-upload-mb)")
        chunks.append(chunk)
    if not size:
        raise _ApiError(400, "cannot read the uploaded image: empty file (0 bytes)")
    return b"".join(chunks)


def _decode(data: bytes) -> Any:
    """The upload decoded with the catalog's bounded decoding (bombs, truncation, non-images refused)."""
    from retrieval.images.decode import ImageLoadError, decode
    try:
        return decode(data)
    except ImageLoadError as exc:
        raise _ApiError(400, f"cannot read the uploaded image: {exc}") from None
