"""The CU engine with a real Lua VM, fed by an in-memory schedule (no HTTP)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest

from pyao.abc import ModuleSource
from pyao.config import CUConfig
from pyao.cu._cron import Block
from pyao.cu._engine import Engine, next_hash_chain, seed_hash_chain
from pyao.cu._locate import Locator, ModuleMeta, ProcessMeta
from pyao.cu._server import Cursor, dry_run_message, encode_cursor, parse_cursor
from pyao.cu._store import open_result_store
from pyao.errors import RequestError, ScheduleError, UnknownModuleFormat
from pyao.vm import LUA_NATIVE_FORMAT
from tests._cu import MODULE_SOURCE


def _id(n: int) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(str(n).encode()).digest()).rstrip(b"=").decode()


PID, MODULE, OWNER = _id(0), _id(1), _id(2)
OWNER_JSON = {"address": OWNER, "key": base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()}


def _chain(prev_assignment: str, prev_chain: str) -> str:
    """Written from spec §7, independently of the engine."""

    def dec(s):
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    return (
        base64.urlsafe_b64encode(hashlib.sha256(dec(prev_assignment) + dec(prev_chain)).digest()).rstrip(b"=").decode()
    )


class FakeSU:
    """Schedule pages as an SU answers them (timestamp cursors, from exclusive, to inclusive)."""

    def __init__(self, process_tags, messages, *, t0=1_000_000, pid=PID):
        self.nodes = []
        chain = base64.urlsafe_b64encode(hashlib.sha256(base64.urlsafe_b64decode(pid + "=")).digest())
        chain = chain.rstrip(b"=").decode()
        entries = [(pid, process_tags, "", t0), *messages]
        for nonce, (mid, tags, data, ts) in enumerate(entries):
            a_id = _id(1000 + nonce)
            a_tags = [("Process", pid), ("Epoch", "0"), ("Nonce", str(nonce)), ("Hash-Chain", chain),
                      ("Block-Height", "000000000005"), ("Timestamp", str(ts))]  # fmt: skip
            if nonce:
                a_tags.append(("Message", mid))
            message = {"id": mid, "owner": OWNER_JSON, "data": data, "signature": "c2ln", "anchor": None,
                       "tags": [{"name": n, "value": v} for n, v in tags], "target": pid}  # fmt: skip
            assignment = {"id": a_id, "owner": OWNER_JSON, "tags": [{"name": n, "value": v} for n, v in a_tags]}
            self.nodes.append({"message": message, "assignment": assignment, "ts": ts})
            chain = _chain(a_id, chain)
        self.pages = 0

    async def page(self, pid, *, from_=None, to=None, limit=None):
        self.pages += 1
        rows = [n for n in self.nodes if (from_ is None or n["ts"] > int(from_)) and (to is None or n["ts"] <= int(to))]
        edges = [{"node": {"message": n["message"], "assignment": n["assignment"]}, "cursor": str(n["ts"])}
                 for n in rows[:limit]]  # fmt: skip
        return {"page_info": {"has_next_page": len(rows) > limit}, "edges": edges}

    async def timestamp(self):
        return self.nodes[-1]["ts"] + 3500, 5

    async def close(self):
        pass


class FakeLocator(Locator):
    def __init__(self, su, process_tags, module_format=LUA_NATIVE_FORMAT, blocks=()):
        self.su, self.process_tags, self.format, self._blocks = su, process_tags, module_format, list(blocks)

    def scheduler(self, url):
        return self.su

    async def process_meta(self, pid):
        tags = [{"name": n, "value": v} for n, v in self.process_tags]
        return ProcessMeta(pid, OWNER, tags, "http://su", 5, self.su.nodes[0]["ts"], MODULE)

    async def module(self, module_id):
        tags = [{"name": "Module-Format", "value": self.format}]
        return ModuleMeta(ModuleSource(module_id, OWNER, (("Module-Format", self.format),), MODULE_SOURCE), tags)

    async def blocks(self, min_height, max_timestamp_ms):
        return [b for b in self._blocks if b.height >= min_height]

    async def close(self):
        pass


PROCESS_TAGS = [("Data-Protocol", "ao"), ("Type", "Process"), ("Module", MODULE), ("Scheduler", OWNER)]


def _engine(su, tags=PROCESS_TAGS, **kw):
    store = open_result_store("sqlite://:memory:")
    config = CUConfig(page_size=3, cron_lag_ms=0, workers=0, checkpoint_every=0)
    return Engine(FakeLocator(su, tags, **kw), store, config), store


def _msgs(n, t0=1_000_000, step=10, action="Ping"):
    return [(_id(100 + i), [("Action", action)], "", t0 + step * (i + 1)) for i in range(n)]


def run(coro):
    return asyncio.run(coro)


def test_hash_chain_functions_match_the_spec():
    assert seed_hash_chain(PID) == FakeSU(PROCESS_TAGS, []).nodes[0]["assignment"]["tags"][3]["value"]
    assert next_hash_chain(_id(5), _id(6)) == _chain(_id(5), _id(6))


def test_replays_pages_in_order_and_stores_every_result():
    su = FakeSU(PROCESS_TAGS, _msgs(7))
    engine, store = _engine(su)

    async def go():
        await engine.evaluate_to(PID, nonce=4, timestamp=su.nodes[4]["ts"])
        assert store.last(PID).ordinate == 4
        await engine.evaluate_to(PID)
        await engine.close()

    run(go())
    rows = store.page(PID, limit=100)
    assert [r.ordinate for r in rows] == list(range(8))
    assert [r.message_id for r in rows] == [PID] + [m[0] for m in _msgs(7)]
    pongs = [r.result["Messages"][0]["Data"] for r in rows[1:]]
    assert pongs == [f"pong {i}" for i in range(1, 8)]
    assert su.pages >= 3  # page size 3


def test_an_error_is_stored_and_leaves_the_state_unchanged():
    msgs = [*_msgs(1), (_id(200), [("Action", "Boom")], "", 1000050), (_id(201), [("Action", "Ping")], "", 1000060)]
    su = FakeSU(PROCESS_TAGS, msgs)
    engine, store = _engine(su)
    run(engine.evaluate_to(PID))
    boom = store.by_message(PID, _id(200))
    assert boom.is_error and "boom 101" in boom.result["Error"]
    assert boom.result["Messages"] == [] and boom.result["Output"] == ""
    assert store.by_message(PID, _id(201)).result["Messages"][0]["Data"] == "pong 2"  # Count + 100 was undone
    assert [r.ordinate for r in store.page(PID, limit=10)] == [0, 1, 3]


def test_a_broken_hash_chain_stops_evaluation_before_the_break():
    su = FakeSU(PROCESS_TAGS, _msgs(5))
    su.nodes[3]["assignment"]["tags"][3]["value"] = _id(999)
    engine, store = _engine(su)
    with pytest.raises(ScheduleError, match="hash chain breaks at nonce 3"):
        run(engine.evaluate_to(PID))
    assert store.last(PID).ordinate == 2


def test_unknown_module_format_lists_the_known_ones():
    engine, _ = _engine(FakeSU(PROCESS_TAGS, []), module_format="wasm99")
    with pytest.raises(UnknownModuleFormat, match=LUA_NATIVE_FORMAT):
        run(engine.evaluate_to(PID))


def test_cron_ticks_between_messages_and_after_the_last():
    tags = [*PROCESS_TAGS, ("Cron-Interval", "1-second"), ("Cron-Tag-Action", "Cron")]
    t0 = 1_000_000
    msgs = [(_id(300), [("Action", "Ping")], "", t0 + 2500), (_id(301), [("Action", "Ping")], "", t0 + 2600)]
    su = FakeSU(tags, msgs, t0=t0)
    blocks = [Block(6, (t0 // 1000 + 1) * 1000), Block(7, (t0 // 1000 + 5) * 1000)]
    engine, store = _engine(su, tags, blocks=blocks)

    async def go():
        await engine.evaluate_to(PID)
        first = store.page(PID, limit=100)
        await engine.live(PID, trailing_crons=True)
        await engine.live(PID, trailing_crons=True)  # nothing twice
        return first

    first = run(go())
    kinds = [(r.cron, r.ordinate, r.timestamp, r.block_height) for r in first]
    assert kinds == [
        (None, 0, t0, 5),
        ("0-1-second", 0, t0 + 1000, 6),  # block 6 passed at t0 + 1 s
        ("0-1-second", 0, t0 + 2000, 6),
        (None, 1, t0 + 2500, 5),
        ("0-1-second", 1, t0 + 2500, 5),  # as the official CU: ticks start at the left message's timestamp
        (None, 2, t0 + 2600, 5),
    ]
    assert first[1].result["Output"]["data"].startswith(f"tick 1 at {t0 + 1000} cron=true")
    crons = store.page(PID, limit=100, only_cron=True)
    # trailing ticks: from the last message (t0+2.6 s) up to the SU clock (t0+6.1 s)
    assert [r.timestamp for r in crons[3:]] == [t0 + 2600, t0 + 3600, t0 + 4600, t0 + 5600]
    assert [r.block_height for r in crons[3:]] == [5, 5, 5, 7]


def test_dry_run_runs_on_a_fork():
    su = FakeSU(PROCESS_TAGS, _msgs(2))
    engine, store = _engine(su)

    async def go():
        msg = dry_run_message({"Tags": [{"name": "Action", "value": "Ping"}], "Owner": OWNER})
        first = await engine.dry_run(PID, msg)
        again = await engine.dry_run(PID, msg)
        state_before, _ = await engine.snapshot(PID)
        eval_msg = dry_run_message(
            {"Tags": [{"name": "Action", "value": "Eval"}], "Data": "Count = 50", "Owner": OWNER}
        )
        await engine.dry_run(PID, eval_msg)
        state_after, last = await engine.snapshot(PID)
        return first, again, state_before, state_after, last

    first, again, before, after, last = run(go())
    assert first.messages[0]["Data"] == again.messages[0]["Data"] == "pong 3"
    assert before == after and last.ordinate == 2
    assert len(store.page(PID, limit=100)) == 3


def test_dry_run_message_defaults_and_checks():
    msg = dry_run_message({"Tags": [{"name": "From-Process", "value": "fp"}, {"name": "Owner", "value": "x"}]})
    assert (msg["Id"], msg["Owner"], msg["Data"], msg["Anchor"], msg["From"]) == ("1234", "1234", "1234", "0", "fp")
    assert dry_run_message({"Owner": "me", "Data": {"a": 1}, "Timestamp": "5"})["Data"] == '{"a":1}'
    assert dry_run_message({"Owner": "me"})["From"] == "me"
    for bad in ([], {"Tags": "x"}, {"Tags": [{"name": 1, "value": "v"}]}, {"Id": 5}, {"Timestamp": "soon"}):
        with pytest.raises(RequestError):
            dry_run_message(bad)


def test_cursors_round_trip_as_the_official_cu_writes_them():
    from pyao.abc import Evaluation

    row = Evaluation.of(PID, 3, None, 7, "0-1-second", 1700, 5, {})
    text = encode_cursor(row, "DESC")
    assert json.loads(base64.b64decode(text)) == {"timestamp": 1700, "ordinate": "7", "cron": "0-1-second",
                                                  "sort": "DESC"}  # fmt: skip
    assert parse_cursor(text, "from") == Cursor(1700, 7, "0-1-second", "DESC")
    assert parse_cursor("1700000000000", "from") == Cursor(1700000000000)
    assert parse_cursor(None, "from") is None
    for bad in ("abc", "-5", base64.b64encode(b'{"ordinate": 1}').decode()):
        with pytest.raises(RequestError):
            parse_cursor(bad, "from")


def test_a_call_that_waited_for_the_one_before_it_skips_the_su_when_its_message_is_done():
    """The MU's crank and the client both ask for one new result: the first evaluates what the SU
    has; the second, asked once the process is its own, finds its message evaluated and does not
    page the SU again. Without ``unless`` (or when it says no) the SU is asked as before."""
    su = FakeSU(PROCESS_TAGS, _msgs(2))
    engine, store = _engine(su)
    target = _msgs(2)[-1][0]

    def done() -> bool:
        return store.by_message(PID, target) is not None

    async def go():
        await engine.evaluate_to(PID, nonce=0, timestamp=su.nodes[0]["ts"])
        before = su.pages
        await asyncio.gather(engine.evaluate_to(PID, unless=done), engine.evaluate_to(PID, unless=done))
        assert done() and su.pages == before + 1
        await engine.evaluate_to(PID, unless=lambda: False)
        assert su.pages == before + 2
        await engine.close()

    run(go())
