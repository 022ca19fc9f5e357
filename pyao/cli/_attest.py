"""``pyao attest ID``: sign and post a WeaveDrive attestation of a stored item.

Contract
--------
* Assumes: a wallet (the attestor: a process names it in an ``Attestor`` tag, or
  it is the process's scheduler) and a gateway that stores data items.
* Produces: a signed data item ``Data-Protocol: ao, Type: Attestation, Message:
  <ID>`` (the cookbook's shape; spec ai-on-ao.md §1), posted to the gateway;
  with ``--individual`` a second one, ``Data-Protocol: WeaveDrive, Type:
  Available, ID: <ID>``, for processes in ``Availability-Type: Individual``.
  Prints one JSON line per item posted. With ``--wait`` it waits until they are
  in a block: only attestations at or below a message's Block-Height count. With
  ``--scheduler URL`` too, it then waits until that SU stamps new messages with that
  height or more (an SU learns heights by polling its gateway, so for a moment after a
  block it may still stamp the one before: a message sent then could not read the item).
* Side effects: HTTP to the gateway. Refuses (exit 1, nothing posted) a
  malformed id, or an item the gateway does not have (unless ``--force``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import httpx

from pyao.cli._data import DEFAULT_WALLET
from pyao.data import DataItem, load_signer
from pyao.errors import NotFound, RequestError, UnitError

DEFAULT_GATEWAY = os.environ.get("PYAO_GATEWAY_URL", "http://127.0.0.1:4000")
_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def attest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the id of the item to attest (a /data/<id> file for WeaveDrive)")
    parser.add_argument("--wallet", type=Path, default=DEFAULT_WALLET, help="the attestor's key file")
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY, help=f"gateway URL (default {DEFAULT_GATEWAY})")
    parser.add_argument(
        "--individual", action="store_true", help="also post an Availability record (Availability-Type: Individual)"
    )
    parser.add_argument("--force", action="store_true", help="attest even if the gateway does not have the item")
    parser.add_argument("--wait", action="store_true", help="wait until the attestation is in a block")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits at most")
    parser.add_argument(
        "--scheduler",
        metavar="URL",
        help="with --wait: also wait until this SU stamps new messages at the attestation's block height or above",
    )


def attestation_items(item_id: str, signer, *, individual: bool = False) -> list[DataItem]:
    """The attestation item (and the availability record with ``individual``) for ``item_id``, signed."""
    items = [
        DataItem.create(
            b"", signer=signer, tags=[("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", item_id)]
        )
    ]
    if individual:
        tags = [("Data-Protocol", "WeaveDrive"), ("Type", "Available"), ("ID", item_id)]
        items.append(DataItem.create(b"", signer=signer, tags=tags))
    return items


def attest(args: argparse.Namespace) -> int:
    if not _ID.fullmatch(args.id):
        raise RequestError(f"{args.id!r} is not an item id (43 base64url characters)")
    if args.scheduler and not args.wait:
        raise RequestError("--scheduler goes with --wait")
    signer = load_signer(args.wallet)
    with httpx.Client(base_url=args.gateway.rstrip("/"), timeout=60) as gw:
        if not args.force:
            _require(gw, args.id)
        items = attestation_items(args.id, signer, individual=args.individual)
        for it in items:
            _post(gw, it)
            kind = next(t.value for t in it.tags if t.name == "Type")
            print(json.dumps({"posted": it.id, "type": kind, "item": args.id, "attestor": signer.address}))
        if args.wait:
            heights = []
            for it in items:
                heights.append(_wait_mined(gw, it.id, args.timeout))
                print(json.dumps({"mined": it.id, "block_height": heights[-1]}))
            if args.scheduler:
                seen = _wait_scheduler(args.scheduler, max(heights), args.timeout)
                print(json.dumps({"scheduler": args.scheduler, "block_height": seen}))
    return 0


def _request(client: httpx.Client, method: str, path: str, *, unit: str = "gateway", **kwargs) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise UnitError(f"{unit} at {client.base_url} is unreachable: {exc}") from exc


def _block_height(r: httpx.Response, unit: str) -> int:
    """The ``block_height`` of a gateway's tx status or an SU's ``/timestamp`` answer."""
    try:
        return int(r.json()["block_height"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UnitError(f"{unit} answered {r.request.url} without a block height: {r.text[:200]!r}") from exc


def _require(gw: httpx.Client, item_id: str) -> None:
    r = _request(gw, "HEAD", f"/raw/{item_id}")
    if r.status_code == 404:
        raise NotFound(f"the gateway has no item {item_id} (upload it first, or --force)")
    if r.status_code >= 400:
        raise UnitError(f"gateway answered HEAD /raw/{item_id} with {r.status_code}")


def _post(gw: httpx.Client, it: DataItem) -> None:
    r = _request(gw, "POST", "/tx/arweave", content=it.to_bytes(), headers={"content-type": "application/octet-stream"})
    if r.status_code >= 300:
        raise UnitError(f"gateway refused the attestation: {r.status_code} {r.text[:200]}")


def _wait_scheduler(url: str, height: int, timeout: float) -> int:
    """Until the SU at ``url`` answers ``GET /timestamp`` with a block height of ``height`` or more."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as su:
        while time.monotonic() < deadline:
            r = _request(su, "GET", "/timestamp", unit="scheduler")
            if r.status_code != 200:
                raise UnitError(f"scheduler at {url} answered GET /timestamp with {r.status_code}")
            seen = _block_height(r, "scheduler")
            if seen >= height:
                return seen
            time.sleep(0.1)
    raise UnitError(f"the scheduler at {url} did not reach block {height} within {timeout:.0f} s")


def _wait_mined(gw: httpx.Client, item_id: str, timeout: float) -> int:
    deadline, shown = time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        r = _request(gw, "GET", f"/tx/{item_id}/status")
        if r.status_code == 200:
            if shown:
                print(file=sys.stderr)
            return _block_height(r, "gateway")
        print("." if shown else f"waiting for {item_id} to be mined .", end="", file=sys.stderr, flush=True)
        shown = True
        time.sleep(1.0)
    raise UnitError(f"{item_id} was not mined within {timeout:.0f} s")
