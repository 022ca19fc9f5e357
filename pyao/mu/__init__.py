"""The messenger unit (MU): carries messages to their SUs and cranks what they produce.

A user's signed Message goes to its target's SU (found by the target's
``Scheduler`` tag and that SU's ``Scheduler-Location`` on the gateway; any
number of SUs); a Process goes to the SU its ``Scheduler`` tag names. Then the
MU "cranks": it reads the message's result from the CU and pushes every outbox
Message (re-signed by the MU's wallet, with ``From-Process``, ``From-Module``,
``Pushed-For``), Spawn (a new Process, then ``Action=Spawned`` to the spawner)
and Assignment, recursively. Messages to a wallet are stored on the gateway.
``/monitor`` polls the CU's cron results and cranks them too.

Every step is a durable job (``_core`` the pure rules and item building,
``_store`` SQLite and PostgreSQL, ``_crank`` the worker, ``_monitor`` cron
polling, ``_server`` the routes): a restarted MU finishes every crank it
accepted. Delivery is at least once and the SU refuses duplicates, so each
message is evaluated once. One MU per store: jobs are claimed in memory.

Public face: ``MessengerUnit`` (``async with`` it, or let ``create_app``'s
lifespan do it), ``create_app``, ``serve``, ``open_store``, ``load_wallet``, ``Job``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyao._http import serve_app
from pyao._verify import Verifier
from pyao.abc import MessengerStore, Signer
from pyao.client import ComputeClient, GatewayClient, SchedulerClient, SchedulerLocator
from pyao.config import MUConfig
from pyao.data import DataItem, load_or_create_signer
from pyao.errors import NotFound, RequestError
from pyao.mu import _core as core
from pyao.mu._core import Job
from pyao.mu._crank import AsyncStore, Cranker, Processes
from pyao.mu._monitor import Monitor
from pyao.mu._server import build_app
from pyao.mu._store import open_store

__all__ = ["Job", "MessengerUnit", "create_app", "load_wallet", "open_store", "serve"]

log = logging.getLogger("pyao.mu")


def load_wallet(config: MUConfig) -> Signer:
    """The MU's key from ``config.wallet``, created with ``config.wallet_type`` if missing."""
    return load_or_create_signer(config.wallet, config.wallet_type)


def store_url(config: MUConfig) -> str:
    return config.db or f"sqlite:///{config.data_dir / 'mu.db'}"


