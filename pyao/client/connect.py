"""The Python SDK: ``pyao.connect(...)``, mirroring ``@permaweb/aoconnect`` (legacy mode).

::

    import pyao

    ao = pyao.connect(mu_url="http://127.0.0.1:3005", cu_url="http://127.0.0.1:6363",
                      gateway_url="http://127.0.0.1:4000", signer=pyao.Wallet.load("~/.aos.json"))
    pid = ao.spawn(module_id, scheduler_address, tags=[("Name", "calc")])
    mid = ao.message(pid, tags=[("Action", "Eval")], data="return 6 * 7")
    ao.result(mid, pid)["Output"]["data"]            # "42"

    async with pyao.connect_async(...) as ao:        # the same calls, awaited
        pid = await ao.spawn(module_id, scheduler_address)

Calls and the one request (or two, for ``spawn``) each makes, as aoconnect 0.0.98
(spec ``ao-protocol.md`` §4.1):

=============  ===================================================================
``spawn``      GraphQL module lookup on the gateway, then ``POST {MU}/`` (signed Process)
``message``    ``POST {MU}/`` (signed Message, target = process)
``result``     ``GET {CU}/result/{message}?process-id=``
``results``    ``GET {CU}/results/{process}?from=&to=&sort=&limit=``
``dryrun``     ``POST {CU}/dry-run?process-id=`` (JSON message; nothing is stored)
``monitor``    ``POST {MU}/monitor/{process}`` (signed item: target = process, no tags, data " ")
``unmonitor``  ``DELETE {MU}/monitor/{process}``
``assign``     ``POST {MU}/?process-id=&assign=[&exclude=][&base-layer]``
``state``      ``GET {CU}/state/{process}`` (pyao only)
``upload``     ``POST {GATEWAY}/tx/arweave`` (a file as a signed item, streamed; pyao only)
=============  ===================================================================

Forms: ``connect_async`` returns an ``AsyncConnection`` (coroutines, for code that
already runs an event loop); ``connect`` returns a ``Connection`` whose methods
block. The blocking form runs its own event loop in a private daemon thread and
hands each call to it, so it works anywhere, including from a thread that is
running another event loop (that loop is blocked for the duration of the call:
prefer ``connect_async`` there). Close either form (``close()`` or ``with``/
``async with``) to release its HTTP connections and thread.

URLs default to the environment (``MU_URL``, ``CU_URL``, ``GATEWAY_URL``, as
aoconnect reads) and then to ``pyao up``'s default ports on 127.0.0.1. The
``signer`` (any ``pyao.Signer``: ``Wallet.load("~/.aos.json")``, ``Ed25519Signer``,
…) is needed by ``spawn``, ``message`` and ``monitor``; each also takes a
``signer=`` of its own that overrides the connection's.

Errors (all ``PyaoError``): a unit that is down, answers 5xx, or answers with
something that is not the expected JSON shape → ``UnitError`` naming the unit
(and its URL when unreachable); a 4xx → ``RequestError`` carrying the unit's
``{"error"}`` text, 404 → ``NotFound``; a missing signer, a malformed id, or a
module the gateway does not describe as an ao module → ``RequestError``
(``NotFound`` when the gateway has no such item).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pyao.abc import Signer
from pyao.client.cu import ComputeClient
from pyao.client.gateway import GatewayClient
from pyao.client.locate import tag_value
from pyao.client.messenger import MessengerClient
from pyao.client.upload import file_chunks, sign_file
from pyao.data import DataItem, Tag, ao, is_id
from pyao.data.tags import TagsLike, as_tags
from pyao.errors import NotFound, RequestError, UnitError

__all__ = ["AsyncConnection", "Connection", "connect", "connect_async"]

T = TypeVar("T")

SDK = "pyao"
DEFAULT_MU_URL = "http://127.0.0.1:3005"
DEFAULT_CU_URL = "http://127.0.0.1:6363"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:4000"

#: the query aoconnect's spawn sends to check the module (``connect/src/client/gateway.js``)
MODULE_QUERY = """query GetTransactions ($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds) {
    edges { node { owner { address } tags { name value } block { id height timestamp } } } } }"""
#: tags aoconnect's spawn requires on the module (``connect/src/lib/spawn/verify-inputs.js``)
MODULE_REQUIRED: dict[str, str | None] = {
    "Data-Protocol": "ao",
    "Type": "Module",
    "Module-Format": None,
    "Input-Encoding": None,
    "Output-Encoding": None,
}


def _url(given: str | None, env: str, default: str) -> str:
    return (given or os.environ.get(env) or default).rstrip("/")


def _need_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not is_id(value):
        raise RequestError(f"{what} must be a 43-character base64url id, got {value!r}")
    return value


def _with_sdk(tags: tuple[Tag, ...]) -> tuple[Tag, ...]:
    return ao.concat_protocol([Tag("SDK", SDK)], ao.remove_protocol_tag("SDK", tags))


def _body(data: bytes | str | None, tags: tuple[Tag, ...]) -> tuple[bytes | str, tuple[Tag, ...]]:
    """aoconnect's rule: no data → data " " and a Content-Type: text/plain tag."""
    if data is None or data == "" or data == b"":
        return " ", (*tags, Tag("Content-Type", "text/plain"))
    return data, tags


