"""Crash test: the SU is killed with SIGKILL at random moments under load, and restarted.

A load generator posts messages to one process from several concurrent senders
while the SU (a real ``pyao su`` subprocess on SQLite, uploading to the real
gateway) is killed at a random moment, ``PYAO_CRASH_ROUNDS`` times (default 20;
raise it locally). Afterwards every message that got a 200 is in the schedule
exactly once, no message is there twice, nonces run 0, 1, 2, … without a gap,
the hash chain verifies from slot 0, and the upload outbox drains to the gateway.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pyao.config import GatewayConfig
from pyao.data import DataItem, Ed25519Signer, ao
from pyao.gateway import create_app as gateway_app
from pyao.testing.postgres import free_port
from pyao.testing.servers import serve_app
from tests._su import verify_chain, walk_schedule

ROUNDS = int(os.environ.get("PYAO_CRASH_ROUNDS", "20"))
SENDERS = 8
USER = Ed25519Signer.from_seed(bytes([21]) * 32)
PYAO = str(Path(sys.executable).with_name("pyao"))


class SU:
    def __init__(self, tmp: Path, gateway_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            PYAO, "su", "--port", str(self.port), "--db", f"sqlite:///{tmp}/su.db", "--gateway-url", gateway_url,
            "--wallet", str(tmp / "su.json"), "--data-dir", str(tmp),
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "the SU exited at start"
            time.sleep(0.05)
        raise AssertionError("the SU did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


async def _load(url: str, pid: str, counter: list[int], acked: list[str], stop: asyncio.Event) -> None:
    async def sender(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            counter[0] += 1
            item = DataItem.create(f"m{counter[0]}", signer=USER, tags=ao.message_tags(), target=pid)
            try:
                r = await client.post("/", content=item.to_bytes())
            except httpx.HTTPError:
                await asyncio.sleep(0.01)
                continue
            if r.status_code == 200:
                assert r.json()["id"] == item.id
                acked.append(item.id)

    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        await asyncio.gather(*(sender(client) for _ in range(SENDERS)))


async def _round(su: SU, pid: str, counter: list[int], acked: list[str], rng: random.Random) -> None:
    stop = asyncio.Event()
    load = asyncio.create_task(_load(su.url, pid, counter, acked, stop))
    await asyncio.sleep(rng.uniform(0.05, 0.5))
    su.kill()  # SIGKILL while requests are in flight
    stop.set()
    await load


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing(tmp_path):
    rng = random.Random(int(os.environ.get("PYAO_CRASH_SEED", "1")))
    gw_db = tmp_path / "gw.db"
    with serve_app(gateway_app(GatewayConfig(db=f"sqlite:///{gw_db}", block_seconds=0))) as gateway_url:
        su = SU(tmp_path, gateway_url)
        su.start()
        address = httpx.get(su.url + "/").json()["address"]
        process = DataItem.create(b"", signer=USER, tags=ao.process_tags("m" * 43, address))
        assert httpx.post(su.url + "/", content=process.to_bytes()).status_code == 200
        counter, acked = [0], []
        for _ in range(ROUNDS):
            asyncio.run(_round(su, process.id, counter, acked, rng))
            su.start()
        try:
            asyncio.run(_check(su.url, gateway_url, process.id, acked))
        finally:
            su.kill()


async def _check(url: str, gateway_url: str, pid: str, acked: list[str]) -> None:
    assert len(acked) > ROUNDS, "the load generator got too few answers to mean anything"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        nodes = await walk_schedule(client, pid, limit=500)
    verify_chain(pid, nodes)  # nonces 0..n without a gap, chain intact
    scheduled = Counter(n["message"]["id"] for n in nodes[1:])
    assert not [m for m, c in scheduled.items() if c > 1], "a message is scheduled twice"
    missing = set(acked) - set(scheduled)
    assert not missing, f"{len(missing)} acknowledged messages are missing"
    # the outbox survives the crashes: the last scheduled message reaches the gateway
    async with httpx.AsyncClient(base_url=gateway_url, timeout=5) as gw:
        last = nodes[-1]["message"]["id"]
        for _ in range(200):
            if (await gw.head(f"/{last}")).status_code == 200 and (await gw.head(f"/{acked[0]}")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the outbox did not drain to the gateway after the restarts")
