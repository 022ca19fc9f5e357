"""A VM worker plans, evaluates and (given the store's URL) stores a schedule page itself.

The engine's coordinating process must do no per-message work (its share bounds the
speed-up more workers give), so these check what crosses back from a worker.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import time

import pytest

from pyao.abc import EvalResult, Limits, ModuleSource, ProcessContext, result_is_error
from pyao.config import CUConfig
from pyao.cu._cron import Block
from pyao.cu._engine import Engine
from pyao.cu._plan import ProcessPlan, initial_position
from pyao.cu._pool import WorkerPool
from pyao.cu._store import open_result_store
from pyao.cu._workers import VMHost
from pyao.errors import UnitError
from pyao.vm import LUA_NATIVE_FORMAT
from tests._cu import MODULE_SOURCE
from tests.unit.test_cu_engine import MODULE, OWNER, PID, PROCESS_TAGS, FakeLocator, FakeSU, _msgs

PLAN = ProcessPlan(PID, OWNER, (), Block(5, 1_000_000))
ENV = {"Process": {"Id": PID, "Owner": OWNER, "Tags": []}, "Module": {"Id": MODULE, "Owner": OWNER, "Tags": []}}


def _host(store_url: str | None) -> VMHost:
    host = VMHost(CUConfig(devices=""), devices={}, store_url=store_url)
    module = ModuleSource(MODULE, OWNER, (("Module-Format", LUA_NATIVE_FORMAT),), MODULE_SOURCE)
    context = ProcessContext(PID, OWNER, tuple(PROCESS_TAGS))
    host.op_load(PID, LUA_NATIVE_FORMAT, module, context, Limits(10**9, 1 << 28), None, PLAN, ENV)
    return host


def _worker_engine(tmp_path, su: FakeSU, **config) -> tuple[Engine, object]:
    """An engine with VM worker processes over ``su``, and its SQLite result store."""
    store = open_result_store(f"sqlite://{tmp_path / 'cu.db'}")
    return Engine(FakeLocator(su, PROCESS_TAGS), store, CUConfig(checkpoint_every=0, **config)), store


async def _evaluate_then_close(engine: Engine) -> None:
    try:
        await engine.evaluate_to(PID)
    finally:
        await engine.close()


def _nodes(su: FakeSU) -> list[dict]:
    return [{"message": n["message"], "assignment": n["assignment"]} for n in su.nodes]


def test_a_worker_given_the_store_stores_the_page_and_answers_only_the_last(tmp_path):
    url = f"sqlite://{tmp_path / 'cu.db'}"
    host = _host(url)
    ran = host.op_run_page(PID, initial_position(PID), _nodes(FakeSU(PROCESS_TAGS, _msgs(5))), {}, [])
    host.close()
    assert ran.unstored is None and ran.broken is None
    assert ran.position.next_seq == 6 and ran.position.next_nonce == 6
    store = open_result_store(url)
    last = store.last(PID)
    assert last == ran.last and last.result["Messages"][0]["Data"] == "pong 5"
    assert [e.ordinate for e in store.page(PID, limit=100)] == [0, 1, 2, 3, 4, 5]


def test_a_page_with_more_to_come_is_stored_while_the_next_evaluates_and_settled_on_request(tmp_path):
    url = f"sqlite://{tmp_path / 'cu.db'}"
    host = _host(url)
    nodes = _nodes(FakeSU(PROCESS_TAGS, _msgs(5)))
    first = host.op_run_page(PID, initial_position(PID), nodes[:3], {}, [], True)
    assert first.recent is None  # stored later: nothing is said about it yet
    held = host.op_settle(PID)  # what the engine asks when no page follows after all
    assert [mid for mid, _ in held] == [n["message"]["id"] for n in nodes[:3]]
    assert open_result_store(url).last(PID).seq == 2
    second = host.op_run_page(PID, first.position, nodes[3:], {}, [], True)
    third = host.op_run_page(PID, second.position, nodes[5:], {}, [])  # nothing new: settles
    assert third.last is None and [mid for mid, _ in third.recent] == [n["message"]["id"] for n in nodes[3:]]
    host.close()
    assert open_result_store(url).last(PID).seq == 5


def test_without_a_store_the_worker_answers_every_evaluation():
    host = _host(None)
    ran = host.op_run_page(PID, initial_position(PID), _nodes(FakeSU(PROCESS_TAGS, _msgs(3))), {}, [])
    assert [e.seq for e in ran.unstored] == [0, 1, 2, 3] and ran.last is ran.unstored[-1]


def test_a_page_repeating_evaluated_nonces_skips_them_and_a_break_stops_the_page():
    su = FakeSU(PROCESS_TAGS, _msgs(4))
    nodes = _nodes(su)
    host = _host(None)
    first = host.op_run_page(PID, initial_position(PID), nodes[:3], {}, [])
    nodes[4]["assignment"]["tags"][3]["value"] = nodes[3]["assignment"]["tags"][3]["value"]  # a forged link
    again = host.op_run_page(PID, first.position, nodes[2:], {}, [])
    assert [e.ordinate for e in again.unstored] == [3]  # nonce 2 was evaluated already; 4 breaks the chain
    assert again.position.next_nonce == 4 and "hash chain breaks at nonce 4" in again.broken


def test_the_engine_with_worker_processes_stores_through_them(tmp_path):
    engine, store = _worker_engine(tmp_path, FakeSU(PROCESS_TAGS, _msgs(6)), page_size=4, workers=1)

    async def go():
        try:
            await engine.evaluate_to(PID)
            return engine._live[PID].storing  # nothing left for the engine's store thread
        finally:
            await engine.close()

    assert asyncio.run(go()) == []
    stored = store.page(PID, limit=9)[1:]
    assert [json.loads(e.result_json)["Messages"][0]["Data"] for e in stored] == [f"pong {i}" for i in range(1, 7)]
    # what the worker committed is held for the MU's next GET /result, byte for byte
    assert [store.recent_result(PID, e.message_id) for e in stored] == [e.result_json.encode() for e in stored]


def test_result_is_error_agrees_with_parsing():
    for result in (
        EvalResult(output="fine"),
        EvalResult(error="boom"),
        EvalResult(output={"Error": "a key inside Output, not an error"}),
        EvalResult(output='text with "Error": in it'),
        EvalResult(error={"GasUsed": 5}),
    ):
        text = result.encoded()
        assert result_is_error(text) == ("Error" in json.loads(text)) == (result.error is not None)


def test_the_locator_asks_the_gateway_for_a_process_once():
    from pyao.client.locate import ITEMS_QUERY
    from pyao.cu._locate import Locator

    asked = []

    class Gateway:
        async def graphql(self, query, variables=None):
            asked.append(query)
            if query == ITEMS_QUERY:
                node = {"id": PID, "tags": [{"name": "Scheduler", "value": "su-address"}]}
                return {"transactions": {"edges": [{"node": node}]}}
            tags = [{"name": "Url", "value": "http://su"}, {"name": "Time-To-Live", "value": "1000"}]
            return {"transactions": {"edges": [{"node": {"tags": tags}}]}}

    class SU:
        async def process(self, pid):
            return {"tags": [{"name": n, "value": v} for n, v in PROCESS_TAGS], "owner": {"address": OWNER},
                    "block": "5", "timestamp": "1000"}  # fmt: skip

    now = [0.0]
    locator = Locator(Gateway(), lambda url: SU(), clock=lambda: now[0])

    async def twice():
        first = await locator.process_meta(PID)
        now[0] = 2.0  # past the Scheduler-Location's time to live: only the location is asked again
        return first, await locator.process_meta(PID)

    first, second = asyncio.run(twice())
    assert first == second and first.su_url == "http://su"
    assert asked.count(ITEMS_QUERY) == 1 and len(asked) == 3


@pytest.mark.parametrize(
    "damage",
    [
        lambda node: node["assignment"]["tags"].__setitem__(2, {"name": "Nonce", "value": "two"}),
        lambda node: node["assignment"].pop("tags"),
        lambda node: node["message"].pop("owner"),
        lambda node: node["assignment"]["tags"].__setitem__(5, {"name": "Timestamp", "value": "soon"}),
    ],
    ids=["nonce-not-a-number", "no-assignment-tags", "message-without-owner", "timestamp-not-a-number"],
)
def test_a_schedule_entry_the_cu_cannot_read_stores_nothing_and_a_good_schedule_goes_on(tmp_path, damage):
    """The worker refuses a damaged SU entry with a UnitError before evaluating anything of its page:
    nothing of the page is stored, and once the SU answers well the process goes on from where it was."""
    su = FakeSU(PROCESS_TAGS, _msgs(4))
    good = copy.deepcopy(su.nodes[3])
    damage(su.nodes[3])
    engine, store = _worker_engine(tmp_path, su, page_size=2, workers=1)

    async def go():
        try:
            with pytest.raises(UnitError):
                await engine.evaluate_to(PID)
            before = store.last(PID).ordinate  # the first page (nonces 0, 1) went through
            su.nodes[3] = good
            await engine.evaluate_to(PID)
            return before, store.last(PID)
        finally:
            await engine.close()

    before, last = asyncio.run(go())
    assert before == 1
    assert last.ordinate == 4 and last.result["Messages"][0]["Data"] == "pong 4"
    assert [e.ordinate for e in store.page(PID, limit=10)] == [0, 1, 2, 3, 4]


OTHER = "o" * 43


def _load(host: VMHost, pid: str) -> None:
    module = ModuleSource(MODULE, OWNER, (("Module-Format", LUA_NATIVE_FORMAT),), MODULE_SOURCE)
    env = {**ENV, "Process": {"Id": pid, "Owner": OWNER, "Tags": []}}
    plan = ProcessPlan(pid, OWNER, (), Block(5, 1_000_000))
    host.op_load(pid, LUA_NATIVE_FORMAT, module, ProcessContext(pid, OWNER, tuple(PROCESS_TAGS)),
                 Limits(10**9, 1 << 28), None, plan, env)  # fmt: skip


def test_a_batch_runs_several_processes_pages_stores_them_together_and_isolates_failures(tmp_path):
    """Requests of several processes go to a worker in one batch: each good page is stored and
    answered with its results held for the MU; a request that fails (a process not loaded there, an
    entry the CU cannot read) fails alone."""
    url = f"sqlite://{tmp_path / 'cu.db'}"
    host = _host(url)
    _load(host, OTHER)
    mine, theirs = _nodes(FakeSU(PROCESS_TAGS, _msgs(2))), _nodes(FakeSU(PROCESS_TAGS, _msgs(3), pid=OTHER))
    damaged = copy.deepcopy(theirs)
    damaged[1]["assignment"].pop("tags")
    requests = [
        ("run_page", PID, (initial_position(PID), mine, {}, [])),
        ("run_page", "n" * 43, (initial_position("n" * 43), mine, {}, [])),  # not loaded here
        ("run_page", OTHER, (initial_position(OTHER), damaged, {}, [])),
    ]
    parts: list[list] = []
    host.run_batch(requests, parts.append)
    replies = [reply for part in parts for reply in part]  # in order, in one part or more
    assert [status for status, _ in replies] == ["ok", "error", "error"]
    assert [mid for mid, _ in replies[0][1].recent] == [n["message"]["id"] for n in mine]
    assert "not loaded" in str(replies[1][1]) and isinstance(replies[2][1], UnitError)
    parts.clear()
    host.run_batch([("run_page", OTHER, (initial_position(OTHER), theirs, {}, []))], parts.append)
    assert parts[0][0][0] == "ok" and parts[0][0][1].position.next_nonce == 4
    host.close()
    store = open_result_store(url)
    assert [e.ordinate for e in store.page(PID, limit=9)] == [0, 1, 2]
    assert [e.ordinate for e in store.page(OTHER, limit=9)] == [0, 1, 2, 3]


def test_an_answer_in_a_batch_never_waits_for_a_longer_evaluation_after_it(tmp_path):
    """The writer thread commits and answers the requests run so far while the next evaluate: a
    one-message page is answered, its results stored, before a long page after it has finished."""
    url = f"sqlite://{tmp_path / 'cu.db'}"
    host = _host(url)
    _load(host, OTHER)
    reader = open_result_store(url)
    seen = []

    def answer(part):  # what another connection reads when each part is answered
        seen.append(([status for status, _ in part], reader.last(PID), reader.last(OTHER)))

    long_page = _nodes(FakeSU(PROCESS_TAGS, _msgs(400), pid=OTHER))
    host.run_batch([
        ("run_page", PID, (initial_position(PID), _nodes(FakeSU(PROCESS_TAGS, _msgs(1))), {}, [])),
        ("run_page", OTHER, (initial_position(OTHER), long_page, {}, [])),
    ], answer)  # fmt: skip
    host.close()
    assert [statuses for statuses, _, _ in seen] == [["ok"], ["ok"]]
    (_, mine_first, theirs_first), (_, _, theirs_then) = seen
    assert mine_first.ordinate == 1 and theirs_first is None and theirs_then.ordinate == 400


def test_evaluations_of_processes_waiting_for_one_worker_go_to_it_together(tmp_path):
    """Many processes asked at once, one worker: their pages go in few batches (not one round trip
    each), and every process's results are stored and held for the MU. Evaluations started together
    on an idle worker (a burst of the MU's cranks, one new message each) go in one batch."""
    pids = [f"{i:02d}" + "p" * 41 for i in range(12)]
    sus = {pid: FakeSU(PROCESS_TAGS, _msgs(3), pid=pid) for pid in pids}

    class Routed:
        async def page(self, pid, **kw):
            return await sus[pid].page(pid, **kw)

    class Many(FakeLocator):
        def scheduler(self, url):
            return Routed()

        async def process_meta(self, pid):
            return dataclasses.replace(await super().process_meta(pid), id=pid, timestamp=sus[pid].nodes[0]["ts"])

    store = open_result_store(f"sqlite://{tmp_path / 'cu.db'}")
    config = CUConfig(page_size=10, workers=0, vm_threads=1, checkpoint_every=0, cron_lag_ms=0)
    engine = Engine(Many(sus[pids[0]], PROCESS_TAGS), store, config)
    worker = engine.workers.workers[0]
    sizes = []
    exchange = worker._exchange

    def counted(requests, deliver):
        sizes.append(len(requests))
        return exchange(requests, deliver)

    worker._front._exchange = counted

    async def go():
        try:
            await asyncio.gather(*(engine.evaluate_to(pid, nonce=2, timestamp=sus[pid].nodes[2]["ts"]) for pid in pids))
            first = list(sizes)
            sizes.clear()
            await asyncio.gather(*(engine.evaluate_to(pid) for pid in pids))  # one new message each
            return first
        finally:
            await engine.close()

    first = asyncio.run(go())
    loads = len(pids)  # one load each, alone: loads are not evaluations
    assert sum(first) == loads + len(pids) and len(first) < loads + len(pids) and max(first) > 1
    assert sizes == [len(pids)]
    for pid in pids:
        assert store.last(pid).result["Messages"][0]["Data"] == "pong 3"
        assert store.recent_result(pid, sus[pid].nodes[3]["message"]["id"]) is not None


def test_large_pages_cross_a_worker_pipe_under_uvloop(tmp_path):
    """``pyao up`` serves on uvloop: a batch or an answer larger than the socket's buffer crosses
    the worker pipe whole, in pieces the loop's channel assembles."""
    uvloop = pytest.importorskip("uvloop")
    engine, store = _worker_engine(tmp_path, FakeSU(PROCESS_TAGS, _msgs(1500)), page_size=1000, workers=1)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_evaluate_then_close(engine))
    assert store.last(PID).ordinate == 1500 and store.last(PID).result["Messages"][0]["Data"] == "pong 1500"