class AsyncConnection:
    """aoconnect's calls as coroutines, against one MU, CU and gateway."""

    def __init__(
        self,
        mu_url: str | None = None,
        cu_url: str | None = None,
        gateway_url: str | None = None,
        signer: Signer | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        self.signer = signer
        self.mu = MessengerClient(_url(mu_url, "MU_URL", DEFAULT_MU_URL), timeout=timeout)
        self.cu = ComputeClient(_url(cu_url, "CU_URL", DEFAULT_CU_URL), timeout=timeout)
        self.gateway = GatewayClient(_url(gateway_url, "GATEWAY_URL", DEFAULT_GATEWAY_URL), timeout=timeout)

    async def close(self) -> None:
        for client in (self.mu, self.cu, self.gateway):
            await client.close()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _signer(self, signer: Signer | None, call: str) -> Signer:
        chosen = signer or self.signer
        if chosen is None:
            raise RequestError(f"{call} needs a signer: connect(..., signer=pyao.Wallet.load('~/.aos.json'))")
        return chosen

    # ------------------------------------------------------------ writes (MU)

    async def spawn(
        self,
        module: str,
        scheduler: str,
        tags: TagsLike = (),
        data: bytes | str | None = None,
        *,
        signer: Signer | None = None,
    ) -> str:
        """Spawn a process of ``module`` on the SU whose wallet address is ``scheduler``; its id."""
        chosen = self._signer(signer, "spawn")
        _need_id(module, "module")
        _need_id(scheduler, "scheduler")
        await self.check_module(module)
        built = _with_sdk(ao.process_tags(module, scheduler, tags, timestamp_ms=int(time.time() * 1000)))
        payload, built = _body(data, built)
        item = DataItem.create(payload, signer=chosen, tags=built)
        answer = await self.mu.send(item.to_bytes())
        return str(answer.get("processId") or item.id)

    async def message(
        self,
        process: str,
        tags: TagsLike = (),
        data: bytes | str | None = None,
        anchor: str | bytes | None = None,
        *,
        signer: Signer | None = None,
    ) -> str:
        """Send a Message to ``process`` through the MU; the message id."""
        chosen = self._signer(signer, "message")
        _need_id(process, "process")
        payload, built = _body(data, _with_sdk(ao.message_tags(tags)))
        item = DataItem.create(payload, signer=chosen, tags=built, target=process, anchor=anchor or b"")
        await self.mu.send(item.to_bytes())
        return item.id

    async def assign(
        self, process: str, message: str, exclude: Iterable[str] | None = None, base_layer: bool = False
    ) -> str:
        """Schedule the existing item ``message`` onto ``process``; the assignment id."""
        _need_id(process, "process")
        _need_id(message, "message")
        answer = await self.mu.assign(process, message, exclude=list(exclude or []), base_layer=base_layer)
        return str(answer["id"])

    async def monitor(self, process: str, *, signer: Signer | None = None) -> str:
        """Ask the MU to run ``process``'s cron outbox; the MU's answer text."""
        chosen = self._signer(signer, "monitor")
        _need_id(process, "process")
        item = DataItem.create(" ", signer=chosen, target=process)
        return await self.mu.monitor(process, item.to_bytes())

    async def unmonitor(self, process: str) -> str:
        """Stop the MU's cron monitoring of ``process``; the MU's answer text."""
        _need_id(process, "process")
        return await self.mu.unmonitor(process)

    # ------------------------------------------------------------ reads (CU)

    async def result(self, message: str, process: str) -> dict[str, Any]:
        """The evaluation of ``message`` by ``process``:
        ``{"Output", "Messages", "Spawns", "Assignments", "Error"?}``."""
        _need_id(message, "message")
        _need_id(process, "process")
        return await self.cu.result(message, process, no_busy=False)

    async def results(
        self,
        process: str,
        from_: str | None = None,
        to: str | None = None,
        sort: str = "ASC",
        limit: int = 25,
    ) -> dict[str, Any]:
        """One page of ``process``'s results: ``{"pageInfo": {"hasNextPage"}, "edges": [{"cursor", "node"}]}``.
        Page on with ``from_=edges[-1]["cursor"]``."""
        _need_id(process, "process")
        if sort not in ("ASC", "DESC"):
            raise RequestError(f"sort must be 'ASC' or 'DESC', got {sort!r}")
        page = await self.cu.results(process, from_=from_, to=to, sort=sort, limit=limit)
        if not isinstance(page, dict) or not isinstance(page.get("edges"), list):
            raise UnitError(f"compute unit answered /results/{process} without edges: {str(page)[:200]}")
        return page

    async def dryrun(
        self,
        process: str,
        data: bytes | str | None = None,
        tags: TagsLike = (),
        owner: str | None = None,
        id: str | None = None,
        anchor: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Evaluate a message on ``process`` without scheduling it; the result, as ``result``.

        aoconnect's defaults: Id and Owner ``"1234"``, Data ``"1234"``, Anchor ``"0"``;
        Data-Protocol/Type/Variant tags are appended. ``fields`` (``Timestamp``, …) go as is."""
        _need_id(process, "process")
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        user = [{"name": t.name, "value": t.value} for t in as_tags(tags)]
        body = {
            "Id": id or "1234",
            "Owner": owner or "1234",
            **fields,
            "Target": process,
            "Data": data or "1234",
            "Tags": [
                *user,
                {"name": "Data-Protocol", "value": "ao"},
                {"name": "Type", "value": "Message"},
                {"name": "Variant", "value": ao.VARIANT},
            ],
            "Anchor": anchor or "0",
        }
        answer = await self.cu.dry_run(process, body)
        if not isinstance(answer, dict):
            raise UnitError(f"compute unit answered /dry-run with a non-object: {str(answer)[:200]}")
        return answer

    async def state(self, process: str) -> tuple[bytes, dict[str, str]]:
        """``process``'s latest state as the CU serialises it, and its ``Last-*`` headers (pyao only)."""
        _need_id(process, "process")
        return await self.cu.state(process)

    # ------------------------------------------------------------ gateway

    async def upload(
        self,
        path: str | os.PathLike[str],
        tags: TagsLike = (),
        *,
        signer: Signer | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Sign the file at ``path`` as a data item and stream it to the gateway; the item's id.
        The file is read in chunks (never held whole); ``progress(sent, total)`` follows the upload."""
        chosen = self._signer(signer, "upload")
        item = await asyncio.to_thread(sign_file, Path(path), chosen, as_tags(tags))
        answer = await self.gateway.upload_stream(file_chunks(item, progress), item.length)
        if not isinstance(answer, dict) or answer.get("id") != item.id:
            raise UnitError(f"gateway at {self.gateway.url} answered the upload of {item.id} with {str(answer)[:200]}")
        return item.id

    async def check_module(self, module: str) -> dict[str, Any]:
        """aoconnect's spawn check: the gateway knows ``module`` and it carries the ao Module tags.
        Returns its GraphQL node."""
        data = await self.gateway.graphql(MODULE_QUERY, {"transactionIds": [module]})
        try:
            edges = data["transactions"]["edges"]
            node = edges[0]["node"] if edges else None
            tags = node["tags"] if node else []
        except (KeyError, TypeError, IndexError) as exc:
            raise UnitError(f"gateway at {self.gateway.url} answered the module query badly: {exc!r}") from exc
        if node is None:
            raise NotFound(f"module {module} was not found on the gateway at {self.gateway.url}")
        problems = []
        for name, expected in MODULE_REQUIRED.items():
            value = tag_value(tags, name)
            if value is None or (expected is not None and value != expected):
                problems.append(f"{name}={expected}" if expected else name)
        if problems:
            raise RequestError(f"{module} is not an ao module: it lacks the tag(s) {', '.join(problems)}")
        return node


class Connection:
    """The blocking form of ``AsyncConnection``: the same calls, run on a private event loop thread."""

    def __init__(
        self,
        mu_url: str | None = None,
        cu_url: str | None = None,
        gateway_url: str | None = None,
        signer: Signer | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pyao-connect", daemon=True)
        self._thread.start()
        self.aio = AsyncConnection(mu_url, cu_url, gateway_url, signer, timeout=timeout)
        self._closed = False

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this pyao connection is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def signer(self) -> Signer | None:
        return self.aio.signer

    @signer.setter
    def signer(self, value: Signer | None) -> None:
        self.aio.signer = value

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self.aio.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(
        self,
        module: str,
        scheduler: str,
        tags: TagsLike = (),
        data: bytes | str | None = None,
        *,
        signer: Signer | None = None,
    ) -> str:
        return self._run(self.aio.spawn(module, scheduler, tags, data, signer=signer))

    def message(
        self,
        process: str,
        tags: TagsLike = (),
        data: bytes | str | None = None,
        anchor: str | bytes | None = None,
        *,
        signer: Signer | None = None,
    ) -> str:
        return self._run(self.aio.message(process, tags, data, anchor, signer=signer))

    def assign(self, process: str, message: str, exclude: Iterable[str] | None = None, base_layer: bool = False) -> str:
        return self._run(self.aio.assign(process, message, exclude, base_layer))

    def monitor(self, process: str, *, signer: Signer | None = None) -> str:
        return self._run(self.aio.monitor(process, signer=signer))

    def unmonitor(self, process: str) -> str:
        return self._run(self.aio.unmonitor(process))

    def result(self, message: str, process: str) -> dict[str, Any]:
        return self._run(self.aio.result(message, process))

    def results(
        self, process: str, from_: str | None = None, to: str | None = None, sort: str = "ASC", limit: int = 25
    ) -> dict[str, Any]:
        return self._run(self.aio.results(process, from_, to, sort, limit))

    def dryrun(
        self,
        process: str,
        data: bytes | str | None = None,
        tags: TagsLike = (),
        owner: str | None = None,
        id: str | None = None,
        anchor: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        return self._run(self.aio.dryrun(process, data, tags, owner, id, anchor, **fields))

    def check_module(self, module: str) -> dict[str, Any]:
        return self._run(self.aio.check_module(module))

    def state(self, process: str) -> tuple[bytes, dict[str, str]]:
        return self._run(self.aio.state(process))

    def upload(
        self,
        path: str | os.PathLike[str],
        tags: TagsLike = (),
        *,
        signer: Signer | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> str:
        return self._run(self.aio.upload(path, tags, signer=signer, progress=progress))


# the blocking calls carry the coroutines' docstrings
for _name in (
    "spawn",
    "message",
    "assign",
    "monitor",
    "unmonitor",
    "result",
    "results",
    "dryrun",
    "check_module",
    "state",
    "upload",
):
    getattr(Connection, _name).__doc__ = getattr(AsyncConnection, _name).__doc__
del _name


def connect(
    mu_url: str | None = None,
    cu_url: str | None = None,
    gateway_url: str | None = None,
    signer: Signer | None = None,
    *,
    timeout: float = 60.0,
) -> Connection:
    """A blocking connection to an ao network (aoconnect's ``connect``); close it when done."""
    return Connection(mu_url, cu_url, gateway_url, signer, timeout=timeout)


def connect_async(
    mu_url: str | None = None,
    cu_url: str | None = None,
    gateway_url: str | None = None,
    signer: Signer | None = None,
    *,
    timeout: float = 60.0,
) -> AsyncConnection:
    """An asynchronous connection (coroutine methods); ``async with`` it, or ``await close()``."""
    return AsyncConnection(mu_url, cu_url, gateway_url, signer, timeout=timeout)
