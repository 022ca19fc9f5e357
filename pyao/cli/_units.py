"""CLI verbs that run one unit alone: ``pyao gateway``, ``pyao su``, ``pyao cu`` and ``pyao mu``.

Each unit package exposes ``serve(config)`` (a coroutine that runs its HTTP
server until cancelled); this module only turns flags into that config.

``pyao su`` prints one line, ``pyao su ready at URL  address ADDRESS``, once its
Scheduler-Location is queryable on the gateway (not merely when it listens): a client
that spawns on it from then on is not refused for want of that record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pyao.config import CUConfig, GatewayConfig, MUConfig, SchedulerConfig


def _serve(unit: Coroutine[Any, Any, None]) -> int:
    """Run a unit until it stops; Ctrl-C (SIGINT) is the normal way to stop it: exit 0, no traceback."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(unit)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--db", help="sqlite:///path.db (default under --data-dir) or postgresql://…")
    parser.add_argument("--data-dir", type=Path)


def gateway_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--block-seconds", type=float, help="seal a block every N seconds (0: only on POST /mine)")


def gateway(args: argparse.Namespace) -> int:
    config = GatewayConfig.from_env(
        host=args.host, port=args.port, db=args.db, data_dir=args.data_dir, block_seconds=args.block_seconds
    )
    return _serve(importlib.import_module("pyao.gateway").serve(config))


def su_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--gateway-url", help="the permanent store the SU uploads to")
    parser.add_argument("--wallet", type=Path, help="the SU's key file (created if missing)")
    parser.add_argument("--wallet-type", choices=["arweave", "ed25519"], help="key type to create")
    parser.add_argument("--url", help="public URL published in the Scheduler-Location item")


def su(args: argparse.Namespace) -> int:
    config = SchedulerConfig.from_env(
        host=args.host,
        port=args.port,
        db=args.db,
        data_dir=args.data_dir,
        gateway_url=args.gateway_url,
        wallet=args.wallet,
        wallet_type=args.wallet_type,
        url=args.url,
    )

    def announce(unit) -> None:
        print(f"pyao su ready at {unit.url}  address {unit.signer.address}", flush=True)

    return _serve(importlib.import_module("pyao.su").serve(config, on_ready=announce))


def cu_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--gateway-url", help="the gateway the CU reads processes, modules and blocks from")
    parser.add_argument("--wallet", type=Path, help="the CU's key file (created if missing)")
    parser.add_argument("--wallet-type", choices=["arweave", "ed25519"], help="key type to create")


def cu(args: argparse.Namespace) -> int:
    config = CUConfig.from_env(
        host=args.host,
        port=args.port,
        db=args.db,
        data_dir=args.data_dir,
        gateway_url=args.gateway_url,
        wallet=args.wallet,
        wallet_type=args.wallet_type,
    )
    return _serve(importlib.import_module("pyao.cu").serve(config))


def mu_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--gateway-url", help="the gateway processes and Scheduler-Locations are read from")
    parser.add_argument("--cu-url", help="the compute unit whose results are cranked")
    parser.add_argument("--wallet", type=Path, help="the MU's key file (created if missing)")
    parser.add_argument("--wallet-type", choices=["arweave", "ed25519"], help="key type to create")
    parser.add_argument("--cron-interval", type=float, help="seconds between cron polls of monitored processes")
    parser.add_argument("--workers", type=int, help="crank jobs run at the same time")


def mu(args: argparse.Namespace) -> int:
    config = MUConfig.from_env(
        host=args.host,
        port=args.port,
        db=args.db,
        data_dir=args.data_dir,
        gateway_url=args.gateway_url,
        cu_url=args.cu_url,
        wallet=args.wallet,
        wallet_type=args.wallet_type,
        cron_interval_s=args.cron_interval,
        workers=args.workers,
    )
    return _serve(importlib.import_module("pyao.mu").serve(config))
