"""Which network a client verb talks to: ``--mu-url``/``--cu-url``/``--gateway-url``, else the
environment (``MU_URL``, ``CU_URL``, ``GATEWAY_URL``, as aoconnect reads), else what the last
``pyao up`` wrote to ``<data-dir>/network.json``, else ``pyao up``'s default ports.

Contract: reads files and the environment only; no request is made here.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyao.cli._up import DEFAULT_DATA_DIR, read_network
from pyao.client.connect import DEFAULT_CU_URL, DEFAULT_GATEWAY_URL, DEFAULT_MU_URL

DEFAULT_WALLET = Path(os.environ.get("PYAO_WALLET", Path.home() / ".aos.json"))
_UNITS = (
    ("mu", "MU_URL", DEFAULT_MU_URL),
    ("cu", "CU_URL", DEFAULT_CU_URL),
    ("gateway", "GATEWAY_URL", DEFAULT_GATEWAY_URL),
)


@dataclass(frozen=True)
class Target:
    mu_url: str
    cu_url: str
    gateway_url: str
    #: ``pyao up``'s network.json (``{}`` when there is none): module id, unit addresses
    record: dict[str, Any]


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mu-url", help=f"messenger unit (env MU_URL, else network.json, else {DEFAULT_MU_URL})")
    parser.add_argument("--cu-url", help=f"compute unit (env CU_URL, else network.json, else {DEFAULT_CU_URL})")
    parser.add_argument(
        "--gateway-url", help=f"gateway (env GATEWAY_URL, else network.json, else {DEFAULT_GATEWAY_URL})"
    )
    parser.add_argument("--wallet", type=Path, default=DEFAULT_WALLET, help="your wallet (created if missing)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="pyao up's data directory (network.json, modules)"
    )


def resolve(args: argparse.Namespace) -> Target:
    record = read_network(args.data_dir)
    known = record.get("urls") if isinstance(record.get("urls"), dict) else {}
    urls = {}
    for unit, env, default in _UNITS:
        given = getattr(args, f"{unit}_url", None)
        urls[unit] = str(given or os.environ.get(env) or known.get(unit) or default).rstrip("/")
    return Target(urls["mu"], urls["cu"], urls["gateway"], record)
