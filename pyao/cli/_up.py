"""``pyao up``: the whole embedded network in one process.

Only the CLI composes units into one process (DESIGN rule 7). Each unit still
serves real HTTP on its own loopback port, so outside clients (aoconnect, the
official units, curl) reach it as they would a remote one; calls from a unit to
the gateway inside this process go through httpx's ASGI transport, so they pay
no socket.

Units composed: gateway, scheduler unit, compute unit, messenger unit. It also
publishes the built-in native-Lua aos module once per data directory, and
writes ``<data-dir>/network.json`` (each unit's URL and address, the module id,
the wallet) so that ``pyao console`` and the one-shot verbs find this network
without flags.

Console: when stdin and stdout are a terminal (or with ``--console``), the
network runs on an event loop in a background thread and ``pyao console`` runs
in the foreground on it; leaving the console (``.exit``, Ctrl-D) stops every
unit cleanly and ``pyao up`` exits. Otherwise (``--no-console``, or piped) it
serves until Ctrl-C / SIGINT / SIGTERM.

Side effects: listens on four loopback ports; writes under ``--data-dir``;
creates the wallet if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from pyao._http import tcp_listener, uvicorn_config
from pyao.config import CUConfig, GatewayConfig, MUConfig, SchedulerConfig

DEFAULT_DATA_DIR = Path(os.environ.get("PYAO_HOME", Path.home() / ".pyao"))
AOS_MODULE_SOURCE = b"-- pyao's built-in aos module: the aos process library, nothing added.\n"
NETWORK_RECORD = "network.json"


def read_network(data_dir: Path) -> dict[str, Any]:
    """What the last ``pyao up`` on ``data_dir`` wrote (``{}`` when nothing readable is there)."""
    try:
        record = json.loads((data_dir / NETWORK_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where every unit keeps its data (env PYAO_HOME)"
    )
    parser.add_argument(
        "--wallet",
        type=Path,
        default=Path(os.environ.get("PYAO_WALLET", Path.home() / ".aos.json")),
        help="your wallet (created if missing; env PYAO_WALLET)",
    )
    parser.add_argument("--gateway-port", type=int, default=4000)
    parser.add_argument("--su-port", type=int, default=9000)
    parser.add_argument("--cu-port", type=int, default=6363)
    parser.add_argument("--mu-port", type=int, default=3005)
    parser.add_argument("--block-seconds", type=float, default=2.0, help="seal a gateway block every N seconds")
    console = parser.add_mutually_exclusive_group()
    console.add_argument(
        "--console",
        dest="console",
        action="store_true",
        default=None,
        help="open the console on the network (default when stdin and stdout are a terminal)",
    )
    console.add_argument("--no-console", dest="console", action="store_false", help="only serve, until Ctrl-C")
    parser.add_argument("--name", default="default", help="the console's process Name (default: default)")


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
    try:
        return tcp_listener(host, port)
    except OSError as exc:
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None


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


async def run_network(
    args: argparse.Namespace,
    on_ready: Callable[[dict[str, Any], asyncio.Event], None] | None = None,
    *,
    cu_devices: Any = None,
    then: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Serve every unit until they stop (Ctrl-C); with ``on_ready``, until the event it is handed is
    set (``on_ready(record, stop)`` is called once everything answers); with ``then`` (an async
    function of the aos module id), until ``then`` returns. ``cu_devices``: device objects for the CU
    (``pyao.abc.Devices``; its VMs then run on threads of this process), None = its configured ones."""
    import uvicorn

    from pyao import cu as cu_unit
    from pyao import gateway as gateway_unit
    from pyao import mu as mu_unit
    from pyao import su as su_unit
    from pyao.client import ComputeClient, GatewayClient, SchedulerClient
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
    # the SU stamps each new block's height from the moment it is sealed (not up to a poll later):
    # whoever waited for an item to be mined (an attestation) and then sends a message gets it
    gateway_app.state.block_listeners.append(lambda block: su_app.state.unit.see_block_height(block.height))
    su_urls = {f"http://{su_config.host}:{su_config.port}", su_config.url.rstrip("/")} - {""}

    def scheduler_client(url: str) -> SchedulerClient:
        """This process's own SU without a socket (the MU schedules, and the CU reads, every message
        there: a socket and a connection pool per call cost more than the SU's own work); others over HTTP."""
        if url.rstrip("/") in su_urls:
            return SchedulerClient(url, app=su_app, timeout=mu_config.request_timeout_s)
        return SchedulerClient(url, timeout=mu_config.request_timeout_s)

    cu_app = cu_unit.ComputeUnit(
        cu_config, gateway=in_process_gateway(), scheduler_factory=scheduler_client, devices=cu_devices
    ).app
    in_process_cu = ComputeClient(mu_config.cu_url, app=cu_app, timeout=mu_config.request_timeout_s)

    mu_app = mu_unit.create_app(
        mu_config, gateway=in_process_gateway(), compute=in_process_cu, scheduler_factory=scheduler_client
    )
    units = ((gateway_app, gateway_config), (su_app, su_config), (cu_app, cu_config), (mu_app, mu_config))
    servers = [uvicorn.Server(uvicorn_config(app, host=cfg.host, port=cfg.port)) for app, cfg in units]
    tasks: list[asyncio.Task] = []
    try:
        # in order: the SU and CU read the gateway when they start
        for server, sock in zip(servers, sockets, strict=True):
            await _start(server, sock, tasks)
        async with in_process_gateway() as gateway:
            module_id = await ensure_aos_module(gateway, wallet, args.data_dir)
        # the MU and CU locate the SU by its Scheduler-Location: a spawn sent before it is
        # queryable would be refused (404), so the banner waits for it
        await su_app.state.unit.wait_until_located(timeout=30.0)
        urls = {
            name: f"http://{c.host}:{c.port}"
            for name, c in zip(UNIT_NAMES, (gateway_config, su_config, cu_config, mu_config), strict=True)
        }
        record = {
            "urls": urls,
            "addresses": {
                "su": su_app.state.unit.signer.address,
                "cu": cu_app.state.unit.signer.address,
                "mu": mu_app.state.unit.address,
            },
            "module": module_id,
            "wallet": str(args.wallet),
            "wallet_address": wallet.address,
        }
        (args.data_dir / NETWORK_RECORD).write_text(json.dumps(record, indent=2))
        collect_rarely()
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
        elif on_ready is None:
            print("Press Ctrl-C to stop.", flush=True)
            await asyncio.gather(*tasks)
        else:
            stop = asyncio.Event()
            on_ready(record, stop)
            waiters = [asyncio.ensure_future(stop.wait()), *tasks]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            waiters[0].cancel()
    finally:
        for server in servers:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


