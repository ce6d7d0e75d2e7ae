"""`retr serve`: the warm index over HTTP (FastAPI on uvicorn) with the web UI at `/`."""
from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.errors import user_errors
from cli.options import DEFAULT_INDEX, DbUrl, Device, IndexDir, Precision, Runtime, inference_settings, prefetch_model


def serve(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None,
          host: Annotated[str, typer.Option("--host", help="Address to bind (localhost only by default).")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
          api_key: Annotated[str | None, typer.Option("--api-key", envvar="RETR_API_KEY", show_envvar=True,
                                                      help="Require Authorization: Bearer KEY on every /api "
                                                      "route (/healthz stays open).")] = None,
          max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload "
                                                       "accepted, in MB.")] = 50.0,
          max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Most queries served together: one "
                                                 "forward pass on a GPU, parallel single-image streams with "
                                                 "OpenVINO on a CPU; 1: no micro-batching.")] = 16,
          max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0.0, help="How long a query waits "
                                                     "for others to share its batch (0: a batch is what "
                                                     "queued up while the last one ran).")] = 0.0,
          quarantine: Annotated[str | None, typer.Option("--quarantine", help="Folder duplicates are moved "
                                                         "to (default INDEX/quarantine).")] = None,
          decode_memory_mb: Annotated[float, typer.Option("--decode-memory-mb", min=16.0, help="Memory the "
                                                          "pictures being decoded at once may take, in MB; "
                                                          "an upload that alone needs more is refused.")] = 1024.0,
          device: Device = "auto", runtime: Runtime = "auto", precision: Precision = "f32") -> None:
    """Search the index over HTTP, with a web UI.

    JSON API under /api (OpenAPI at /docs), the web UI at /, /healthz and /readyz."""
    # OpenMP's idle threads (torch's, faiss's) spin after each parallel region; between requests that spinning
    # took more CPU than the forward pass itself and slowed it (benchmarks/serve_latency.py): here they sleep.
    # Read when torch and faiss load, which is below; a value already set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with user_errors():
        if not (index / "manifest.json").exists():
            from index.directory import IndexStore
            IndexStore.open(index, db).close()  # the one-line "no index" error before the server starts
        inference = inference_settings(device, runtime, precision)
        with prefetch_model(index, None, None, inference, streams=max_batch > 1):  # opens while the server imports
            import uvicorn

            from cli.server.app import ServeOptions, create_app
            from cli.server.protocol import with_header_timeout
            from retrieval.collection.api import Collection
            opts = ServeOptions(api_key=api_key or None, max_upload=int(max_upload_mb * 1024 * 1024),
                                batching=max_batch > 1, max_batch=max_batch,
                                max_wait=max_wait_ms / 1000,
                                quarantine_dir=quarantine, decode_budget=int(decode_memory_mb * 1024 * 1024))
            app = create_app(lambda: Collection(index, db_url=db, inference=inference, streams=max_batch > 1), opts)
            if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
                typer.echo(f"warning: serving on {host} without --api-key: anyone who can reach it can search "
                           "and quarantine files", err=True)
            typer.echo(f"retr serve: http://{host}:{port}/  (index {index}, pid {os.getpid()})", err=True)
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        http=with_header_timeout(), timeout_keep_alive=5)
