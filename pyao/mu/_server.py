"""The MU's HTTP adapter (Starlette): the official MU routes over the unit.

Routes (``servers/mu/src/routes/*.js``, spec §2.1)::

    POST   /                                  a signed Process or Message -> 202 {"message":"Processing DataItem","id"}
    POST   /?process-id=&assign=[&base-layer][&exclude=a,b]   -> 202 {"message":"Processing Assignment","id"}
    POST   /monitor/{pid}                      (a signed item; parsed only) -> 200 "Monitoring process"
    DELETE /monitor/{pid}                      -> 200 "Process deleted" (404 if not monitored)
    GET    /                                   -> "ao messenger unit"; with ?debug: JSON work-queue status

``POST /`` without a query (every user message) is answered by ``lean_post`` in front
of Starlette, as the SU's is; its signature check runs on a worker thread
(``pyao._verify``), off the event loop.

Choices: like the official MU, ``POST /`` answers only after the SU accepted
the item (its refusal is passed on as a 4xx ``{"error"}``, an unreachable SU is
503); the crank is recorded durably before the 202. Items are verified before
anything else: a body that is not a valid signed item, lacks
``Data-Protocol=ao`` / ``Type=Process|Message``, or targets an unknown process
gets a 4xx and nothing is scheduled. ``POST /monitor`` of a process already
monitored answers 200 again (the official MU answers an error). ``/push`` is
not offered (neither aoconnect nor aos uses it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pyao._http import (
    EXCEPTION_HANDLERS,
    Disconnected,
    LeanPostApp,
    read_body,
    receive_body,
    require_data,
    send_json,
    status_for,
)
from pyao.data import DataItem, is_id
from pyao.errors import DataError, NotFound, PyaoError, RequestError
from pyao.mu import _core as core

log = logging.getLogger("pyao.http")


def _unit(request: Request) -> Any:
    return request.app.state.unit


def _pid(value: str | None, name: str) -> str:
    if not value or not is_id(value):
        raise RequestError(f"{name} must be a 43-character base64url id")
    return value


async def root(request: Request) -> Response:
    if "debug" in request.query_params:
        return JSONResponse(await _unit(request).status())
    return PlainTextResponse("ao messenger unit")


async def post_root(request: Request) -> Response:
    unit = _unit(request)
    params = request.query_params
    process_id, assign = params.get("process-id"), params.get("assign")
    if process_id or assign:
        if not (process_id and assign):
            raise RequestError("You must set both process-id and assign to send an assignment, not just one")
        exclude = [e for e in (params.get("exclude") or "").split(",") if e]
        assignment = await unit.assign(
            _pid(process_id, "process-id"), _pid(assign, "assign"), "base-layer" in params, exclude
        )
        return JSONResponse({"message": "Processing Assignment", "id": assignment}, status_code=202)
    body = await read_body(request, unit.config.max_item_bytes)
    return Response(await accept_item(unit, body), status_code=202, media_type="application/json")


async def accept_item(unit: Any, body: bytes) -> bytes:
    """``POST /`` with an item: parse, verify (off the event loop), schedule, record the crank;
    the JSON answer once all of that is done."""
    item = DataItem.from_bytes(require_data(body))
    await unit.verifier.verify(item)
    kind = core.item_kind(item)
    if kind == "Message":
        await unit.send_message(item, body)
    else:
        await unit.send_process(item, body)
    return b'{"message":"Processing DataItem","id":"%s"}' % item.id.encode("ascii")


async def lean_post(unit: Any, scope: dict, receive: Any, send: Any) -> None:
    """``POST /`` without a query (every user message) as a bare ASGI handler: what ``post_root``
    does, and the answers ``pyao._http`` gives (``{"error"}`` with ``status_for``; 500 for a bug),
    without Starlette's request, routing and middleware objects."""
    try:
        status, body = 202, await accept_item(unit, await receive_body(scope, receive, unit.config.max_item_bytes))
    except Disconnected:
        return  # nobody to answer
    except PyaoError as exc:
        status, body = (
            status_for(exc),
            json.dumps({"error": str(exc)}, separators=(",", ":"), ensure_ascii=False).encode(),
        )
    except Exception:
        log.exception("unhandled error on POST /")
        status, body = 500, b'{"error":"internal error"}'
    await send_json(send, status, body)


async def monitor(request: Request) -> Response:
    unit = _unit(request)
    pid = _pid(request.path_params["pid"], "process id")
    body = await read_body(request, unit.config.max_item_bytes)
    if not body:
        raise DataError("Signed data item is required")
    DataItem.from_bytes(body)  # parsed, not verified (as the official MU)
    await unit.start_monitor(pid)
    return PlainTextResponse("Monitoring process")


async def unmonitor(request: Request) -> Response:
    unit = _unit(request)
    pid = _pid(request.path_params["pid"], "process id")
    body = await read_body(request, unit.config.max_item_bytes)
    if body:
        DataItem.from_bytes(body)
    if not await unit.stop_monitor(pid):
        raise NotFound("Process monitor not found")
    return PlainTextResponse("Process deleted")


def routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/", post_root, methods=["POST"]),
        Route("/monitor/{pid}", monitor, methods=["POST"]),
        Route("/monitor/{pid}", unmonitor, methods=["DELETE"]),
    ]


def build_app(unit: Any) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with unit:
            yield

    app = LeanPostApp(routes=routes(), lean_post=lean_post, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.unit = unit
    return app
