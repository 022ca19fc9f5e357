"""Checkpoints, restart without replay, the LRU of hot processes, and VM worker processes.

The engine runs on a real Lua VM and a real SQLite result store, fed by the in-memory
schedule of test_cu_engine (no HTTP). Worker-process tests start real OS processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time

import pytest

from pyao.config import CUConfig
from pyao.cu._checkpoints import MAGIC, Checkpoint, CheckpointStore, Position
from pyao.cu._engine import Engine
from pyao.cu._store import open_result_store
from pyao.errors import SnapshotError
from tests.unit.test_cu_engine import PID, PROCESS_TAGS, FakeLocator, FakeSU, _id, _msgs

RECEIVE_MODULE = b"""
Handlers.add("ask", "Ask", function(msg)
  local answer = Send({ Target = msg.From, Action = "Question" }).receive()
  print("got " .. answer.Data)
  Answered = answer.Data
end)
"""


def run(coro):
    return asyncio.run(coro)


def _config(tmp_path, **kw):
    values = {"page_size": 50, "cron_lag_ms": 0, "workers": 0, "checkpoint_every": 10, "data_dir": tmp_path}
    values.update(kw)
    return CUConfig(**values)


def _engine(su, tmp_path, store=None, tags=PROCESS_TAGS, **kw):
    store = store or open_result_store(f"sqlite:///{tmp_path / 'cu.db'}")
    return Engine(FakeLocator(su, tags), store, _config(tmp_path, **kw)), store


async def _state(engine, pid=PID):
    data, last = await engine.snapshot(pid)
    return hashlib.sha256(data).hexdigest(), last


def _stream(store, pid=PID):
    return [(r.seq, r.message_id, r.ordinate, r.cron, r.result) for r in store.page(pid, limit=10_000)]


class RoutingSU:
    """One schedule per process id, as one SU serves many processes."""

    def __init__(self, schedules):
        self.schedules = schedules
        self.froms = []
        self.nodes = next(iter(schedules.values())).nodes  # all start at the same time (process_meta)

    async def page(self, pid, **kw):
        self.froms.append((pid, kw.get("from_")))
        return await self.schedules[pid].page(pid, **kw)

    async def timestamp(self):
        return 2_000_000, 5

    async def close(self):
        pass


def _locator(schedules, source=None):
    class Locator(FakeLocator):
        async def module(self, module_id):
            meta = await super().module(module_id)
            if source is None:
                return meta
            return type(meta)(type(meta.source)(meta.source.id, meta.source.owner, meta.source.tags, source), meta.tags)

    return Locator(RoutingSU(schedules), PROCESS_TAGS)


class CountingSU(FakeSU):
    """Records the ``from`` of every page asked, to tell a replay from a resume."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.froms = []

    async def page(self, pid, *, from_=None, to=None, limit=None):
        self.froms.append(from_)
        return await super().page(pid, from_=from_, to=to, limit=limit)


# ------------------------------------------------------------------ the checkpoint files


def _checkpoint(seq=5, snapshot=b"state" * 100):
    pos = Position(seq + 1, seq, 123, "chain", 5, 1000, seq, 900, None)
    return Checkpoint(PID, "module", "lua53-pyao-native-1", pos, snapshot)


def test_checkpoint_files_round_trip_and_keep_the_newest(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for seq in (5, 9, 14):
        store.save(_checkpoint(seq, snapshot=bytes([seq]) * 1000))
    found = list(store.latest(PID))
    assert [c.position.next_seq for c in found] == [15, 10]
    assert found[0].snapshot == bytes([14]) * 1000 and found[0] == _checkpoint(14, bytes([14]) * 1000)
    assert len(list((tmp_path / PID).iterdir())) == 2  # no temporary files left


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-10],  # truncated
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # a flipped bit in the compressed snapshot
        lambda b: b"X" + b[1:],  # wrong magic
        lambda b: b.replace(b'"sha256":"', b'"sha256":"0', 1),  # a forged digest
    ],
)
def test_a_damaged_checkpoint_is_refused_and_the_older_one_used(tmp_path, damage):
    store = CheckpointStore(tmp_path, keep=3)
    store.save(_checkpoint(5))
    newest = store.save(_checkpoint(9))
    newest.write_bytes(damage(newest.read_bytes()))
    with pytest.raises(SnapshotError):
        CheckpointStore.read(newest, PID)
    assert [c.position.next_seq for c in store.latest(PID)] == [6]


