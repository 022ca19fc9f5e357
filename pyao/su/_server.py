"""The SU's HTTP face (the official SU's routes and JSON shapes) over the scheduling core.

Routes (``servers/su/src/main.rs``):

* ``GET /``, ``GET /health`` → ``{"timestamp": "<ms>", "address": "<SU address>"}``
* ``GET /timestamp`` → ``{"timestamp": "<ms>", "block_height": "<12 digits>"}``
* ``POST /`` (body: a signed Process or Message item) → ``{"timestamp": <ms>, "id": "<item id>"}``
* ``POST /?process-id=&assign=[&base-layer][&exclude=a,b]`` → ``{"timestamp": <ms>, "id": "<assignment id>"}``
* ``GET /{pid}?process-id={pid}&from=&to=&limit=`` (or ``from-nonce``/``to-nonce``) → a schedule page
* ``GET /{id}?process-id={pid}`` → ``{"message", "assignment"}`` of one slot (by message or assignment id)
* ``GET /processes/{pid}``, ``GET /{pid}/latest``

Limits and choices (documented, tested):

* Bodies over ``SchedulerConfig.max_item_bytes`` (16 MiB) are refused with 413
  before they are read in full.
* Pages hold ``limit`` slots (default 100, at most ``MAX_PAGE_LIMIT`` = 1000),
  except that a page never ends inside a run of slots sharing one millisecond
  (it is completed), so a ``from`` timestamp cursor never skips a slot.
* ``from`` is exclusive and ``to`` inclusive. Unlike the official SU, the
  process's own slot (nonce 0) is simply the first slot, returned whenever it
  falls in the range (the official SU adds it only when ``from`` is absent,
  which for a valid cursor is the same thing).
* The answer's ``timestamp`` is the slot's Timestamp (the official SU sends its
  clock at answer time; both are the SU's ms clock).
* Unknown processes and messages answer 404 ``{"error"}`` (the official SU
  answers every error with 400); other bad input answers 400, a full or failing
  store 503. ``/{pid}/latest`` of a process with no message yet returns the
  process's own slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyao._http import (
    EXCEPTION_HANDLERS,
    Disconnected,
    LeanPostApp,
    plain_query,
    read_body,
    receive_body,
    require_data,
    send_json,
    status_for,
)
from pyao.data import DataItem, is_id
from pyao.errors import NotFound, PyaoError, RequestError, UnitError
from pyao.su import _json
from pyao.su._core import PROCESS, check_item, parse_exclude
from pyao.su._sequencer import AssignRequest

log = logging.getLogger("pyao.http")

MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100


def _now() -> str:
    return str(time.time_ns() // 1_000_000)


def _json_response(body: Any) -> Response:
    return Response(_json.dump(body), media_type="application/json")


def _id_param(value: str | None, name: str) -> str:
    if value is None:
        raise RequestError(f"{name} is required")
    if not is_id(value):
        raise RequestError(f"{name} must be a 43-character base64url id")
    return value


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 19:
        raise RequestError(f"{name} must be an integer")
    return int(value)


def _unit(request: Request) -> Any:
    return request.app.state.unit


async def info(request: Request) -> Response:
    return JSONResponse({"timestamp": _now(), "address": _unit(request).signer.address})


async def timestamp(request: Request) -> Response:
    height = str(_unit(request).sequencer.block_height).zfill(12)
    return JSONResponse({"timestamp": _now(), "block_height": height})


async def post(request: Request) -> Response:
    unit = _unit(request)
    query = request.query_params
    pid, assign = query.get("process-id"), query.get("assign")
    if pid is not None or assign is not None:
        if pid is None or assign is None:
            raise RequestError("If sending assign or process-id, you must send both.")
        return await _assign(request, unit, pid, assign)
    body = await read_body(request, unit.config.max_item_bytes)
    return Response(await schedule_item(unit, body), media_type="application/json")


async def schedule_item(unit: Any, body: bytes) -> bytes:
    """``POST /`` with an item: verify, check, schedule; the JSON answer once the slot is durable."""
    item = DataItem.from_bytes(require_data(body))
    await unit.verifier.verify(item)
    intake = check_item(item, body)
    if intake.kind == PROCESS:
        boot = item.tag("On-Boot")
        if boot not in (None, "Data") and not (is_id(boot) and await unit.gateway.exists(boot)):
            raise RequestError("Invalid tx id for On-Boot tag")
    entry = await unit.sequencer.submit(intake)
    return b'{"timestamp":%d,"id":"%s"}' % (entry.timestamp, item.id.encode("ascii"))


# ---------------------------------------------------------------- the lean path for POST /


async def lean_post(unit: Any, scope: dict, receive: Any, send: Any) -> None:
    """``POST /`` without a query (the hot route) as a bare ASGI handler: what ``post`` does, and the
    answers ``pyao._http`` gives (``{"error"}`` with ``status_for``; 500 for a bug), without
    Starlette's request, routing and middleware objects."""
    try:
        status, body = 200, await schedule_item(unit, await receive_body(scope, receive, unit.config.max_item_bytes))
    except Disconnected:
        return  # nobody to answer
    except PyaoError as exc:
        status, body = status_for(exc), _json.dump({"error": str(exc)}).encode()
    except Exception:
        log.exception("unhandled error on POST /")
        status, body = 500, _json.dump({"error": "internal error"}).encode()
    await send_json(send, status, body)


