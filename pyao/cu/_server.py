"""The CU's HTTP adapter (Starlette): the official CU routes over the ``Engine``.

Routes (``servers/cu/src/routes/*.js``, spec §2.3)::

    GET  /                          {"address", "timestamp"}
    GET  /result/{id}?process-id=   the result object (evaluates up to that message if needed)
    GET  /results/{pid}?from=&to=&sort=ASC|DESC&limit=   connection of non-error results
    POST /dry-run?process-id=       read-only evaluation on a fork of the latest state
    GET  /state/{pid}               state bytes + Last-Timestamp/Last-Ordinate/Last-Block-Height
    GET  /cron/{pid}?from=&to=&limit=                    connection of cron results only

Choices, each where the official CU is silent or odd:

* Cursors are ``base64(JSON({timestamp, ordinate, cron, sort}))`` as the official CU
  makes them. A ``from``/``to`` that is not such a cursor is a timestamp (ms), and
  then it is inclusive, as the official CU's string comparison makes it. A cursor
  naming a stored evaluation is exact: ``from`` is exclusive and ``to`` inclusive,
  **in the direction of the sort**, so a DESC page's last cursor fetches the next
  DESC page. The sort inside a cursor wins over ``sort`` (official), except on
  ``/cron``, which is always ascending.
* ``/results``, ``/state`` and ``/dry-run`` first evaluate up to the SU's latest
  message; ``/cron`` also evaluates cron ticks due up to the SU's clock.
* ``limit``: 1 to 1000 (``/results`` default 25, ``/cron`` default 500).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyao._http import EXCEPTION_HANDLERS, answer_json, plain_query, read_body, send_json
from pyao.abc import Evaluation
from pyao.data import is_id
from pyao.errors import NotFound, RequestError

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Cursor:
    timestamp: int
    ordinate: int | None = None
    cron: str | None = None
    sort: str | None = None


def encode_cursor(evaluation: Evaluation, sort: str) -> str:
    body: dict[str, Any] = {"timestamp": evaluation.timestamp, "ordinate": str(evaluation.ordinate)}
    if evaluation.cron is not None:
        body["cron"] = evaluation.cron
    body["sort"] = sort
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def parse_cursor(text: str | None, name: str) -> Cursor | None:
    """A cursor, or a bare timestamp; RequestError for anything else."""
    if not text:
        return None
    try:
        body = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        body = None
    if isinstance(body, dict):
        try:
            ordinate = body.get("ordinate")
            cron, sort = body.get("cron"), body.get("sort")
            return Cursor(
                int(body["timestamp"]),
                None if ordinate is None else int(ordinate),
                None if cron is None else str(cron),
                sort if sort in ("ASC", "DESC") else None,
            )
        except (KeyError, TypeError, ValueError):
            raise RequestError(f"{name} is not a results cursor") from None
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return Cursor(int(text))
    raise RequestError(f"{name} must be a results cursor or a timestamp in ms")


def _pid(value: str | None, name: str = "process-id") -> str:
    if not value:
        raise RequestError(f"a {name} is required")
    if not is_id(value):
        raise RequestError(f"{name} must be a 43-character base64url id")
    return value


def _limit(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 10**9:
        raise RequestError("limit must be a positive whole number")
    return min(int(value), MAX_LIMIT)


def _unit(request: Request) -> Any:
    return request.app.state.unit


def _node(evaluation: Evaluation) -> dict[str, Any]:
    r = evaluation.result
    node = {
        "Messages": r.get("Messages", []),
        "Assignments": r.get("Assignments", []),
        "Spawns": r.get("Spawns", []),
        "Output": r.get("Output"),
    }
    if "Error" in r:
        node["Error"] = r["Error"]
    return node


async def info(request: Request) -> Response:
    unit = _unit(request)
    return JSONResponse({"address": unit.signer.address, "timestamp": int(time.time() * 1000)})


async def result(request: Request) -> Response:
    message_id = _pid(request.path_params["message_id"], "message id")
    pid = _pid(request.query_params.get("process-id"))
    return Response(await _result_json(_unit(request).engine, pid, message_id), media_type="application/json")


async def _result_json(engine: Any, pid: str, message_id: str) -> bytes:
    """``GET /result/{id}?process-id=``: the result's JSON, evaluating what it needs first."""
    found = engine.store.recent_result(pid, message_id)
    if found is None and engine.is_live(pid):
        # most often the message was just scheduled: evaluate all the SU has (one schedule page),
        # then look again, without first asking the store (a miss, one thread hop) or the SU for
        # this message's slot; a request that waited for the one before it (a burst, or the MU's
        # crank and the client asking for one result) may find its result evaluated by then
        await engine.evaluate_to(pid, unless=lambda: engine.store.holds_recent(pid, message_id))
        found = await _evaluation(engine, pid, message_id)
    elif found is None:
        found = await engine.stored(engine.store.by_message, pid, message_id)
    if found is None:
        nonce, _ = await engine.message_slot(pid, message_id)
        # evaluate all the SU has, not just up to this message: a burst's next results are then
        # stored already, instead of one schedule page and one VM call per message
        await engine.evaluate_to(pid, nonce=nonce, timestamp=None)
        found = await _evaluation(engine, pid, message_id)
    if found is None:
        raise NotFound(f"no evaluation of message {message_id} on process {pid}")
    return found if isinstance(found, bytes) else found.result_json.encode()


