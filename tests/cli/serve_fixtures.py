"""A small index of the sample photos (tiny random-weight model) and a ready TestClient over `retr serve`'s app."""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Iterator

from tests.conftest import PHOTOS, TINY_MODEL


def build_photo_index(folder: Path, index: Path, names: list[str] | None = None) -> Path:
    """``index`` over copies of the sample photos (all, or ``names``) in ``folder``."""
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(PHOTOS.glob("*.jpg")):
        if names is None or photo.stem in names:
            shutil.copy(photo, folder / photo.name)
    build_index([folder], index, BuildOptions(model=TINY_MODEL, random_weights=True,
                                              inference=InferenceSettings(batch_size=4, workers=0)))
    return index


@contextlib.contextmanager
def serving(index: Path, **options) -> Iterator:
    """A TestClient over the app for ``index``, once /readyz says it is ready (bounded wait)."""
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    options.setdefault("refresh_every", 0.0)
    streams = options.get("batching", True)  # as `retr serve`: streams when micro-batching
    app = create_app(lambda: Collection(index, streams=streams), ServeOptions(**options))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.05)
        yield client


@contextlib.contextmanager
def live(app, **config) -> Iterator[int]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread: yields the port."""
    import socket
    import threading

    import uvicorn
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