UNIT_NAMES = ("gateway", "su", "cu", "mu")


def run_fast(main: Awaitable[Any]) -> Any:
    """``asyncio.run(main)`` on uvloop's event loop (a dependency, as uvicorn's own choice): every
    message of ``pyao up`` crosses the loop many times (requests, futures, thread hand-offs,
    timers), and uvloop's loop does that in C."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


#: CPython's cyclic collector thresholds while the network serves (the default: 700, 10, 10)
GC_THRESHOLDS = (20_000, 20, 10)


def collect_rarely() -> None:
    """Once every unit runs: what start-up made (modules, apps, caches) leaves the collector's
    generations (``gc.freeze``), and the young generation is collected every 20,000 allocations
    instead of 700. Each message makes and drops many containers (tasks, futures, dicts), nearly
    all freed by reference counting; a young collection only walks the few alive at that moment,
    so rarer collections do about the same work each, ~30 times less often (the collector was
    ~4% of ``pyao up``'s CPU in a perf profile of the MU benchmark)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _wants_console(args: argparse.Namespace) -> bool:
    if args.console is not None:
        return bool(args.console)
    return sys.stdin.isatty() and sys.stdout.isatty()


def _up_with_console(args: argparse.Namespace) -> int:
    """The network on a background thread's event loop, the console in the foreground."""
    from pyao.cli import _console

    ready, abandoned = threading.Event(), threading.Event()
    state: dict[str, Any] = {}

    def on_ready(record: dict[str, Any], stop: asyncio.Event) -> None:
        state.update(record=record, stop=stop, loop=asyncio.get_running_loop())
        ready.set()
        if abandoned.is_set():  # Ctrl-C while starting
            stop.set()

    def serve() -> None:
        try:
            run_fast(run_network(args, on_ready))
        except BaseException as exc:  # reported by the foreground thread
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=serve, name="pyao-up", daemon=True)
    thread.start()
    try:
        while not ready.wait(0.1):
            pass
        if "error" in state:
            raise state["error"]
        if "record" not in state:
            print("pyao up: the network stopped while starting", file=sys.stderr)
            return 1
        urls = state["record"]["urls"]
        console_args = argparse.Namespace(
            name=args.name,
            mu_url=urls["mu"],
            cu_url=urls["cu"],
            gateway_url=urls["gateway"],
            wallet=args.wallet,
            data_dir=args.data_dir,
            module=None,
            scheduler=state["record"]["addresses"]["su"],
            cron=None,
        )
        print("Opening the console; .exit or Ctrl-D stops the network.", flush=True)
        return _console.console(console_args)
    finally:
        abandoned.set()
        if "stop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(timeout=30)
        print("pyao network stopped.", flush=True)


def up(args: argparse.Namespace) -> int:
    if _wants_console(args):
        try:
            return _up_with_console(args)
        except KeyboardInterrupt:  # while the network was starting
            return 0
        except PortInUse as exc:
            print(f"pyao up: {exc}", file=sys.stderr)
            return 1
    try:
        run_fast(run_network(args))
    except KeyboardInterrupt:
        pass
    except PortInUse as exc:
        print(f"pyao up: {exc}", file=sys.stderr)
        return 1
    return 0