def test_a_checkpoint_of_another_process_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.save(_checkpoint(5))
    assert path.read_bytes().startswith(MAGIC)
    with pytest.raises(SnapshotError, match="belongs to process"):
        CheckpointStore.read(path, _id(77))
    with pytest.raises(SnapshotError):
        store.save(Checkpoint("../escape", "m", "f", _checkpoint().position, b""))


# ------------------------------------------------------------------ restart without replay


def test_a_restarted_engine_resumes_from_its_checkpoint_and_agrees_with_a_full_replay(tmp_path):
    messages = _msgs(60)
    su = CountingSU(PROCESS_TAGS, messages)

    async def first_life():
        engine, store = _engine(su, tmp_path / "a", page_size=7)
        await engine.evaluate_to(PID, nonce=45, timestamp=su.nodes[45]["ts"])
        await engine.close()  # checkpoints on the way (every 10 evaluations, at page ends), one more at close
        return store

    run(first_life())
    assert len(list((tmp_path / "a" / "checkpoints" / PID).glob("*.ckpt"))) == 2
    su.froms.clear()

    async def second_life():
        engine, store = _engine(su, tmp_path / "a")
        await engine.evaluate_to(PID)
        state = await _state(engine)
        await engine.close()
        return state, store

    resumed_state, resumed_store = run(second_life())
    assert su.froms and su.froms[0] is not None  # paged from the checkpoint's cursor, not from nonce 0
    assert int(su.froms[0]) >= su.nodes[45]["ts"] - 1

    async def replay_everything():
        engine, store = _engine(su, tmp_path / "b", checkpoint_every=0)
        await engine.evaluate_to(PID)
        state = await _state(engine)
        await engine.close()
        return state, store

    full_state, full_store = run(replay_everything())
    assert resumed_state[0] == full_state[0]
    assert resumed_state[1] == full_state[1]
    assert _stream(resumed_store) == _stream(full_store)
    assert resumed_store.last(PID).result["Messages"][0]["Data"] == "pong 60"


def test_a_checkpoint_ahead_of_the_result_store_is_not_used(tmp_path):
    """A wiped result store must be refilled by a replay, not skipped by a checkpoint."""
    su = FakeSU(PROCESS_TAGS, _msgs(25))

    async def life(db):
        engine, store = _engine(su, tmp_path, store=open_result_store(f"sqlite:///{tmp_path / db}"))
        await engine.evaluate_to(PID)
        await engine.close()
        return store

    run(life("first.db"))
    fresh = run(life("second.db"))
    assert [r.ordinate for r in fresh.page(PID, limit=100)] == list(range(26))


def test_a_parked_receive_survives_a_checkpoint_and_a_restart(tmp_path):
    """``Receive`` parks a coroutine; after a restart from a checkpoint the reply still resumes it."""
    ask = (_id(500), [("Action", "Ask")], "", 1_000_010)
    reply = (_id(501), [("X-Reference", "1")], "forty-two", 1_000_020)
    config = _config(tmp_path, checkpoint_every=1)

    async def life(messages):
        locator = _locator({PID: FakeSU(PROCESS_TAGS, messages)}, RECEIVE_MODULE)
        engine = Engine(locator, open_result_store(f"sqlite:///{tmp_path}/r.db"), config)
        await engine.evaluate_to(PID)
        froms = list(locator.su.froms)
        await engine.close()
        return engine.store.last(PID), froms

    asked, _ = run(life([ask]))
    assert asked.message_id == _id(500) and not asked.is_error
    assert asked.result["Messages"][0]["Tags"]  # the question went out; the handler is parked
    answered, froms = run(life([ask, reply]))
    assert froms[0][1] is not None  # resumed from the checkpoint taken while the coroutine was parked
    assert answered.message_id == _id(501)
    assert "got forty-two" in json.dumps(answered.result["Output"])


# ------------------------------------------------------------------ LRU of hot processes


def test_least_recently_used_processes_leave_memory_and_come_back_from_checkpoints(tmp_path):
    first, second = PID, _id(9000)
    schedules = {pid: FakeSU(PROCESS_TAGS, _msgs(30), pid=pid) for pid in (first, second)}
    locator = _locator(schedules)

    async def go():
        store = open_result_store(f"sqlite:///{tmp_path / 'cu.db'}")
        engine = Engine(locator, store, _config(tmp_path, max_live=1))
        await engine.evaluate_to(first, nonce=20, timestamp=schedules[first].nodes[20]["ts"])
        assert engine.stats()["hot_processes"] == 1 and engine.stats()["hot_bytes"] > 0
        await engine.live(second)  # a second process pushes the first out, checkpointed
        assert list(engine._live) == [second]
        assert list((tmp_path / "checkpoints" / first).glob("*.ckpt"))
        locator.su.froms.clear()
        await engine.evaluate_to(first)  # back from its checkpoint, not from nonce 0
        assert locator.su.froms[0] == (first, str(schedules[first].nodes[20]["ts"] - 1))
        last = store.last(first)
        await engine.close()
        return last

    last = run(go())
    assert last.ordinate == 30 and last.result["Messages"][0]["Data"] == "pong 30"


