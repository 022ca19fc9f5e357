"""Helpers for the CU tests: a real gateway + SU over HTTP on loopback, and ways to feed them.

``Network`` serves the gateway (blocks only on ``/mine``) and an SU on a known port
(so its Scheduler-Location names its real URL); CUs are served on top of it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pyao.config import CUConfig, GatewayConfig, SchedulerConfig
from pyao.cu import create_app as cu_app
from pyao.data import DataItem, Ed25519Signer, ao
from pyao.gateway import create_app as gateway_app
from pyao.su import create_app as su_app
from pyao.testing.postgres import free_port
from pyao.testing.servers import serve_app
from pyao.vm import LUA_NATIVE_FORMAT

USER = Ed25519Signer.from_seed(bytes([21]) * 32)
OTHER = Ed25519Signer.from_seed(bytes([22]) * 32)

#: a module with a few handlers used across the tests
MODULE_SOURCE = b"""
Count = Count or 0
Handlers.add("ping", "Ping", function(msg)
  Count = Count + 1
  msg.reply({ Action = "Pong", Data = "pong " .. Count, ["X-Count"] = tostring(Count) })
end)
Handlers.add("spawn", "Make", function(msg)
  Spawn(ao._module, { Data = "child", Name = "kid" })
  print("spawned")
end)
Handlers.add("boom", "Boom", function(msg)
  Count = Count + 100
  error("boom " .. Count)
end)
Handlers.add("cron", "Cron", function(msg)
  Ticks = (Ticks or 0) + 1
  print("tick " .. Ticks .. " at " .. msg.Timestamp .. " cron=" .. tostring(msg.Cron))
end)
"""


def tag(tags: list[dict[str, str]], name: str) -> str | None:
    return next((t["value"] for t in tags if t["name"] == name), None)


@dataclass
class Network:
    gateway: str
    su: str
    su_address: str
    tmp: Path
    sent: int = 0

    # ---------------------------------------------------------------- feeding

    def upload(self, item: DataItem) -> None:
        r = httpx.post(self.gateway + "/tx/arweave", content=item.to_bytes(), timeout=30)
        assert r.status_code == 200, r.text

    def mine(self) -> None:
        assert httpx.post(self.gateway + "/mine", timeout=30).status_code == 200

    def module(self, source: bytes = MODULE_SOURCE, *, module_format: str = LUA_NATIVE_FORMAT, **kw: Any) -> str:
        item = DataItem.create(source, signer=USER, tags=ao.module_tags(module_format, content_type="text/x-lua", **kw))
        self.upload(item)
        return item.id

    def spawn(self, module: str, tags: list[tuple[str, str]] | None = None, data: bytes = b"x", signer=USER) -> str:
        self.sent += 1
        item = DataItem.create(
            data,
            signer=signer,
            tags=ao.process_tags(module, self.su_address, tags or [], authorities=[USER.address]),
            anchor=f"{self.sent:032d}",
        )
        r = httpx.post(self.su + "/", content=item.to_bytes(), timeout=30)
        assert r.status_code == 200, r.text
        self.wait_on_gateway(item.id)
        return item.id

    def send(self, pid: str, tags: list[tuple[str, str]], data: str | bytes = "", signer=USER) -> dict[str, Any]:
        self.sent += 1
        anchor = f"{self.sent:032d}"  # Ed25519 signs deterministically: the anchor keeps ids apart
        item = DataItem.create(data, signer=signer, tags=ao.message_tags(tags), target=pid, anchor=anchor)
        r = httpx.post(self.su + "/", content=item.to_bytes(), timeout=30)
        assert r.status_code == 200, r.text
        return {"id": item.id, "timestamp": r.json()["timestamp"]}

    def wait_on_gateway(self, item_id: str, timeout: float = 10.0) -> None:
        query = "query($ids:[ID!]){transactions(ids:$ids){edges{node{id}}}}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.post(self.gateway + "/graphql", json={"query": query, "variables": {"ids": [item_id]}}).json()
            if body["data"]["transactions"]["edges"]:
                return
            time.sleep(0.02)
        raise AssertionError(f"{item_id} never reached the gateway")

    # ---------------------------------------------------------------- CUs

    @contextlib.contextmanager
    def cu(self, db: str | None = None, name: str = "cu", **config: Any) -> Iterator[httpx.Client]:
        """A CU served over HTTP, and an httpx client on it."""
        db = db or f"sqlite:///{self.tmp / (name + '.db')}"
        config.setdefault("data_dir", self.tmp / name)
        cfg = CUConfig(db=db, gateway_url=self.gateway, wallet=self.tmp / f"{name}-wallet.json", **config)
        with serve_app(cu_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield client


@contextlib.contextmanager
def network(tmp: Path, su_db: str | None = None) -> Iterator[Network]:
    gw_cfg = GatewayConfig(db=f"sqlite:///{tmp / 'gw.db'}", block_seconds=0)
    with serve_app(gateway_app(gw_cfg)) as gateway:
        port = free_port()
        su_cfg = SchedulerConfig(
            port=port,
            url=f"http://127.0.0.1:{port}",
            db=su_db or f"sqlite:///{tmp / 'su.db'}",
            gateway_url=gateway,
            wallet=tmp / "su-wallet.json",
        )
        with serve_app(su_app(su_cfg), port=port) as su:
            address = httpx.get(su + "/").json()["address"]
            net = Network(gateway, su, address, tmp)
            _wait_location(net)
            yield net


def _wait_location(net: Network, timeout: float = 10.0) -> None:
    query = (
        'query($o:[String!]){transactions(owners:$o, tags:[{name:"Type", values:["Scheduler-Location"]}])'
        "{edges{node{id}}}}"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.post(net.gateway + "/graphql", json={"query": query, "variables": {"o": [net.su_address]}}).json()
        if body["data"]["transactions"]["edges"]:
            return
        time.sleep(0.02)
    raise AssertionError("the SU never published its Scheduler-Location")
