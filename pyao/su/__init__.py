"""The scheduler unit (SU): gives every message of a process its slot and keeps the schedule.

A posted Process becomes slot 0 of its own schedule; a Message takes the next
slot of its target; ``assign=`` schedules an existing tx on another process.
Each slot gets Nonce, Timestamp, Block-Height and Hash-Chain in an assignment
signed by the SU's wallet, is committed durably (group commit) before the SU
answers, and is uploaded to the gateway from a durable outbox, its assignment
and item side by side in a bundle signed by the SU. See ``_core`` (rules and
hash chain), ``pyao._verify`` (signature checks off the event loop),
``_sequencer`` (group commit), ``_store`` (SQLite and PostgreSQL),
``_uploader`` (outbox, bundle shape), ``_server`` (routes, limits, JSON
choices, the lean ``POST /``).

Public face: ``SchedulerUnit`` (the running unit: ``async with`` it, or let
``create_app``'s lifespan do it), ``create_app``, ``serve``, ``open_store``.

Readiness: the MU and CU find an SU by its newest Scheduler-Location record on the gateway, so a
spawn sent before that record is queryable is refused (404). ``SchedulerUnit.wait_until_located``
waits for it, and ``serve(config, on_ready=)`` calls ``on_ready(unit)`` only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyao._http import serve_app
from pyao._verify import Verifier
from pyao.abc import ScheduleStore, Signer
from pyao.client import GatewayClient
from pyao.client.locate import LOCATION_QUERY, tag_value
from pyao.config import SchedulerConfig
from pyao.data import Ed25519Signer, load_or_create_signer
from pyao.data.signing import SolanaSigner
from pyao.errors import PyaoError, UnitError
from pyao.su._core import ScheduleEntry, location_item, next_hash_chain, seed_hash_chain
from pyao.su._sequencer import Sequencer
from pyao.su._server import build_app, refresh_height
from pyao.su._store import open_store
from pyao.su._uploader import Uploader

__all__ = [
    "ScheduleEntry",
    "SchedulerUnit",
    "create_app",
    "load_wallet",
    "next_hash_chain",
    "open_store",
    "seed_hash_chain",
    "serve",
]

log = logging.getLogger("pyao.su")

#: how often ``wait_until_located`` asks the gateway
LOCATE_POLL_S = 0.05
#: the largest batch slotted on the event loop (see ``_sequencer``): ~4 ms of it at most
SLOT_INLINE = 64


def signs_fast(signer: Signer) -> bool:
    """True for a signer whose ``sign`` is quick (ed25519: ~19 µs), so that slotting a small batch on
    a thread of its own would cost more in hand-offs than it overlaps (RSA: ~1.5 ms, a thread helps;
    measured end to end, 1,000 processes: 1,128-1,148 msg/s slotted on the loop, 1,037-1,041 on the
    thread)."""
    return type(signer) in (Ed25519Signer, SolanaSigner)


def load_wallet(config: SchedulerConfig) -> Signer:
    """The SU's key from ``config.wallet``, created with ``config.wallet_type`` if missing."""
    return load_or_create_signer(config.wallet, config.wallet_type)


def store_url(config: SchedulerConfig) -> str:
    return config.db or f"sqlite:///{config.data_dir / 'su.db'}"


