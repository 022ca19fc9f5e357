"""``pyao up``: the whole embedded network in one process.

Only the CLI composes units into one process (DESIGN rule 7). Each unit still
serves real HTTP on its own loopback port, so outside clients (aoconnect, the
official units, curl) reach it as they would a remote one; between units inside
this process the calls go through httpx's ASGI transport, so they pay no socket.

Units composed so far: the gateway and the scheduler unit. The messenger and
compute units and the console join as they land.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

import httpx

from pyao.config import GatewayConfig, SchedulerConfig

DEFAULT_DATA_DIR = Path(os.environ.get("PYAO_HOME", Path.home() / ".pyao"))


def up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where every unit keeps its data")
    parser.add_argument(
        "--wallet", type=Path, default=Path.home() / ".aos.json", help="your wallet (created if missing)"
    )
    parser.add_argument("--gateway-port", type=int, default=4000)
    parser.add_argument("--su-port", type=int, default=9000)
    parser.add_argument("--block-seconds", type=float, default=2.0, help="seal a gateway block every N seconds")


def _configs(args: argparse.Namespace) -> tuple[GatewayConfig, SchedulerConfig]:
    gateway = GatewayConfig.from_env(
        port=args.gateway_port, data_dir=args.data_dir / "gateway", block_seconds=args.block_seconds
    )
    su = SchedulerConfig.from_env(
        port=args.su_port,
        data_dir=args.data_dir / "su",
        wallet=args.data_dir / "su" / "wallet.json",
        gateway_url=f"http://{gateway.host}:{gateway.port}",
    )
    return gateway, su


async def run_network(args: argparse.Namespace, *, ready: asyncio.Event | None = None) -> None:
    import uvicorn

    from pyao import gateway as gateway_unit
    from pyao import su as su_unit
    from pyao.client import GatewayClient
    from pyao.data import Wallet

    gateway_config, su_config = _configs(args)
    gateway_config.data_dir.mkdir(parents=True, exist_ok=True)
    su_config.data_dir.mkdir(parents=True, exist_ok=True)
    wallet = Wallet.load_or_create(args.wallet)

    gateway_app = gateway_unit.create_app(gateway_config)
    in_process_gateway = GatewayClient(su_config.gateway_url, transport=httpx.ASGITransport(app=gateway_app))
    su_app = su_unit.create_app(su_config, gateway=in_process_gateway)

    servers = [
        uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False))
        for app, cfg in ((gateway_app, gateway_config), (su_app, su_config))
    ]
    tasks = [asyncio.create_task(servers[0].serve())]
    while not servers[0].started:  # the SU reads the gateway's height when it starts
        if tasks[0].done():
            tasks[0].result()
        await asyncio.sleep(0.02)
    tasks.append(asyncio.create_task(servers[1].serve()))
    while not servers[1].started:
        if tasks[1].done():
            tasks[1].result()
        await asyncio.sleep(0.02)

    su_address = su_app.state.unit.signer.address
    print("pyao network is up")
    print(f"  gateway          http://{gateway_config.host}:{gateway_config.port}   (GraphQL: /graphql)")
    print(f"  scheduler unit   http://{su_config.host}:{su_config.port}   address {su_address}")
    print(f"  your wallet      {args.wallet}   address {wallet.address}")
    print(f"  data             {args.data_dir}")
    print("Press Ctrl-C to stop.", flush=True)
    if ready is not None:
        ready.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for server in servers:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def up(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_network(args))
    return 0
