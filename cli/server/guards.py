"""ASGI guards in front of every route: a request body capped while it streams, and security headers.

The body limit counts bytes as they arrive. A request whose ``Content-Length`` is over the limit is refused
before one byte of its body is read; a request without one (chunked) is refused as soon as it passes the
limit, and the app behind sees the client as gone, so no more than the limit plus one network read is
ever read, parsed or spooled to a temporary file.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and small fields around the uploaded file
JSON_LIMIT = 64 * 1024  # a JSON body (quarantine, undo) holds a path or two


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


async def _send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses (413) a request body over ``limit_for(path)`` bytes, counting while it streams."""

    def __init__(self, app: ASGIApp, *, upload_limit: int):
        self.app, self.upload_limit = app, upload_limit

    def limit_for(self, scope: Scope) -> int:
        return self.upload_limit + FORM_OVERHEAD if scope["path"] == "/api/search" else JSON_LIMIT

    def message(self, scope: Scope) -> str:
        if scope["path"] == "/api/search":
            return f"upload too large: over {self.upload_limit:,} bytes (limit set by --max-upload-mb)"
        return f"request body too large: over {JSON_LIMIT:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _send_json(send, 413, self.message(scope))
        received, answered, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    if not started:
                        await _send_json(send, 413, self.message(scope))
                    return {"type": "http.disconnect"}  # the app stops parsing: the client is "gone"
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's own answer to a cut-off body is dropped: the 413 went out
            started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


UI_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI sets inline styles and draws icons from data: URIs; its script is a served file all the same
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """``nosniff``, no framing (CSP ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), a CSP that
    allows only this server's own scripts and styles, and no referrer, on every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"].startswith("/docs") else UI_CSP
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                 (b"content-security-policy", csp.encode()), (b"referrer-policy", b"no-referrer")]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