async def _assign(request: Request, unit: Any, pid: str, tx: str) -> Response:
    pid = _id_param(pid, "process-id")
    tx = _id_param(tx, "assign")
    exclude = parse_exclude(request.query_params.get("exclude"))
    if "base-layer" in request.query_params:
        await _check_settled(unit, tx)
    elif not await _known_tx(unit, tx):
        raise RequestError(f"Invalid gateway tx for assigning: {tx} is not on the gateway")
    entry = await unit.sequencer.submit_assign(AssignRequest(pid, tx, exclude))
    return JSONResponse({"timestamp": entry.timestamp, "id": entry.assignment_id})


async def _known_tx(unit: Any, tx: str) -> bool:
    """An item this SU scheduled itself counts before its upload reaches the gateway."""
    return await unit.read(lambda: unit.store.holds_item(tx)) or await unit.gateway.exists(tx)


async def _check_settled(unit: Any, tx: str) -> None:
    try:
        status = await unit.gateway.json("GET", f"/tx/{tx}/status")
    except NotFound as exc:
        raise RequestError(f"base-layer tx {tx} is not on the gateway") from exc
    confirmations = status.get("number_of_confirmations", 0) if isinstance(status, dict) else 0
    if not isinstance(confirmations, int) or confirmations < unit.config.settlement_depth:
        raise RequestError(
            f"base-layer tx {tx} has {confirmations} confirmations; {unit.config.settlement_depth} needed"
        )


async def read_tx(request: Request) -> Response:
    body = await _read_tx(_unit(request), request.path_params["tx_id"], request.query_params)
    return Response(body, media_type="application/json")


async def _read_tx(unit: Any, tx_param: str, query: Mapping[str, str]) -> bytes:
    """``GET /{id}?process-id=``: one slot's node, or a schedule page when ``id`` is the process."""
    tx = _id_param(tx_param, "id")
    pid = _id_param(query.get("process-id"), "process-id")
    by_nonce = "from-nonce" in query or "to-nonce" in query
    lo = _int_param(query.get("from-nonce" if by_nonce else "from"), "from")
    hi = _int_param(query.get("to-nonce" if by_nonce else "to"), "to")
    limit = _int_param(query.get("limit"), "limit")
    if limit is None:
        limit = DEFAULT_PAGE_LIMIT
    if limit < 1:
        raise RequestError("limit must be at least 1")
    limit = min(limit, MAX_PAGE_LIMIT)

    if tx == pid and not by_nonce:
        quick = unit.store.quick_page(pid, lo, hi, limit)
        if quick:  # a few slots (a CU following live traffic): read here, no hop to the reader thread
            return _json.page_text(quick, False).encode()

    def read() -> bytes:
        if tx == pid:  # the process's schedule (a CU's page read): one query unless it is empty
            entries, more = unit.store.page(pid, lo, hi, limit, by_nonce=by_nonce)
            if entries or unit.store.slot(pid, 0) is not None:
                return _json.page_text(entries, more, by_nonce=by_nonce).encode()
            raise NotFound("Message or Process not found")
        entry = unit.store.entry(pid, tx)
        if entry is None:
            raise NotFound("Message or Process not found")
        return _json.node_text(entry).encode()

    return await unit.read(read)


def lean_get(unit: Any, path: str, query: bytes) -> Awaitable[bytes] | None:
    """``GET /{id}?process-id=`` (a CU's page and slot reads, the hot read) without Starlette's
    routing; None for any other request, which the full routes answer."""
    tx = path[1:]
    if not is_id(tx):  # one segment of 43 id characters: no other route looks like that
        return None
    params = plain_query(query)
    if params is None or not is_id(params.get("process-id") or ""):
        return None
    return _read_tx(unit, tx, params)


async def read_process(request: Request) -> Response:
    unit = _unit(request)
    pid = _id_param(request.path_params["pid"], "process id")

    def read() -> bytes:
        entry = unit.store.slot(pid, 0)
        if entry is None:
            raise NotFound(f"Process {pid} not found")
        return _json.dump(_json.process_json(entry)).encode()

    return Response(await unit.read(read), media_type="application/json")


async def read_latest(request: Request) -> Response:
    unit = _unit(request)
    pid = _id_param(request.path_params["pid"], "process id")

    def read() -> bytes:
        entry = unit.store.last_slot(pid)
        if entry is None:
            raise NotFound("Latest message not available")
        return _json.node_text(entry).encode()

    return Response(await unit.read(read), media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing misses (404, 405) answer ``{"error"}`` like everything else."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def routes() -> list[Route]:
    return [
        Route("/", info, methods=["GET"]),
        Route("/", post, methods=["POST"]),
        Route("/health", info, methods=["GET"]),
        Route("/timestamp", timestamp, methods=["GET"]),
        Route("/processes/{pid}", read_process, methods=["GET"]),
        Route("/{pid}/latest", read_latest, methods=["GET"]),
        Route("/{tx_id}", read_tx, methods=["GET"]),
    ]


def build_app(unit: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with unit:
            yield

    handlers = {**EXCEPTION_HANDLERS, HTTPException: _http_error}
    app = LeanPostApp(
        routes=routes(), lean_post=lean_post, lean_get=lean_get, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.unit = unit
    return app


async def refresh_height(unit: Any, interval: float = 1.0) -> None:
    """Keep ``sequencer.block_height`` near the gateway's height; never per message."""
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(UnitError, RequestError, NotFound):
            unit.see_block_height(await unit.gateway.height())