def test_memory_budget_evicts_down_to_the_limit(tmp_path):
    pids = [_id(7000 + n) for n in range(4)]
    locator = _locator({pid: FakeSU(PROCESS_TAGS, _msgs(3), pid=pid) for pid in pids})

    async def go():
        engine = Engine(locator, open_result_store("sqlite://:memory:"), _config(tmp_path, live_memory=1))
        for pid in pids:
            await engine.live(pid)
            # the running total of hot footprints is the sum, through loads, evaluations and evictions
            assert engine.stats()["hot_bytes"] == sum(p.footprint for p in engine._live.values()) > 0
        hot = list(engine._live)
        await engine.close()
        return hot

    assert run(go()) == [pids[-1]]  # every process is over a 1-byte budget but the one just used


# ------------------------------------------------------------------ worker processes


SLOW_MODULE = b"""
Handlers.add("spin", "Spin", function(msg)
  local n = 0
  for i = 1, tonumber(msg.Tags.Loops) do n = n + i end
  print("spun " .. n)
end)
Handlers.add("ping", "Ping", function(msg) print("pong") end)
"""


def test_worker_processes_evaluate_independent_processes_in_parallel(tmp_path):
    """A long evaluation on one process does not hold up another: they run on two workers."""
    slow, fast = _id(8000), _id(8001)
    warm_slow = (_id(8102), [("Action", "Ping")], "", 1_000_005)
    warm_fast = (_id(8103), [("Action", "Ping")], "", 1_000_005)
    spin = (_id(8100), [("Action", "Spin"), ("Loops", "150000000")], "", 1_000_010)
    ping = (_id(8101), [("Action", "Ping")], "", 1_000_010)
    schedules = {
        slow: FakeSU(PROCESS_TAGS, [warm_slow, spin], pid=slow),
        fast: FakeSU(PROCESS_TAGS, [warm_fast, ping], pid=fast),
    }

    async def go():
        engine = Engine(_locator(schedules, SLOW_MODULE), open_result_store("sqlite://:memory:"),
                        _config(tmp_path, workers=2))  # fmt: skip
        assert len(engine.workers.workers) == 2
        # both loaded (one per worker) and the workers warm, before anything is timed
        await asyncio.gather(*(engine.evaluate_to(pid, nonce=1, timestamp=1_000_005) for pid in (slow, fast)))
        started = time.monotonic()
        slow_task = asyncio.create_task(engine.evaluate_to(slow))
        await asyncio.sleep(0.05)
        await engine.evaluate_to(fast)
        fast_done = time.monotonic() - started
        await slow_task
        slow_done = time.monotonic() - started
        rows = (engine.store.last(slow), engine.store.last(fast))
        pids = {w.process.pid for w in engine.workers.workers}
        await engine.close()
        return fast_done, slow_done, rows, pids

    fast_done, slow_done, (slow_row, fast_row), pids = run(go())
    assert len(pids) == 2 and os.getpid() not in pids
    assert slow_row.ordinate == 2 and "spun" in json.dumps(slow_row.result["Output"])
    assert fast_row.ordinate == 2 and "pong" in json.dumps(fast_row.result["Output"])
    assert fast_done < slow_done / 3, (fast_done, slow_done)


def test_a_killed_worker_is_replaced_and_its_processes_reload(tmp_path):
    su = FakeSU(PROCESS_TAGS, _msgs(12))

    async def go():
        engine, store = _engine(su, tmp_path, workers=1, checkpoint_every=5)
        await engine.evaluate_to(PID, nonce=6, timestamp=su.nodes[6]["ts"])
        worker = engine.workers.workers[0]
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join(5)
        await engine.evaluate_to(PID)  # the lost worker is noticed, replaced, the process reloaded
        assert worker.process.is_alive() and worker.generation == 1
        data = await _state(engine)
        await engine.close()
        return store.last(PID), data

    last, _ = run(go())
    assert last.ordinate == 12 and last.result["Messages"][0]["Data"] == "pong 12"