@pytest.mark.parametrize("piece", [1, 3, 7, 4096])
def test_the_worker_channel_reads_connection_frames_however_they_are_cut(piece):
    """The loop's end of a worker pipe reads ``multiprocessing.Connection`` framing: a 4-byte length,
    or -1 and an 8-byte one, then the pickle; frames split anywhere, or several in one read."""
    from multiprocessing.reduction import ForkingPickler

    from pyao.cu._pool import _Channel

    values = [("ok", "x" * n) for n in (0, 5, 70_000)] + [[("error", (UnitError, "boom"))]]
    wire = b""
    for i, value in enumerate(values):
        body = bytes(ForkingPickler.dumps(value))
        head = len(body).to_bytes(4, "big") if i % 2 == 0 else b"\xff\xff\xff\xff" + len(body).to_bytes(8, "big")
        wire += head + body

    async def go():
        channel = _Channel()
        for start in range(0, len(wire), piece):
            channel.data_received(wire[start : start + piece])
        got = [await channel.receive() for _ in values]
        channel.connection_lost(None)
        with pytest.raises(EOFError):
            await channel.receive()
        return got

    assert asyncio.run(go()) == values


def test_the_worker_channel_wakes_a_reader_when_the_worker_dies():
    from pyao.cu._pool import _Channel

    async def go():
        channel = _Channel()
        reader = asyncio.ensure_future(channel.receive())
        await asyncio.sleep(0)
        channel.connection_lost(ConnectionResetError("gone"))
        with pytest.raises(ConnectionResetError):
            await reader
        with pytest.raises(EOFError):
            channel.send(b"x")

    asyncio.run(go())


