"""Determinism: CUs on SQLite and on PostgreSQL replay the same 10,000-message log, with cron, to
identical result streams and state digests; a CU restarted from a checkpoint agrees with both.

Everything is real: a gateway and an SU over HTTP, signed messages sent concurrently (so the SU
batches them), blocks mined while they arrive (block crons fire), and CUs served over HTTP with
their VM worker processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import threading

import httpx
import pytest

from pyao.data import DataItem, ao
from tests._cu import USER, network

pytestmark = pytest.mark.slow

MESSAGES = 10_000

MODULE = b"""
Count, Store, Sum = Count or 0, Store or {}, Sum or 0
Handlers.add("ping", "Ping", function(msg)
  Count = Count + 1
  Sum = (Sum + math.random(1, 1000) * Count) % 1000000007
end)
Handlers.add("put", "Put", function(msg)
  Store[msg.Tags.Key] = msg.Data .. ":" .. math.random(1, 99) .. ":" .. os.time()
  msg.reply({ Action = "Stored", Data = msg.Tags.Key })
end)
Handlers.add("dump", "Dump", function(msg)
  local keys = {}
  for k, v in pairs(Store) do keys[#keys + 1] = k .. "=" .. v end
  print(table.concat(keys, ";"))
  Send({ Target = msg.From, Action = "Summary", Data = Count .. "/" .. Sum })
end)
Handlers.add("boom", "Boom", function(msg)
  Count = Count + 1000
  error("boom at " .. Count)
end)
Handlers.add("cron", "Cron", function(msg)
  Ticks = (Ticks or 0) + 1
  print("tick " .. Ticks .. " " .. msg.Timestamp .. " " .. msg["Block-Height"])
end)
"""

CRONS = [("Cron-Interval", "1-seconds"), ("Cron-Tag-Action", "Cron"),
         ("Cron-Interval", "2-blocks"), ("Cron-Tag-Action", "Cron")]  # fmt: skip


def _tags(i: int) -> list[tuple[str, str]]:
    if i % 97 == 0:
        return [("Action", "Boom")]
    if i % 500 == 0:
        return [("Action", "Dump")]
    if i % 5 == 0:
        return [("Action", "Put"), ("Key", f"k{i % 50}")]
    return [("Action", "Ping")]


async def _send_all(su: str, pid: str) -> list[str]:
    """Sign and send ``MESSAGES`` messages, 32 in flight; the SU orders them as they come."""
    items = [
        DataItem.create(f"d{i}", signer=USER, tags=ao.message_tags(_tags(i)), target=pid, anchor=f"{i:032d}")
        for i in range(MESSAGES)
    ]
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60) as client:

        async def send(item: DataItem) -> None:
            async with gate:
                r = await client.post(su + "/", content=item.to_bytes())
                assert r.status_code == 200, r.text

        await asyncio.gather(*(send(item) for item in items))
    return [item.id for item in items]


def _mine_while(net, stop: threading.Event) -> None:
    while not stop.wait(0.4):
        net.mine()


def _results(cu: httpx.Client, pid: str) -> list[dict]:
    """Every result of the process, paged with cursors as a client would."""
    out, cursor = [], None
    while True:
        params = {"limit": 1000, "sort": "ASC", **({"from": cursor} if cursor else {})}
        page = cu.get(f"/results/{pid}", params=params).json()
        out += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        cursor = page["edges"][-1]["cursor"]


def _last_scheduled(net, pid: str) -> str:
    node = httpx.get(f"{net.su}/{pid}/latest", timeout=30).json()
    return node["message"]["id"]


def _state_digest(cu: httpx.Client, pid: str) -> str:
    r = cu.get(f"/state/{pid}")
    assert r.status_code == 200
    return hashlib.sha256(r.content).hexdigest()


def _evaluate(cu: httpx.Client, pid: str, message_id: str) -> dict:
    r = cu.get(f"/result/{message_id}", params={"process-id": pid}, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def test_sqlite_and_postgres_cus_and_a_restarted_cu_agree_on_10000_messages(tmp_path, postgres_dsn, caplog):
    with network(tmp_path) as net:
        pid = net.spawn(net.module(MODULE), CRONS)
        stop = threading.Event()
        miner = threading.Thread(target=_mine_while, args=(net, stop), daemon=True)
        miner.start()
        try:
            ids = asyncio.run(_send_all(net.su, pid))
        finally:
            stop.set()
            miner.join()
        last = _last_scheduled(net, pid)
        assert last in ids
        middle = ids[MESSAGES // 2]

        with net.cu(name="lite") as lite:
            final = _evaluate(lite, pid, last)
            lite_stream, lite_state = _results(lite, pid), _state_digest(lite, pid)
        with net.cu(postgres_dsn, name="pg") as pg:
            assert _evaluate(pg, pid, last) == final
            pg_stream, pg_state = _results(pg, pid), _state_digest(pg, pid)

        # a third CU stops half-way (a checkpoint on the way, one at shutdown) and is restarted
        with net.cu(name="restarted", checkpoint_every=1000) as first_life:
            _evaluate(first_life, pid, middle)
        checkpoints = list((tmp_path / "restarted" / "checkpoints" / pid).glob("*.ckpt"))
        assert checkpoints
        with caplog.at_level(logging.INFO, logger="pyao.cu"), net.cu(name="restarted", checkpoint_every=1000) as again:
            assert _evaluate(again, pid, last) == final
            re_stream, re_state = _results(again, pid), _state_digest(again, pid)
        assert any("restored from checkpoint" in r.getMessage() for r in caplog.records)

    assert len(lite_stream) > MESSAGES - MESSAGES // 97 - 2  # errors are stored but not listed
    crons = [edge for edge in lite_stream if _is_cron(edge["cursor"])]
    assert crons, "the 1-second and 2-block crons fired between messages"
    assert lite_stream == pg_stream == re_stream
    assert lite_state == pg_state == re_state


def _is_cron(cursor: str) -> bool:
    raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4))
    return b'"cron":"' in raw or b'"cron": "' in raw