class SchedulerUnit:
    """A running SU: signature checker, store, sequencer, uploader and block-height refresher.

    Threads: the event loop does HTTP and the ao checks; ``verifier`` checks
    signatures on its own worker; the sequencer slots and signs batches on the
    slotter (with the store's lookup connection) and commits them on the
    writer, which also clears the uploaded outbox records; reads (pages, the
    outbox) and building upload bundles run on the reader.

    ``async with unit:`` starts the background tasks (recovering from the store
    whatever a previous run left: slots and pending uploads) and publishes the
    Scheduler-Location record; leaving it stops them and closes the store.
    """

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        store: ScheduleStore | None = None,
        gateway: GatewayClient | None = None,
        signer: Signer | None = None,
        publish_location: bool = True,
    ) -> None:
        self.config = config
        self.signer = signer or load_wallet(config)
        self.store: Any = store if store is not None else open_store(store_url(config))
        self.gateway = gateway or GatewayClient(config.gateway_url)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pyao-su-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="pyao-su-reader")
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="pyao-su-verifier")
        self._slotter = ThreadPoolExecutor(1, thread_name_prefix="pyao-su-slotter")
        self.verifier = Verifier(self._checker)
        self.uploader = Uploader(self.store, self.signer, self.gateway, reader=self._reader, writer=self._writer)
        self.sequencer = Sequencer(
            self.store,
            self.signer,
            writer=self._writer,
            slotter=self._slotter,
            slot_inline=SLOT_INLINE if signs_fast(self.signer) else 0,
            on_commit=self.uploader.notify,
        )
        self._publish = publish_location
        self._tasks: list[asyncio.Task] = []
        self.app = build_app(self)

    @property
    def url(self) -> str:
        return self.config.url or f"http://{self.config.host}:{self.config.port}"

    def see_block_height(self, height: int) -> None:
        """The gateway's chain reached ``height``: later slots carry at least it (heights never go back:
        a poll answered late must not undo a height a sealing gateway told us of directly)."""
        self.sequencer.block_height = max(self.sequencer.block_height, height)

    async def read(self, fn: Any) -> Any:
        """Run a blocking read (and its JSON rendering) on the reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    async def __aenter__(self) -> SchedulerUnit:
        self.sequencer.block_height = await self._initial_height()
        self._tasks = [
            asyncio.create_task(self.sequencer.run(), name="pyao-su-sequencer"),
            asyncio.create_task(self.uploader.run(), name="pyao-su-uploader"),
            asyncio.create_task(refresh_height(self), name="pyao-su-height"),
        ]
        if self._publish:
            item = location_item(self.signer, self.url, self.config.location_ttl_ms)
            await self.sequencer.write_uploads([item.to_bytes()])
        return self

    async def wait_until_located(self, timeout: float | None = None) -> None:
        """Until the gateway's newest Scheduler-Location of this SU's address carries this SU's
        Url (an older record, from a run at another URL, does not count): what the MU and CU
        query to find it. UnitError after ``timeout`` seconds (None: no limit)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        own, seen = self.url.rstrip("/"), "nothing"
        while True:
            try:
                data = await self.gateway.graphql(LOCATION_QUERY, {"owner": self.signer.address})
                edges = data["transactions"]["edges"]
                url = tag_value(edges[0]["node"]["tags"], "Url") if edges else None
                if url is not None and url.rstrip("/") == own:
                    return
                seen = f"Url {url!r}" if url is not None else "no Scheduler-Location"
            except PyaoError as exc:  # the gateway is down or busy: the outbox keeps trying too
                seen = str(exc)
            if deadline is not None and loop.time() > deadline:
                raise UnitError(
                    f"the gateway at {self.config.gateway_url} still shows {seen} for scheduler "
                    f"{self.signer.address} after {timeout} s (expected Url {own})"
                )
            await asyncio.sleep(LOCATE_POLL_S)

    async def _initial_height(self) -> int:
        try:
            return await asyncio.wait_for(self.gateway.height(), timeout=2.0)
        except (PyaoError, TimeoutError):
            stored = await self.read(self.store.block_height)
            log.warning("gateway height unavailable at start; using %s", stored or 0)
            return stored or 0

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._checker.shutdown(wait=True)
        self._slotter.shutdown(wait=True)
        self.store.close()
        await self.gateway.close()


def create_app(
    config: SchedulerConfig,
    *,
    store: ScheduleStore | None = None,
    gateway: GatewayClient | None = None,
    signer: Signer | None = None,
) -> Any:
    """A Starlette app whose lifespan runs the unit (``app.state.unit``)."""
    return SchedulerUnit(config, store=store, gateway=gateway, signer=signer).app


async def serve(config: SchedulerConfig, on_ready: Callable[[SchedulerUnit], None] | None = None) -> None:
    """Run the SU on ``config.host:config.port`` until cancelled; ``on_ready(unit)`` is called once
    it listens *and* its Scheduler-Location is queryable on the gateway (a warning is logged every
    ``config.locate_warn_s`` while it is not)."""
    app = create_app(config)
    unit: SchedulerUnit = app.state.unit

    async def announce_when_located() -> None:
        while True:
            try:
                await unit.wait_until_located(timeout=config.locate_warn_s)
                break
            except UnitError as exc:
                log.warning("not announcing readiness yet: %s", exc)
        if on_ready is not None:
            on_ready(unit)

    await serve_app(app, config.host, config.port, on_started=announce_when_located)
