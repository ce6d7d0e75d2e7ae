"""The `retr serve` FastAPI app: the warm Collection behind JSON routes, and the web UI at `/`.

Errors are JSON ``{"detail": "one line"}`` with a status chosen by the error's kind (cli.server.errors):
4xx for anything a request can cause (a bad image, an unknown id, a bad box, a missing key, a body over
the limit), a logged JSON 500 for a bug, and the server goes on serving. Blocking work (decoding, the
model, faiss, the catalog) runs in worker threads; whole-image searches go through the micro-batcher.
Every response carries the security headers of cli.server.guards; request bodies are capped while they
stream.
"""
from __future__ import annotations

import contextlib
import hmac
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cli.server.errors import ApiError, Kind, kind_of, log, one_line
from cli.server.guards import BodyLimit, SecurityHeaders
from cli.server.memory import return_large_blocks
from cli.server.routes import clusters, duplicates, health, images, search
from cli.server.state import DEFAULT_MAX_UPLOAD, ServeOptions, ServerState
from index.errors import RetrError

__all__ = ["DEFAULT_MAX_UPLOAD", "ServeOptions", "create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(open_collection: Callable[[], Any], opts: ServeOptions = ServeOptions()) -> FastAPI:
    """The app over the collection ``open_collection()`` returns (opened in a thread at start-up, so
    `/healthz` answers while the model loads; `/readyz` says when it is ready)."""
    return_large_blocks()
    if opts.decode_budget is not None:
        from retrieval.images.decode import DECODE_BUDGET
        DECODE_BUDGET.resize(opts.decode_budget)
    state = ServerState(open_collection, opts)
    loader = threading.Thread(target=state.load, name="retr-open-index", daemon=True)
    loader.start()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        state.batcher.close()
        if state.collection is not None:
            state.collection.close()

    app = FastAPI(title="retr", version="1", description="Image embedding search over a retr index.",
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.retr = state
    _errors(app)

    async def authorised(request: Request) -> None:  # async: a sync dependency costs a thread hop
        if not opts.api_key:
            return
        given = request.headers.get("authorization", "")
        # the web UI keeps the key in a cookie, percent-encoded (a key may hold any character)
        token = given[7:] if given.lower().startswith("bearer ") else unquote(request.cookies.get("retr_key", ""))
        if not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), opts.api_key.encode("utf-8")):
            raise ApiError(Kind.UNAUTHORISED, "missing or wrong API key: send Authorization: Bearer KEY")

    app.include_router(health.open_router)
    for area in (health, search, images, duplicates, clusters):
        app.include_router(area.router, dependencies=[Depends(authorised)])
    _docs(app)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="ui")
    app.add_middleware(BodyLimit, upload_limit=opts.max_upload)
    app.add_middleware(SecurityHeaders)
    return app


def _errors(app: FastAPI) -> None:
    """The one place an error becomes a status: by its kind."""

    def answer(kind: Kind, message: object, **extra: Any) -> JSONResponse:
        return JSONResponse({"detail": one_line(message), **extra}, status_code=kind.value,
                            headers={"WWW-Authenticate": "Bearer"} if kind is Kind.UNAUTHORISED else None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc.kind, exc.message)

    @app.exception_handler(RetrError)
    async def _retr_error(_: Request, exc: RetrError) -> JSONResponse:
        return answer(kind_of(exc), exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return answer(Kind.UNPROCESSABLE, f"{where}: {first.get('msg', 'invalid')}", errors=_plain(errors))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("retr serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return answer(Kind.INTERNAL, f"internal error ({type(exc).__name__}); it was logged and the server "
                                     "goes on serving")


def _plain(errors: Any) -> Any:
    """Validation errors as plain JSON: messages capped and encodable, input never echoed whole."""
    return [{"loc": [one_line(p, 80) if isinstance(p, str) else p for p in e.get("loc", ())],
             "msg": one_line(e.get("msg", "")), "type": one_line(e.get("type", ""), 80)} for e in errors[:10]]


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>retr API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/swagger-init.js"></script></body></html>
"""


def _docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the files the installed fastapi-offline package ships (nothing from a CDN;
    the page's script is a file of ours, so the CSP needs no inline script); without the package, /docs is
    off and /openapi.json still describes the API."""
    try:
        import fastapi_offline
    except ImportError:
        return
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)