async def _evaluation(engine: Any, pid: str, message_id: str) -> bytes | Evaluation | None:
    """The stored result of ``message_id``: its JSON when just stored (held in memory, no store
    round trip), else the evaluation read from the store, or None."""
    held = engine.store.recent_result(pid, message_id)
    if held is not None:
        return held
    return await engine.stored(engine.store.by_message, pid, message_id)


async def _connection(request: Request, pid: str, *, only_cron: bool, limit: int, sort: str) -> Response:
    engine = _unit(request).engine
    query = request.query_params
    start, end = parse_cursor(query.get("from"), "from"), parse_cursor(query.get("to"), "to")
    if not only_cron:
        sort = (start and start.sort) or (end and end.sort) or sort
    descending = sort == "DESC"
    bounds: dict[str, int] = {}
    for cursor, is_from in ((start, True), (end, False)):
        if cursor is None:
            continue
        row = None
        if cursor.ordinate is not None:
            row = await engine.stored(engine.store.at, pid, cursor.timestamp, cursor.ordinate, cursor.cron)
        if row is not None:
            key = ("seq_lt" if descending else "seq_gt") if is_from else ("seq_ge" if descending else "seq_le")
            bounds[key] = row.seq
        else:
            key = ("ts_le" if descending else "ts_ge") if is_from else ("ts_ge" if descending else "ts_le")
            bounds[key] = cursor.timestamp
    rows = await engine.stored(
        engine.store.page, pid, limit=limit + 1, descending=descending, only_cron=only_cron, **bounds
    )
    edges = [{"cursor": encode_cursor(r, sort), "node": _node(r)} for r in rows[:limit]]
    return JSONResponse({"pageInfo": {"hasNextPage": len(rows) > limit}, "edges": edges})


async def results(request: Request) -> Response:
    engine = _unit(request).engine
    pid = _pid(request.path_params["pid"], "process id")
    query = request.query_params
    sort = query.get("sort") or "ASC"
    if sort not in ("ASC", "DESC"):
        raise RequestError("sort must be ASC or DESC")
    limit = _limit(query.get("limit"), 25)
    parse_cursor(query.get("from"), "from"), parse_cursor(query.get("to"), "to")  # refuse bad input early
    nonce, timestamp = await engine.latest_nonce(pid)
    await engine.evaluate_to(pid, nonce=nonce, timestamp=timestamp)
    return await _connection(request, pid, only_cron=False, limit=limit, sort=sort)


async def cron(request: Request) -> Response:
    engine = _unit(request).engine
    pid = _pid(request.path_params["pid"], "process id")
    limit = _limit(request.query_params.get("limit"), 500)
    parse_cursor(request.query_params.get("from"), "from"), parse_cursor(request.query_params.get("to"), "to")
    await engine.live(pid, trailing_crons=True)
    return await _connection(request, pid, only_cron=True, limit=limit, sort="ASC")