class MessengerUnit:
    """A running MU: work queue, crank workers, cron monitor, and the clients of the other units.

    ``async with unit:`` starts the workers (resuming every pending job) and the
    monitor; leaving it stops them and closes the store and clients.
    """

    def __init__(
        self,
        config: MUConfig,
        *,
        store: MessengerStore | None = None,
        gateway: GatewayClient | None = None,
        compute: ComputeClient | None = None,
        signer: Signer | None = None,
        scheduler_factory: Any = None,
    ) -> None:
        self.config = config
        self.signer = signer or load_wallet(config)
        timeout = config.request_timeout_s
        self.gateway = gateway or GatewayClient(config.gateway_url, timeout=timeout)
        self.compute = compute or ComputeClient(config.cu_url, timeout=timeout)
        factory = scheduler_factory or (lambda url: SchedulerClient(url, timeout=timeout))
        self.locator = SchedulerLocator(self.gateway, factory)
        self.store = AsyncStore(store if store is not None else open_store(store_url(config)))
        self.processes = Processes(self.store, self.locator)
        self.cranker = Cranker(
            config, self.store, self.signer, self.locator, self.processes, self.compute, self.gateway
        )
        self.monitor = Monitor(config, self.store, self.compute, self.cranker.notify)
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="pyao-mu-verifier")
        self.verifier = Verifier(self._checker)
        self._tasks: list[asyncio.Task] = []
        self.app = build_app(self)

    @property
    def address(self) -> str:
        return self.signer.address

    async def __aenter__(self) -> MessengerUnit:
        self._tasks = [
            asyncio.create_task(self.cranker.run(), name="pyao-mu-cranker"),
            asyncio.create_task(self.monitor.run(), name="pyao-mu-monitor"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.cranker.stop()
        self._checker.shutdown(wait=True)
        self.store.close()
        await self.locator.close()
        await self.compute.close()
        await self.gateway.close()

    # ------------------------------------------------------------ the unit's operations

    async def _record(self, jobs: list[Job]) -> None:
        if jobs:
            await self.store.call("add", jobs)
            self.cranker.hand(jobs)

    async def send_message(self, item: DataItem, raw: bytes) -> None:
        """Schedule a user's Message on its target's SU, then record the crank of its result."""
        target = item.target_id
        if not target:
            raise RequestError("an ao Message needs a target process")
        known = await self.processes.find(target)
        if known is None:
            raise NotFound(f"process {target} was not found")
        url = await self.locator.scheduler_url(known[0])
        await self.locator.scheduler(url).schedule(raw)
        await self._record([core.result_job(target, item.id, item.id, time.time())])

    async def send_process(self, item: DataItem, raw: bytes) -> None:
        """Schedule a Process on the SU its Scheduler tag names; assign it to its target, if any."""
        scheduler = item.tag("Scheduler")
        if not scheduler:
            raise RequestError("No Scheduler tag found on 'Process' DataItem")
        url = await self.locator.scheduler_url(scheduler)
        await self.locator.scheduler(url).schedule(raw)
        await self.processes.remember(item.id, scheduler, item.tag("Module") or "")
        now = time.time()
        jobs = [core.result_job(item.id, item.id, item.id, now)] if self.config.spawn_push else []
        if item.target_id:
            jobs.append(core.assign_job(item.target_id, item.id, item.id, now=now))
        await self._record(jobs)

    async def assign(self, process_id: str, message_id: str, base_layer: bool, exclude: list[str]) -> str:
        """Assign an existing item to a process (its SU), then record the crank of the result."""
        url = await self.processes.su_url(process_id)
        answer = await self.locator.scheduler(url).assign(
            process_id, message_id, base_layer=base_layer, exclude=exclude or None
        )
        await self._record([core.result_job(process_id, message_id, message_id, time.time())])
        return str(answer.get("id", ""))

    async def start_monitor(self, process_id: str) -> None:
        if await self.processes.find(process_id) is None:
            raise NotFound(f"process {process_id} was not found")
        await self.store.call("monitor", process_id)

    async def stop_monitor(self, process_id: str) -> bool:
        self.monitor.forget(process_id)
        return bool(await self.store.call("unmonitor", process_id))

    async def status(self) -> dict[str, Any]:
        """The work queue at a glance (``GET /?debug``)."""
        counts = await self.store.call("counts")
        failed = await self.store.call("jobs", "failed", 50)
        pending = await self.store.call("jobs", "pending", 50)
        monitors = await self.store.call("monitors")
        return {
            "address": self.address,
            "jobs": counts,
            "running": len(self.cranker._running),
            "failed": [j.to_json() for j in failed],
            "pending": [j.to_json() for j in pending],
            "monitors": monitors,
        }


def create_app(
    config: MUConfig,
    *,
    store: MessengerStore | None = None,
    gateway: GatewayClient | None = None,
    compute: ComputeClient | None = None,
    signer: Signer | None = None,
    scheduler_factory: Any = None,
) -> Any:
    """A Starlette app whose lifespan runs the unit (``app.state.unit``). ``scheduler_factory(url)``
    makes the client of the SU at ``url`` (``pyao up`` reaches its own SU in process)."""
    unit = MessengerUnit(
        config, store=store, gateway=gateway, compute=compute, signer=signer, scheduler_factory=scheduler_factory
    )
    return unit.app


async def serve(config: MUConfig) -> None:
    """Run the MU on ``config.host:config.port`` until cancelled."""
    await serve_app(create_app(config), config.host, config.port)
