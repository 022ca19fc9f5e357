"""The compute unit (CU): lazy, deterministic evaluation of processes from their SU schedule.

A request for a result makes the CU locate the process (its ``Scheduler`` tag →
the SU's ``Scheduler-Location`` on the gateway), load its module (VM chosen by
``Module-Format``), page the schedule from where it stopped, and replay it,
cron ticks included, through one hot instance per process. Every evaluation is
stored in the result store (SQLite or PostgreSQL). See ``_locate`` (metadata),
``_messages`` (SU entry → msg), ``_cron`` (ticks), ``_engine`` (evaluation),
``_store`` (results), ``_server`` (routes and HTTP choices).

Public face: ``ComputeUnit`` (``async with`` it, or let ``create_app``'s lifespan
do it), ``create_app``, ``serve``, ``open_result_store``, ``load_wallet``.

VM work runs on worker OS processes (``_workers``; ``workers``: one per core by
default); processes are checkpointed to ``data_dir/checkpoints``
(``_checkpoints``), so a restarted CU restores them instead of replaying their
history; hot processes are kept in memory up to ``live_memory`` bytes.
"""

from __future__ import annotations

from typing import Any

from pyao._http import serve_app
from pyao.abc import Devices, ResultStore, Signer
from pyao.client import GatewayClient, SchedulerClient
from pyao.config import CUConfig
from pyao.cu._engine import Engine
from pyao.cu._locate import Locator
from pyao.cu._server import build_app
from pyao.cu._store import open_result_store
from pyao.data import load_or_create_signer

__all__ = ["ComputeUnit", "create_app", "load_wallet", "open_result_store", "serve"]


def load_wallet(config: CUConfig) -> Signer:
    """The CU's key from ``config.wallet``, created with ``config.wallet_type`` if missing."""
    return load_or_create_signer(config.wallet, config.wallet_type)


def store_url(config: CUConfig) -> str:
    return config.db or f"sqlite:///{config.data_dir / 'cu.db'}"


class ComputeUnit:
    """A running CU: result store, locator (gateway and SU clients) and engine.

    ``async with unit:`` is its lifetime; leaving it stops the worker threads
    and closes the store and clients.
    """

    def __init__(
        self,
        config: CUConfig,
        *,
        store: ResultStore | None = None,
        gateway: GatewayClient | None = None,
        signer: Signer | None = None,
        scheduler_factory: Any = SchedulerClient,
        devices: Devices | None = None,
    ) -> None:
        self.config = config
        self.signer = signer or load_wallet(config)
        self.store = store if store is not None else open_result_store(store_url(config))
        self.gateway = gateway or GatewayClient(config.gateway_url)
        self.locator = Locator(self.gateway, scheduler_factory)
        self.engine = Engine(self.locator, self.store, config, devices)
        self.app = build_app(self)

    async def __aenter__(self) -> ComputeUnit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.close()
        await self.locator.close()
        await self.gateway.close()
        self.store.close()


def create_app(
    config: CUConfig,
    *,
    store: ResultStore | None = None,
    gateway: GatewayClient | None = None,
    signer: Signer | None = None,
    devices: Devices | None = None,
) -> Any:
    """A Starlette app whose lifespan runs the unit (``app.state.unit``); ``devices``: see ``pyao.abc``."""
    return ComputeUnit(config, store=store, gateway=gateway, signer=signer, devices=devices).app


async def serve(config: CUConfig) -> None:
    """Run the CU on ``config.host:config.port`` until cancelled."""
    await serve_app(create_app(config), config.host, config.port)