async def state(request: Request) -> Response:
    engine = _unit(request).engine
    pid = _pid(request.path_params["pid"], "process id")
    data, last = await engine.snapshot(pid)
    headers = {}
    if last is not None:
        headers = {
            "Last-Timestamp": str(last.timestamp),
            "Last-Ordinate": str(last.ordinate),
            "Last-Block-Height": str(last.block_height),
        }
    return Response(data, media_type="application/octet-stream", headers=headers)


_STRING_FIELDS = ("Id", "Signature", "Owner", "Target", "Anchor")


def dry_run_message(body: Any) -> dict[str, Any]:
    """The msg of a dry-run body (spec §2.3): checked, defaults as aoconnect sends, From = From-Process or Owner."""
    if not isinstance(body, dict):
        raise RequestError("the dry-run body must be a JSON object")
    msg = {k: v for k, v in body.items() if isinstance(k, str) and v is not None}
    for name in _STRING_FIELDS:
        if name in msg and not isinstance(msg[name], str):
            raise RequestError(f"dry-run {name} must be a string")
    tags = msg.get("Tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("value"), str) for t in tags
    ):
        raise RequestError("dry-run Tags must be a list of {name, value} strings")
    msg["Tags"] = [{"name": t["name"], "value": t["value"]} for t in tags]
    for name in ("Timestamp", "Block-Height"):
        if name in msg:
            value = msg[name]
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
                raise RequestError(f"dry-run {name} must be a whole number")
            msg[name] = int(value)
    msg.setdefault("Id", "1234")
    msg.setdefault("Owner", "1234")
    msg.setdefault("Data", "1234")
    msg.setdefault("Anchor", "0")
    if not isinstance(msg["Data"], str):
        msg["Data"] = json.dumps(msg["Data"], separators=(",", ":"), ensure_ascii=False)
    from_process = next((t["value"] for t in msg["Tags"] if t["name"] == "From-Process"), None)
    msg["From"] = from_process or msg["Owner"]
    return msg


async def dry_run(request: Request) -> Response:
    unit = _unit(request)
    pid = _pid(request.query_params.get("process-id"))
    raw = await read_body(request, unit.config.max_dry_run_bytes)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the dry-run body is not JSON") from None
    msg = dry_run_message(body)
    outcome = await unit.engine.dry_run(pid, msg)
    return JSONResponse(outcome.to_json())


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing misses (404, 405) answer ``{"error"}`` like everything else."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def routes() -> list[Route]:
    return [
        Route("/", info, methods=["GET"]),
        Route("/health", info, methods=["GET"]),
        Route("/result/{message_id}", result, methods=["GET"]),
        Route("/results/{pid}", results, methods=["GET"]),
        Route("/cron/{pid}", cron, methods=["GET"]),
        Route("/state/{pid}", state, methods=["GET"]),
        Route("/dry-run", dry_run, methods=["POST"]),
    ]


def _result_ids(path: str, query: bytes) -> tuple[str, str] | None:
    """(process id, message id) of ``GET /result/{id}?process-id=``; None for anything else (another
    route, an encoded or odd query, a bad id): the full routes answer those."""
    if not path.startswith("/result/"):
        return None
    params = plain_query(query)
    message_id, pid = path[8:], (params or {}).get("process-id")
    if pid is None or not is_id(pid) or not is_id(message_id):
        return None
    return pid, message_id


def held_result(unit: Any, path: str, query: bytes) -> bytes | None:
    """``GET /result/{id}?process-id=`` of a result the store still holds in memory (the MU asks
    once per message); None for anything else."""
    ids = _result_ids(path, query)
    return None if ids is None else unit.engine.store.recent_result(*ids)


class ComputeApp(Starlette):
    """The CU's Starlette app, with ``GET /result`` answered in front of it: at once when the result
    is held in memory, else by the same steps as the route without Starlette's objects."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            ids = _result_ids(scope["path"], scope["query_string"])
            if ids is not None:
                engine = self.state.unit.engine
                body = engine.store.recent_result(*ids)
                if body is not None:
                    await send_json(send, 200, body)
                else:
                    await answer_json(send, "GET /result", _result_json(engine, *ids))
                return
        await super().__call__(scope, receive, send)


def build_app(unit: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with unit:
            yield

    handlers = {**EXCEPTION_HANDLERS, HTTPException: _http_error}
    app = ComputeApp(routes=routes(), exception_handlers=handlers, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.unit = unit
    return app
