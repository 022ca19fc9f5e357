"""The gateway's HTTP adapter (Starlette): routes over a ``GatewayStore`` and ``_core``.

Routes::

    GET  /  /info                 network info (height, current, blocks, queue_length, …)
    GET  /peers                   []
    POST /tx/arweave  /tx         upload a signed data item or bundle (body limit: max_upload_bytes → 413)
    POST /mine  /mine/{n}         seal one (or n ≤ 100) blocks now (arlocal-style dev route)
    POST /graphql                 Arweave GraphQL subset (see _graphql)
    GET  /tx/{id}                 transaction header JSON
    GET  /tx/{id}/status          200 {block_height, block_indep_hash, number_of_confirmations}; 202 pending
    GET  /block/height/{h}        block JSON
    GET|HEAD /raw/{id}            the item's data; Range: bytes=a-b | a- | -n → 206, 416 if unsatisfiable
    GET|HEAD /{id}                the same, plus the item's tags as response headers

Every error is ``{"error": "..."}`` with the status of ``pyao._http``; no request
changes anything unless it is a valid upload or a /mine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pyao._http import EXCEPTION_HANDLERS, read_body
from pyao.abc import GatewayStore
from pyao.config import GatewayConfig
from pyao.data import is_id
from pyao.errors import NotFound, RequestError
from pyao.gateway import _core
from pyao.gateway._graphql import run_query
from pyao.gateway._model import Block

log = logging.getLogger("pyao.gateway")

#: Largest GraphQL request body.
MAX_GRAPHQL_BYTES = 256 * 1024
#: Most blocks one POST /mine/{n} seals.
MAX_MINE = 100


def _store(request: Request) -> GatewayStore:
    return request.app.state.store


def _item_id(request: Request) -> str:
    item_id = request.path_params["id"]
    if not is_id(item_id):
        raise RequestError(f"{item_id[:64]!r} is not a 43-character base64url id")
    return item_id


async def _info(request: Request) -> JSONResponse:
    info = await _store(request).info()
    return JSONResponse(_core.network_info(info.height, info.current, info.pending))


async def _peers(request: Request) -> JSONResponse:
    return JSONResponse([])


async def _upload(request: Request) -> JSONResponse:
    store = _store(request)
    if not store.writable:
        raise RequestError("this gateway is a read-only view of another gateway")
    body = await read_body(request, request.app.state.config.max_upload_bytes)
    upload = await anyio.to_thread.run_sync(_core.prepare_upload, body)
    created = await store.put(upload)
    log.debug("upload %s (%d items, new=%s)", upload.id, len(upload.items), created)
    return JSONResponse({"id": upload.id, "timestamp": int(time.time() * 1000), "items": len(upload.items)})


async def _mine(request: Request) -> JSONResponse:
    count_text = request.path_params.get("count", "1")
    if not (count_text.isascii() and count_text.isdigit()) or not 1 <= int(count_text) <= MAX_MINE:
        raise RequestError(f"/mine/{{n}} takes 1 to {MAX_MINE} blocks")
    store = _store(request)
    if not store.writable:
        raise RequestError("this gateway is a read-only view of another gateway")
    for _ in range(int(count_text)):
        await _seal(store, request.app.state.block_listeners)
    return await _info(request)


async def _graphql(request: Request) -> JSONResponse:
    body = await read_body(request, MAX_GRAPHQL_BYTES)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the GraphQL request body is not JSON") from None
    answer = await run_query(_store(request), payload)
    return JSONResponse(answer.body, status_code=answer.status)


async def _record(request: Request):
    record = await _store(request).item(_item_id(request))
    if record is None:
        raise NotFound(f"no item {request.path_params['id']}")
    return record


async def _tx(request: Request) -> JSONResponse:
    return JSONResponse(_core.tx_json(await _record(request)))


async def _tx_status(request: Request) -> JSONResponse:
    record = await _record(request)
    if record.block is None:
        return JSONResponse({"error": "Pending"}, status_code=202)
    info = await _store(request).info()
    return JSONResponse(
        {
            "block_height": record.block.height,
            "block_indep_hash": record.block.id,
            "number_of_confirmations": info.height - record.block.height + 1,
        }
    )


async def _block_by_height(request: Request) -> JSONResponse:
    text = request.path_params["height"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise RequestError("a block height is a non-negative integer")
    found = await _store(request).block(int(text))
    if found is None:
        raise NotFound(f"no block at height {text}")
    return JSONResponse(_core.block_json(*found))


async def _raw(request: Request) -> Response:
    return await _data_response(request, with_tags=False)


async def _by_id(request: Request) -> Response:
    return await _data_response(request, with_tags=True)


async def _data_response(request: Request, *, with_tags: bool) -> Response:
    record = await _record(request)
    size = record.data_size
    headers = _core.tag_headers(record) if with_tags else {}
    headers.update({"accept-ranges": "bytes", "content-type": _core.content_type(record)})
    try:
        span = _core.parse_range(request.headers.get("range"), size)
    except _core.Unsatisfiable as exc:
        headers = {"content-range": f"bytes */{size}"}
        return JSONResponse({"error": str(exc)}, status_code=416, headers=headers)
    status = 200
    start, end = 0, size - 1
    if span is not None:
        start, end = span
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)
    if request.method == "HEAD" or end < start:
        return Response(b"", status_code=status, headers=headers)
    stream = _store(request).read(record.id, start, end)
    return StreamingResponse(stream, status_code=status, headers=headers)


async def _not_found(request: Request) -> JSONResponse:
    raise NotFound(f"no route {request.url.path[:100]}")


def _routes() -> list[Route]:
    return [
        Route("/", _info, methods=["GET"]),
        Route("/info", _info, methods=["GET"]),
        Route("/peers", _peers, methods=["GET"]),
        Route("/tx/arweave", _upload, methods=["POST"]),
        Route("/tx", _upload, methods=["POST"]),
        Route("/mine", _mine, methods=["POST", "GET"]),
        Route("/mine/{count}", _mine, methods=["POST", "GET"]),
        Route("/graphql", _graphql, methods=["POST"]),
        Route("/tx/{id}", _tx, methods=["GET"]),
        Route("/tx/{id}/status", _tx_status, methods=["GET"]),
        Route("/block/height/{height}", _block_by_height, methods=["GET"]),
        Route("/raw/{id}", _raw, methods=["GET", "HEAD"]),
        Route("/{id}", _by_id, methods=["GET", "HEAD"]),
        Route("/{rest:path}", _not_found, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    ]


async def _seal(store: GatewayStore, listeners: list[Callable[[Block], None]]) -> Block:
    """Seal a block, then tell the listeners (an SU in this process) before anyone else can act on it:
    a client that sees its item mined and then sends a message finds the SU stamping that height."""
    block = await store.seal()
    for listener in listeners:
        listener(block)
    return block


async def _seal_forever(store: GatewayStore, seconds: float, listeners: list[Callable[[Block], None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await _seal(store, listeners)
        except Exception:  # logged, not swallowed silently: the next tick tries again
            log.exception("sealing a block failed")


def build_app(store: GatewayStore, config: GatewayConfig, *, owns_store: bool) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sealer = None
        if config.block_seconds > 0 and store.writable:
            sealer = asyncio.create_task(_seal_forever(store, config.block_seconds, app.state.block_listeners))
        try:
            yield
        finally:
            if sealer is not None:
                sealer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sealer
            if owns_store:
                await store.close()

    app = Starlette(routes=_routes(), exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.store = store
    app.state.config = config
    #: called with each block this gateway seals (``pyao up`` hands its SU the new height at once)
    app.state.block_listeners = []
    return app
