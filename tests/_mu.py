"""Helpers for the MU tests: gateway + SU (``tests._cu.network``) + CU + MU, all over real HTTP.

``MuNet`` adds to the CU tests' ``Network`` a CU and an MU served on loopback,
and ways to spawn and send through the MU and to read SU schedules.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pyao.config import CUConfig, MUConfig
from pyao.cu import create_app as cu_app
from pyao.data import DataItem, Ed25519Signer, ao, load_signer
from pyao.mu import create_app as mu_app
from pyao.testing.servers import serve_app
from tests._cu import USER, Network, network

#: processes used across the MU tests
MU_MODULE = b"""
Handlers.add("relay", "Relay", function(msg)
  Send({ Target = msg.To, Action = "Ping", Data = "from " .. ao.id })
end)
Handlers.add("ping", "Ping", function(msg)
  Pings = (Pings or 0) + 1
  msg.reply({ Action = "Pong", Data = "pong " .. Pings })
end)
Handlers.add("pong", "Pong", function(msg)
  print("got " .. msg.Data .. " from " .. msg.From)
end)
Handlers.add("make", "Make", function(msg)
  Spawn(ao._module, { Data = "child", Name = "kid" }).onReply(function(reply)
    Kid = reply.Process
    print("kid is " .. reply.Process)
  end)
end)
-- a plain handler too: pyao/lua's matchesPattern treats "-" in a process id as a Lua pattern
-- character, so onReply's {From = ao.id} fails for ids containing "-" (reported)
Handlers.add("spawned", "Spawned", function(msg)
  Kid = msg.Process
  print("kid is " .. msg.Process)
end)
Handlers.add("tip", "Tip", function(msg)
  Send({ Target = msg.Wallet, Action = "Thanks", Data = "for the tip" })
end)
Handlers.add("set-peer", "Set-Peer", function(msg)
  Peer = msg.Peer
  print("peer set")
end)
Handlers.add("cron", "Cron", function(msg)
  if Peer then Send({ Target = Peer, Action = "Tick" }) end
end)
Handlers.add("tick", "Tick", function(msg)
  Ticks = (Ticks or 0) + 1
  print("tick " .. Ticks)
end)
Handlers.add("count", "Count", function(msg)
  Counted = (Counted or 0) + 1
  print("counted " .. Counted .. " " .. msg.Data)
end)
Handlers.add("fan", "Fan", function(msg)
  for i = 1, tonumber(msg.N) do
    Send({ Target = msg.To, Action = "Count", Data = msg.Data .. "/" .. i })
  end
end)
"""


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tags_of(node: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in reversed(node["tags"])}


@dataclass
class MuNet:
    net: Network
    cu: str
    mu: str
    mu_address: str
    module: str
    sent: int = 0

    def post(self, item: DataItem) -> httpx.Response:
        return httpx.post(self.mu + "/", content=item.to_bytes(), timeout=30)

    def spawn(self, tags: list[tuple[str, str]] | None = None, signer=USER) -> str:
        self.sent += 1
        item = DataItem.create(
            b"x",
            signer=signer,
            tags=ao.process_tags(
                self.module, self.net.su_address, tags or [], authorities=[USER.address, self.mu_address]
            ),
            anchor=f"p{self.sent:031d}",
        )
        r = self.post(item)
        assert r.status_code == 202, r.text
        assert r.json() == {"message": "Processing DataItem", "id": item.id}
        self.net.wait_on_gateway(item.id)
        return item.id

    def message(self, pid: str, tags: list[tuple[str, str]], data: str = "", signer=USER) -> DataItem:
        self.sent += 1
        return DataItem.create(
            data or " ", signer=signer, tags=ao.message_tags(tags), target=pid, anchor=f"m{self.sent:031d}"
        )

    def send(self, pid: str, tags: list[tuple[str, str]], data: str = "") -> str:
        item = self.message(pid, tags, data)
        r = self.post(item)
        assert r.status_code == 202, r.text
        assert r.json() == {"message": "Processing DataItem", "id": item.id}
        return item.id

    def schedule(self, pid: str) -> list[dict[str, Any]]:
        """Every SU entry of ``pid``: ``{"message", "assignment"}``."""
        out, cursor = [], None
        while True:
            params = {"process-id": pid, **({"from": cursor} if cursor else {})}
            page = httpx.get(f"{self.net.su}/{pid}", params=params, timeout=30).json()
            out += [e["node"] for e in page["edges"]]
            if not page["page_info"]["has_next_page"]:
                return out
            cursor = page["edges"][-1]["cursor"]

    def pushed(self, pid: str, **tags: str) -> list[dict[str, Any]]:
        """Messages on ``pid``'s schedule whose tags include ``tags`` (names with ``_`` for ``-``)."""
        want = {k.replace("_", "-"): v for k, v in tags.items()}
        found = []
        for node in self.schedule(pid):
            msg = node["message"]
            if msg and all(tags_of(msg).get(k) == v for k, v in want.items()):
                found.append(msg)
        return found

    def result(self, pid: str, mid: str) -> dict[str, Any]:
        r = httpx.get(f"{self.cu}/result/{mid}", params={"process-id": pid}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def status(self) -> dict[str, Any]:
        return httpx.get(self.mu + "/", params={"debug": "1"}, timeout=30).json()

    def idle(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the MU has no pending job."""
        return wait_for(lambda: (s := self.status())["jobs"]["pending"] == 0 and s, timeout, "the MU to go idle")


def mu_config(tmp: Path, gateway: str, cu: str, **overrides: Any) -> MUConfig:
    values: dict[str, Any] = {
        "db": f"sqlite:///{tmp / 'mu.db'}",
        "gateway_url": gateway,
        "cu_url": cu,
        "wallet": tmp / "mu-wallet.json",
        "cron_interval_s": 0.5,
        "retry_base_s": 0.1,
        "retry_cap_s": 2.0,
    }
    values.update(overrides)
    return MUConfig(**values)


@contextlib.contextmanager
def mu_network(tmp: Path, **mu_overrides: Any) -> Iterator[MuNet]:
    with network(tmp) as net:
        cu_cfg = CUConfig(
            db=f"sqlite:///{tmp / 'cu.db'}", data_dir=tmp / "cu", gateway_url=net.gateway, wallet=tmp / "cu-wallet.json"
        )
        with serve_app(cu_app(cu_cfg)) as cu:
            cfg = mu_config(tmp, net.gateway, cu, **mu_overrides)
            with serve_app(mu_app(cfg)) as mu:
                address = load_signer(cfg.wallet).address
                module = net.module(MU_MODULE)
                yield MuNet(net, cu, mu, address, module)


def wallet_address(seed: int) -> str:
    return Ed25519Signer.from_seed(bytes([seed]) * 32).address
