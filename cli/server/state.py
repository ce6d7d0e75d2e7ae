"""The server's shared state: the warm Collection (opened in a thread at start-up), the micro-batcher,
the thumbnail cache, and the dependencies routes reach them through."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from cli.server.batching import MicroBatcher
from cli.server.errors import ApiError, Kind, kind_of, log
from index.errors import RetrError

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
    decode_budget: int | None = None  # bytes of pictures being decoded at once (None: the library default)


class ServerState:
    """The warm collection, the batcher and the thumbnail cache."""

    def __init__(self, open_collection: Callable[[], Any], opts: ServeOptions):
        self.opts = opts
        self.batching = opts.batching
        self.collection: Any = None
        self.error: str | None = None
        self.batcher = MicroBatcher(self.run_batch, max_batch=opts.max_batch, max_wait=opts.max_wait)
        self.thumbs: OrderedDict[tuple[int, int, str, float], bytes] = OrderedDict()
        self.thumb_lock = threading.Lock()
        self.write_lock = threading.Lock()  # one quarantine or undo at a time
        self.writes = 0  # quarantines and undos done: they change the duplicates without a rebuild
        self.duplicates: tuple[tuple, dict[str, Any]] | None = None  # (index version, writes) -> the groups
        self.duplicates_lock = asyncio.Lock()
        self._checked = 0.0
        self._refresh_lock = asyncio.Lock()
        self._open = open_collection

    def load(self) -> None:
        try:
            collection = self._open()
        except RetrError as exc:
            self.error = str(exc)
            return
        try:  # a quarantine or an undo that a crash cut short is settled before the first request
            for note in collection.settle_quarantine():
                log.warning("retr serve: %s", note)
        except RetrError as exc:  # another writer holds the index: it settles them itself
            log.warning("retr serve: quarantine not checked: %s", exc)
        parallel = getattr(collection, "parallel_requests", 0)
        if parallel:  # streams: groups of a few, so each group's answers go out while the next one runs
            self.batcher.max_batch = min(self.opts.max_batch, 2 * parallel)
        self.collection = collection

    def run_batch(self, uploads: list[Any], names: list[str], key: tuple) -> list[Any]:
        """Searches that arrived together -> each one's JSON body, or the error it alone caused."""
        from retrieval.images.decode import ImageLoadError
        k, nprobe, ef = key
        out: list[Any] = []
        for result in self.collection.query_each(uploads, names=names, k=k, nprobe=nprobe, ef=ef):
            if isinstance(result, ImageLoadError):
                out.append(ApiError(kind_of(result), f"cannot read the uploaded image: {result}"))
            elif isinstance(result, BaseException):
                out.append(result)
            else:
                out.append(json_bytes(result.to_json()))
        return out

    async def ready(self) -> Any:
        if self.collection is None:
            raise ApiError(Kind.UNAVAILABLE, self.error or "the index is still loading; try again in a moment")
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
            raise ApiError(Kind.NOT_FOUND, f"image {image_id} is no longer on disk ({exc.strerror})") from None
        key = (image_id, size, path, mtime)
        with self.thumb_lock:
            if key in self.thumbs:
                self.thumbs.move_to_end(key)
                return self.thumbs[key]
        try:
            img = load_image(path, draft_size=size, reduce=True)
        except ImageLoadError as exc:
            raise ApiError(Kind.UNPROCESSABLE, f"cannot read image {image_id}: {exc}") from None
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
        data = out.getvalue()
        with self.thumb_lock:
            self.thumbs[key] = data
            while len(self.thumbs) > 2000:
                self.thumbs.popitem(last=False)
        return data


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def server_state(request: Request) -> ServerState:
    return request.app.state.retr


async def _collection(request: Request) -> Any:
    """The warm Collection (swapped to a rebuilt index when its manifest changed); 503 while loading."""
    return await request.app.state.retr.ready()


State = Annotated[ServerState, Depends(server_state)]
Col = Annotated[Any, Depends(_collection)]
