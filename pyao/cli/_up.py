"""``pyao up``: the whole embedded network in one process.

Only the CLI composes units into one process (DESIGN rule 7). Each unit still
serves real HTTP on its own loopback port, so outside clients (aoconnect, the
official units, curl) reach it as they would a remote one; calls from a unit to
the gateway inside this process go through httpx's ASGI transport, so they pay
no socket.

Units composed: gateway, scheduler unit, compute unit, messenger unit. It also
publishes the built-in native-Lua aos module once per data directory. The
console joins as it lands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import httpx

from pyao.config import CUConfig, GatewayConfig, MUConfig, SchedulerConfig

DEFAULT_DATA_DIR = Path(os.environ.get("PYAO_HOME", Path.home() / ".pyao"))
AOS_MODULE_SOURCE = b"-- pyao's built-in aos module: the aos process library, nothing added.\n"


def up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where every unit keeps its data")
    parser.add_argument(
        "--wallet", type=Path, default=Path.home() / ".aos.json", help="your wallet (created if missing)"
    )
    parser.add_argument("--gateway-port", type=int, default=4000)
    parser.add_argument("--su-port", type=int, default=9000)
    parser.add_argument("--cu-port", type=int, default=6363)
    parser.add_argument("--mu-port", type=int, default=3005)
    parser.add_argument("--block-seconds", type=float, default=2.0, help="seal a gateway block every N seconds")


def _configs(args: argparse.Namespace) -> tuple[GatewayConfig, SchedulerConfig, CUConfig, MUConfig]:
    gateway = GatewayConfig.from_env(
        port=args.gateway_port, data_dir=args.data_dir / "gateway", block_seconds=args.block_seconds
    )
    gateway_url = f"http://{gateway.host}:{gateway.port}"
    su = SchedulerConfig.from_env(
        port=args.su_port,
        data_dir=args.data_dir / "su",
        wallet=args.data_dir / "su" / "wallet.json",
        gateway_url=gateway_url,
    )
    cu = CUConfig.from_env(
        port=args.cu_port,
        data_dir=args.data_dir / "cu",
        wallet=args.data_dir / "cu" / "wallet.json",
        gateway_url=gateway_url,
    )
    mu = MUConfig.from_env(
        port=args.mu_port,
        data_dir=args.data_dir / "mu",
        wallet=args.data_dir / "mu" / "wallet.json",
        gateway_url=gateway_url,
        cu_url=f"http://{cu.host}:{cu.port}",
    )
    return gateway, su, cu, mu


def _bind(host: str, port: int) -> socket.socket:
    """Bind a unit's port before anything starts, so a busy port is a clear error, not a hang."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class PortInUse(Exception):
    """A unit's port is taken: ``pyao up`` says which and exits 1."""


async def _start(server, sock: socket.socket, task_list: list[asyncio.Task]) -> None:
    """Start one uvicorn server on its bound socket and wait until it listens (or fails)."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    task_list.append(task)
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("a unit stopped while starting")
        await asyncio.sleep(0.02)


async def ensure_aos_module(gateway, signer, data_dir: Path) -> str:
    """The built-in aos module's id: published once, remembered in ``data_dir/modules.json``."""
    from pyao.data import DataItem, ao
    from pyao.vm.lua import LUA_NATIVE_FORMAT

    record = data_dir / "modules.json"
    known = json.loads(record.read_text()) if record.exists() else {}
    module_id = known.get("aos")
    if module_id and await gateway.exists(module_id):
        return module_id
    item = DataItem.create(
        AOS_MODULE_SOURCE,
        signer=signer,
        tags=ao.module_tags(LUA_NATIVE_FORMAT, [("Name", "aos")], content_type="text/x-lua"),
    )
    await gateway.upload(item.to_bytes())
    record.write_text(json.dumps({**known, "aos": item.id}))
    return item.id


async def run_network(args: argparse.Namespace, *, cu_devices=None, then=None) -> None:
    """Run the network until cancelled; or, with ``then`` (an async function of the aos
    module id), until ``then`` returns. ``cu_devices``: the CU's devices (``pyao.abc.Devices``)."""
    import uvicorn

    from pyao import cu as cu_unit
    from pyao import gateway as gateway_unit
    from pyao import mu as mu_unit
    from pyao import su as su_unit
    from pyao.client import ComputeClient, GatewayClient
    from pyao.data import Wallet

    gateway_config, su_config, cu_config, mu_config = _configs(args)
    sockets = []
    try:
        for config in (gateway_config, su_config, cu_config, mu_config):
            sockets.append(_bind(config.host, config.port))
    except PortInUse:
        for sock in sockets:
            sock.close()
        raise
    for config in (gateway_config, su_config, cu_config, mu_config):
        config.data_dir.mkdir(parents=True, exist_ok=True)
    wallet = Wallet.load_or_create(args.wallet)

    gateway_app = gateway_unit.create_app(gateway_config)

    def in_process_gateway() -> GatewayClient:
        return GatewayClient(su_config.gateway_url, transport=httpx.ASGITransport(app=gateway_app))

    su_app = su_unit.create_app(su_config, gateway=in_process_gateway())
    cu_app = cu_unit.create_app(cu_config, gateway=in_process_gateway(), devices=cu_devices)
    in_process_cu = ComputeClient(mu_config.cu_url, transport=httpx.ASGITransport(app=cu_app))
    mu_app = mu_unit.create_app(mu_config, gateway=in_process_gateway(), compute=in_process_cu)
    units = ((gateway_app, gateway_config), (su_app, su_config), (cu_app, cu_config), (mu_app, mu_config))
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False))
        for app, cfg in units
    ]
    tasks: list[asyncio.Task] = []
    try:
        # in order: the SU and CU read the gateway when they start
        for server, sock in zip(servers, sockets, strict=True):
            await _start(server, sock, tasks)
        async with in_process_gateway() as gateway:
            module_id = await ensure_aos_module(gateway, wallet, args.data_dir)
        print("pyao network is up")
        print(f"  gateway          http://{gateway_config.host}:{gateway_config.port}   (GraphQL: /graphql)")
        print(
            f"  scheduler unit   http://{su_config.host}:{su_config.port}   address {su_app.state.unit.signer.address}"
        )
        print(
            f"  compute unit     http://{cu_config.host}:{cu_config.port}   address {cu_app.state.unit.signer.address}"
        )
        print(f"  messenger unit   http://{mu_config.host}:{mu_config.port}   address {mu_app.state.unit.address}")
        print(f"  aos module       {module_id}   (Module-Format lua53-pyao-native-1)")
        print(f"  your wallet      {args.wallet}   address {wallet.address}")
        print(f"  data             {args.data_dir}")
        if then is not None:
            await then(module_id)
            return
        print("Press Ctrl-C to stop.", flush=True)
        await asyncio.gather(*tasks)
    finally:
        for server in servers:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def up(args: argparse.Namespace) -> int:
    try:
        asyncio.run(run_network(args))
    except KeyboardInterrupt:
        pass
    except PortInUse as exc:
        print(f"pyao up: {exc}", file=sys.stderr)
        return 1
    return 0