def test_worker_processes_run_as_batch_jobs_for_the_scheduler(tmp_path):
    """VM workers do not preempt the unit's event loop when it wakes them (SCHED_BATCH, Linux)."""
    if not hasattr(os, "SCHED_BATCH"):
        pytest.skip("no SCHED_BATCH on this platform")
    pool = WorkerPool(CUConfig(devices="", workers=2))
    try:
        deadline = time.monotonic() + 60  # a spawned worker sets it as it starts
        while any(os.sched_getscheduler(w.process.pid) != os.SCHED_BATCH for w in pool.workers):
            assert time.monotonic() < deadline, [os.sched_getscheduler(w.process.pid) for w in pool.workers]
            time.sleep(0.05)
        assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the unit itself is left alone
    finally:
        pool.close()


def test_closing_the_engine_inside_its_loop_lets_each_worker_exit_by_itself(tmp_path):
    """``close`` blocks the loop while it joins the workers, so the loop cannot close the channel's
    descriptor first: the pipe is shut, each worker reads EOF and exits 0 (not killed after a wait)."""
    engine, _ = _worker_engine(tmp_path, FakeSU(PROCESS_TAGS, _msgs(3)), workers=2)
    processes = [worker.process for worker in engine.workers.workers]
    asyncio.run(_evaluate_then_close(engine))  # the channel to its worker was open as it closed
    assert [p.exitcode for p in processes] == [0, 0]


def test_a_frame_length_that_is_not_connection_framing_ends_the_channel():
    """A negative length other than -1 cannot come from the worker's ``Connection``: the channel
    ends (as if the worker were lost, so the engine restarts it) instead of reading garbage."""
    from pyao.cu._pool import _Channel

    async def go():
        channel = _Channel()
        channel.data_received((-5).to_bytes(4, "big", signed=True) + b"junk")
        with pytest.raises(EOFError, match="bad frame length -5"):
            await channel.receive()

    asyncio.run(go())
