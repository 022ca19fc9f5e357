"""Shared pieces of the thin HTTP adapters (Starlette/ASGI): errors and bounded bodies.

Every unit answers a ``PyaoError`` with ``{"error": "..."}`` and the status the error
tree documents; anything else is a bug and is answered 500 without details leaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from pyao.errors import (
    DataError,
    NotFound,
    PayloadTooLarge,
    PyaoError,
    RequestError,
    StoreError,
    UnitError,
)

log = logging.getLogger("pyao.http")


def tcp_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), for uvicorn's ``sockets=``; OSError if
    the port is taken.

    The protocol is named (IPPROTO_TCP, not 0): asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on sockets whose ``proto`` says TCP, and accepted connections inherit
    the listener's. With Nagle on, an answer written in two pieces (head, then body) waited for
    the client's delayed ACK: ~40 ms a request on a kept-alive connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def status_for(exc: PyaoError) -> int:
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, (StoreError, UnitError)):
        return 503
    return 400  # DataError, RequestError, Conflict and the rest: the caller's input


def error_response(exc: PyaoError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_for(exc))


async def pyao_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PyaoError)
    return error_response(exc)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error"}, status_code=500)


EXCEPTION_HANDLERS = {PyaoError: pyao_error_handler, Exception: unexpected_error_handler}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Disconnected(Exception):
    """The client left before its request body arrived: nobody to answer."""


async def receive_body(scope: dict, receive: Any, limit: int) -> bytes:
    """``read_body`` for a bare ASGI handler: the same limits and errors, straight from ASGI
    messages (``Disconnected`` when the client leaves first)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise RequestError("Content-Length is not a number")
            if int(value) > limit:
                raise PayloadTooLarge(f"body of {value.decode()} bytes is over the limit of {limit} bytes")
            break
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Any, status: int, body: bytes) -> None:
    """A complete JSON answer on a bare ASGI ``send``."""
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def require_data(body: bytes) -> bytes:
    if not body:
        raise DataError("the request body must be a raw ANS-104 data item")
    return body


def uvicorn_config(app, **options: Any):
    """uvicorn's ``Config`` for one of our units: warnings only, no access log, and no rewriting
    of the client's address from proxy headers (no unit reads it; one middleware less a request)."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False, **options)


async def serve_app(app, host: str, port: int, *, on_started: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run an ASGI app with uvicorn on ``host:port`` (its lifespan included) until cancelled.
    ``on_started`` is awaited beside the server once it listens and its lifespan has started (a
    readiness check and announcement); the server stops if it raises."""
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, lifespan="on"))
    if on_started is None:
        await server.serve()
        return
    serving = asyncio.create_task(server.serve(), name=f"uvicorn:{port}")
    while not server.started:
        if serving.done():  # startup failed (port taken, lifespan error): uvicorn said why
            await serving
            return
        await asyncio.sleep(0.02)
    starting = asyncio.create_task(on_started(), name=f"on-started:{port}")
    try:
        await asyncio.wait({serving, starting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and starting.exception() is not None:
            server.should_exit = True
            await serving
            raise starting.exception()
        await serving
    finally:
        starting.cancel()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(serving, starting)


def plain_query(query: bytes) -> dict[str, str] | None:
    """A query string's parameters (a repeated name: the last wins, as in Starlette's
    ``QueryParams.get``), or None when it holds an escape (``%`` or ``+``): the full route
    decodes those."""
    if b"%" in query or b"+" in query:
        return None
    params = {}
    for pair in query.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            params[name.decode("ascii", "replace")] = value.decode("ascii", "replace")
    return params


def json_bytes(content: Any) -> bytes:
    """JSON exactly as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def answer_json(send: Any, what: str, work: Awaitable[bytes]) -> None:
    """Await ``work`` (a JSON body) and answer it 200, or ``{"error"}`` as the exception handlers
    above answer (``status_for``; 500 for a bug, logged)."""
    try:
        status, body = 200, await work
    except PyaoError as exc:
        status, body = status_for(exc), json_bytes({"error": str(exc)})
    except Exception:
        log.exception("unhandled error on %s", what)
        status, body = 500, json_bytes({"error": "internal error"})
    await send_json(send, status, body)


class LeanPostApp(Starlette):
    """A unit's Starlette app whose hot routes skip Starlette's request, routing and response
    objects: ``lean_post(unit, scope, receive, send)`` answers ``POST /`` without a query (the SU's
    and the MU's message intake), and ``lean_get(unit, path, query)``, when given, may take a
    ``GET``: it returns the awaitable JSON body (answered by ``answer_json``), or None to leave
    the request to the full routes (anything it does not recognise, or would decode differently)."""

    def __init__(self, *args: Any, lean_post: Any = None, lean_get: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lean_post, self.lean_get = lean_post, lean_get

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST" and self.lean_post is not None and scope["path"] == "/" and not scope["query_string"]:
                await self.lean_post(self.state.unit, scope, receive, send)
                return
            if method == "GET" and self.lean_get is not None:
                work = self.lean_get(self.state.unit, scope["path"], scope["query_string"])
                if work is not None:
                    await answer_json(send, "GET " + scope["path"], work)
                    return
        await super().__call__(scope, receive, send)
