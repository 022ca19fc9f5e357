"""The SU over its HTTP API (in-process ASGI transport), on SQLite and PostgreSQL.

The gateway is an ``httpx.MockTransport`` stand-in here, so failures can be
staged; tests/integration/test_su_integration.py runs against the real gateway
over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyao.client import GatewayClient
from pyao.config import SchedulerConfig
from pyao.data import Bundle, DataItem, Ed25519Signer, ao, b64url_encode
from pyao.errors import StoreError
from pyao.su import SchedulerUnit, open_store
from tests._su import check_node, tag, verify_chain, walk_schedule

USER = Ed25519Signer.from_seed(bytes([7]) * 32)
SU_KEY = Ed25519Signer.from_seed(bytes([9]) * 32)
EXISTING_TX = b64url_encode(bytes([5]) * 32)


def i_bundle(item: DataItem) -> bool:
    return item.tag("Bundle-Format") == "binary"


class FakeGateway:
    def __init__(self) -> None:
        self.uploads: list[bytes] = []
        self.height = 1234
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": "down"})
        path = request.url.path
        if path == "/info":
            return httpx.Response(200, json={"height": self.height})
        if path == "/tx/arweave":
            self.uploads.append(request.content)
            return httpx.Response(200, json={"id": "x"})
        if request.method == "HEAD" and path == f"/{EXISTING_TX}":
            return httpx.Response(200)
        return httpx.Response(404, json={"error": "not found"})

    def uploaded_ids(self) -> set[str]:
        ids: set[str] = set()

        def walk(item: DataItem) -> None:
            ids.add(item.id)
            if item.tag("Bundle-Format") == "binary":  # slot bundles, maybe inside one outer bundle
                for inner in Bundle.from_item(item, verify=True).items:
                    walk(inner)

        for raw in self.uploads:
            walk(DataItem.from_bytes(raw))
        return ids


@contextlib.asynccontextmanager
async def running_su(db: str, tmp_path, **config):
    gateway = FakeGateway()
    cfg = SchedulerConfig(data_dir=tmp_path, wallet=tmp_path / "w.json", **config)
    client = GatewayClient("http://gateway", transport=httpx.MockTransport(gateway))
    unit = SchedulerUnit(cfg, store=open_store(db), gateway=client, signer=SU_KEY)
    async with unit, httpx.AsyncClient(transport=httpx.ASGITransport(unit.app), base_url="http://su") as http:
        yield unit, http, gateway


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/su.db"
    return request.getfixturevalue("postgres_dsn")


def spawn(signer=USER, **tags):
    return DataItem.create(b"process data", signer=signer, tags=ao.process_tags("m" * 43, SU_KEY.address, tags))


def message(pid, n, signer=USER, extra=()):
    return DataItem.create(f"msg {n}", signer=signer, tags=ao.message_tags([("N", str(n)), *extra]), target=pid)


async def post(http, item: DataItem, **params):
    return await http.post("/", content=item.to_bytes(), params=params)


def test_schedule_round_trip(db, tmp_path):
    async def scenario():
        async with running_su(db, tmp_path) as (unit, http, gateway):
            process = spawn()
            r = await post(http, process)
            assert r.status_code == 200 and r.json()["id"] == process.id
            assert list(r.json()) == ["timestamp", "id"] and isinstance(r.json()["timestamp"], int)
            messages = [message(process.id, n) for n in range(40)]
            answers = await asyncio.gather(*(post(http, m) for m in messages))
            assert all(a.status_code == 200 for a in answers)
            r = await http.post("/", params={"process-id": process.id, "assign": EXISTING_TX, "exclude": "Data"})
            assert r.status_code == 200, r.text
            assignment_id = r.json()["id"]

            nodes = await walk_schedule(http, process.id, limit=4)
            verify_chain(process.id, nodes)
            check_node(nodes[0], first=True)
            for node in nodes[1:]:
                check_node(node)
            assert nodes[0]["message"]["id"] == process.id and nodes[0]["message"]["data"] == "process data"
            scheduled = [n["message"]["id"] for n in nodes[1:-1]]
            assert sorted(scheduled) == sorted(m.id for m in messages)
            last = nodes[-1]
            assert last["message"] is None and last["assignment"]["id"] == assignment_id
            assert tag(last["assignment"]["tags"], "Message") == EXISTING_TX
            assert tag(last["assignment"]["tags"], "Exclude") == "Data"

            one = (await http.get(f"/{messages[3].id}", params={"process-id": process.id})).json()
            check_node(one)
            assert one["message"]["data"] == "msg 3" and one["message"]["target"] == process.id
            by_assignment = await http.get(f"/{assignment_id}", params={"process-id": process.id})
            assert by_assignment.json()["assignment"]["id"] == assignment_id
            latest = (await http.get(f"/{process.id}/latest")).json()
            assert latest["assignment"]["id"] == assignment_id
            proc = (await http.get(f"/processes/{process.id}")).json()
            assert list(proc) == [
                "process_id", "block", "owner", "tags", "timestamp", "data", "anchor", "signature", "target",
            ]  # fmt: skip
            assert proc["process_id"] == process.id and proc["block"] == "000000001234"
            assert proc["timestamp"] == int(tag(nodes[0]["assignment"]["tags"], "Timestamp"))
            info = (await http.get("/")).json()
            assert list(info) == ["timestamp", "address"] and info["address"] == SU_KEY.address
            stamp = (await http.get("/timestamp")).json()
            assert stamp["block_height"] == "000000001234" and stamp["timestamp"].isdigit()
            assert (await http.get("/health")).status_code == 200

            by_nonce = (await http.get(f"/{process.id}", params={"process-id": process.id, "from-nonce": 9})).json()
            assert by_nonce["edges"][0]["cursor"] == "10"

            for _ in range(100):  # the outbox drains to the gateway
                if unit.store.counts()[1] == 0:
                    break
                await asyncio.sleep(0.05)
            wanted = {process.id, assignment_id, *(m.id for m in messages), *(n["assignment"]["id"] for n in nodes)}
            assert wanted <= gateway.uploaded_ids()
            locations = [DataItem.from_bytes(raw) for raw in gateway.uploads]
            locations += [i for item in locations if i_bundle(item) for i in Bundle.from_item(item).items]
            location = next(i for i in locations if i.tag("Type") == "Scheduler-Location")
            assert location.owner == SU_KEY.owner and location.tag("Url") == "http://127.0.0.1:9000"

    asyncio.run(scenario())


def test_duplicates_are_refused(db, tmp_path):
    async def scenario():
        async with running_su(db, tmp_path) as (unit, http, _):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            again = await post(http, process)
            assert again.status_code == 400 and "error" in again.json()
            m = message(process.id, 1)
            assert (await post(http, m)).status_code == 200
            assert (await post(http, m)).status_code == 400
            pid = process.id
            pushed = message(pid, 2, extra=[("From-Process", pid), ("Pushed-For", "a" * 43)])
            retry = message(pid, 2, signer=SU_KEY, extra=[("Pushed-For", "b" * 43), ("From-Process", pid)])
            assert (await post(http, pushed)).status_code == 200
            r = await post(http, retry)
            assert r.status_code == 400 and "Deep hash" in r.json()["error"]
            # the same message twice in one batch: exactly one wins
            twin = message(pid, 3)
            results = await asyncio.gather(post(http, twin), post(http, twin))
            assert sorted(r.status_code for r in results) == [200, 400]
            assert unit.store.counts()[0] == 4
            verify_chain(pid, await walk_schedule(http, pid))

    asyncio.run(scenario())


def test_bad_input_gets_4xx_and_changes_nothing(db, tmp_path):
    async def scenario():
        async with running_su(db, tmp_path, max_item_bytes=4096) as (unit, http, _):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            pid = process.id
            good = message(pid, 1).to_bytes()
            tampered = bytearray(good)
            tampered[-1] ^= 1
            unknown = b64url_encode(bytes([3]) * 32)
            bad_posts = {
                "empty": (b"", {}),
                "garbage": (b"\x01\x00garbage", {}),
                "truncated": (good[:100], {}),
                "bad signature": (bytes(tampered), {}),
                "wrong tags": (DataItem.create(b"x", signer=USER, tags=[("A", "b")], target=pid).to_bytes(), {}),
                "no Module": (
                    DataItem.create(b"", signer=USER, tags=[("Data-Protocol", "ao"), ("Type", "Process")]).to_bytes(),
                    {},
                ),
                "unknown process": (message(unknown, 1).to_bytes(), {}),
                "oversized": (
                    DataItem.create(b"x" * 5000, signer=USER, tags=ao.message_tags(), target=pid).to_bytes(),
                    {},
                ),
                "assign alone": (b"", {"assign": EXISTING_TX}),
                "process-id alone": (b"", {"process-id": pid}),
                "bad assign id": (b"", {"process-id": pid, "assign": "short"}),
                "unknown tx": (b"", {"process-id": pid, "assign": unknown}),
                "assign to unknown": (b"", {"process-id": unknown, "assign": EXISTING_TX}),
                "bad exclude": (b"", {"process-id": pid, "assign": EXISTING_TX, "exclude": "a,,b"}),
            }
            expected = {"unknown process": 404, "assign to unknown": 404, "oversized": 413}
            for name, (body, params) in bad_posts.items():
                r = await http.post("/", content=body, params=params)
                assert r.status_code == expected.get(name, 400), (name, r.status_code, r.text)
                assert isinstance(r.json()["error"], str), name
            bad_gets = {
                f"/{pid}": 400,  # process-id is required
                f"/{pid}?process-id=xyz": 400,
                f"/{pid}?process-id={pid}&from=abc": 400,
                f"/{pid}?process-id={pid}&limit=0": 400,
                f"/{unknown}?process-id={pid}": 404,
                f"/{unknown}?process-id={unknown}": 404,
                f"/processes/{unknown}": 404,
                "/processes/nope": 400,
                f"/{unknown}/latest": 404,
            }
            for path, status in bad_gets.items():
                r = await http.get(path)
                assert r.status_code == status and "error" in r.json(), (path, r.status_code, r.text)
            assert unit.store.counts()[0] == 1
            assert (await post(http, message(pid, 2))).status_code == 200
            verify_chain(pid, await walk_schedule(http, pid))

    asyncio.run(scenario())


def test_failed_commit_answers_503_and_leaves_no_gap(tmp_path):
    async def scenario():
        async with running_su(f"sqlite:///{tmp_path}/su.db", tmp_path) as (unit, http, _):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            real = unit.store.write_batch
            calls = []

            def failing(entries, uploads, height=None):
                calls.append(len(entries))
                if len(calls) == 1:
                    raise StoreError("disk full")
                return real(entries, uploads, height)

            unit.store.write_batch = failing
            first = await asyncio.gather(*(post(http, message(process.id, n)) for n in range(5)))
            assert {r.status_code for r in first} == {503}
            second = await asyncio.gather(*(post(http, message(process.id, n)) for n in range(5)))
            assert {r.status_code for r in second} == {200}  # the same items now go through
            nodes = await walk_schedule(http, process.id)
            verify_chain(process.id, nodes)
            assert len(nodes) == 6

    asyncio.run(scenario())


def test_failed_commit_under_a_slotted_batch_leaves_no_gap(db, tmp_path):
    """A batch is slotted on top of the one committing; when that commit fails, the next batch is
    slotted again from what is stored, so it commits without a gap and only the failed batch fails."""

    async def scenario():
        async with running_su(db, tmp_path) as (unit, http, _):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            real = unit.store.write_batch
            calls = []

            def slow_then_failing(entries, uploads, height=None):
                calls.append(len(entries))
                if len(calls) == 1:
                    time.sleep(0.3)  # the next batch is slotted meanwhile, on top of this one
                    raise StoreError("disk full")
                return real(entries, uploads, height)

            unit.store.write_batch = slow_then_failing
            first = [asyncio.create_task(post(http, message(process.id, n))) for n in range(3)]
            await asyncio.sleep(0.1)
            dup = message(process.id, 0)  # a duplicate of a message in the failing batch: not refused
            second = [asyncio.create_task(post(http, message(process.id, n))) for n in range(3, 6)]
            second.append(asyncio.create_task(post(http, dup)))
            assert {r.status_code for r in await asyncio.gather(*first)} == {503}
            assert {r.status_code for r in await asyncio.gather(*second)} == {200}
            assert len(calls) >= 2 and calls[0] == 3
            nodes = await walk_schedule(http, process.id)
            verify_chain(process.id, nodes)
            assert sorted(n["message"]["id"] for n in nodes[1:]) == sorted(
                message(process.id, n).id for n in (3, 4, 5, 0)
            )

    asyncio.run(scenario())


def test_lean_post_answers_as_the_routed_post(tmp_path):
    """``POST /`` runs on a bare ASGI handler; with a query it goes through Starlette's route.
    Both give the same answers for the same bodies."""

    async def scenario():
        async with running_su(f"sqlite:///{tmp_path}/su.db", tmp_path, max_item_bytes=4096) as (_, http, __):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            good = message(process.id, 1).to_bytes()
            bodies = [b"", b"\x01\x00garbage", good[:100], good[:-1] + bytes([good[-1] ^ 1]), b"x" * 5000]
            bodies.append(DataItem.create(b"x", signer=USER, tags=[("A", "b")], target=process.id).to_bytes())
            bodies.append(message(b64url_encode(bytes([3]) * 32), 1).to_bytes())
            for n, body in enumerate(bodies):
                lean = await http.post("/", content=body)
                routed = await http.post("/", content=body, params={"n": str(n)})
                assert lean.status_code == routed.status_code and lean.status_code >= 400, n
                assert lean.json() == routed.json() and lean.headers["content-type"] == "application/json", n
            ok = await http.post("/", content=good)
            dup = await http.post("/", content=good, params={"n": "x"})
            assert ok.status_code == 200 and ok.content == b'{"timestamp":%d,"id":"%s"}' % (
                ok.json()["timestamp"],
                message(process.id, 1).id.encode(),
            )
            assert dup.status_code == 400 and "already exists" in dup.json()["error"]

    asyncio.run(scenario())


def test_a_short_page_read_on_the_event_loop_answers_the_same_bytes_as_the_reader(tmp_path, monkeypatch):
    """A CU's page of a few new slots is read on the event loop (``quick_page``); every page, short
    or not, empty or not, answers exactly what the reader thread's query answers."""

    async def scenario():
        async with running_su(f"sqlite:///{tmp_path}/su.db", tmp_path) as (unit, http, _):
            process = spawn()
            assert (await post(http, process)).status_code == 200
            for n in range(1, 21):
                assert (await post(http, message(process.id, n))).status_code == 200
            nodes = (await http.get(f"/{process.id}", params={"process-id": process.id})).json()["edges"]
            stamps = sorted({int(e["cursor"]) for e in nodes})
            queries = [
                {},
                {"from": str(stamps[-1] - 1)},
                {"from": str(stamps[len(stamps) // 2])},
                {"from": str(stamps[-1])},
                {"from": str(stamps[0]), "limit": "3"},
                {"to": str(stamps[0])},
            ]
            read = []
            for quick in (True, False):
                if not quick:
                    monkeypatch.setattr(unit.store, "quick_page", lambda *a: None)
                for q in queries:
                    r = await http.get(f"/{process.id}", params={"process-id": process.id, **q})
                    read.append((r.status_code, r.content))
            assert read[: len(queries)] == read[len(queries) :]
            assert all(status == 200 for status, _ in read)

    asyncio.run(scenario())


def test_gateway_down_then_up(tmp_path):
    async def scenario():
        async with running_su(f"sqlite:///{tmp_path}/su.db", tmp_path) as (unit, http, gateway):
            gateway.down = True
            process = spawn()
            assert (await post(http, process)).status_code == 200  # scheduling never waits for the gateway
            await asyncio.sleep(0.3)
            assert unit.store.counts()[1] >= 1
            gateway.down = False
            unit.uploader.notify()
            for _ in range(100):
                if unit.store.counts()[1] == 0:
                    break
                await asyncio.sleep(0.1)
            assert process.id in gateway.uploaded_ids()

    asyncio.run(scenario())


def test_the_uploader_stops_when_cancelled_as_a_commit_wakes_it(tmp_path):
    """A commit wakes the idle uploader in the same step as the SU's shutdown cancels it: the
    cancel must not be lost (``asyncio.wait_for`` on Python 3.11 loses it, and leaving the unit
    then waits for ever)."""

    async def scenario():
        async with running_su(f"sqlite:///{tmp_path}/su.db", tmp_path) as (unit, _http, gateway):
            for _ in range(100):  # the Scheduler-Location is uploaded: the uploader is idle
                if unit.store.counts()[1] == 0 and gateway.uploads:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            (uploader,) = [t for t in unit._tasks if t.get_name() == "pyao-su-uploader"]
            unit.uploader.notify()
            uploader.cancel()
            done, _ = await asyncio.wait({uploader}, timeout=3.0)
            assert done, "the uploader went on after it was cancelled"

    asyncio.run(scenario())


_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"])
_segments = st.sampled_from(["", "timestamp", "health", "processes", "latest", "x" * 43, "%00", "..", "ü"])
_query_keys = st.sampled_from(["process-id", "assign", "from", "to", "limit", "from-nonce", "exclude", "base-layer"])


def test_fuzz_http_never_5xx(tmp_path):
    """Random methods, paths, queries and bodies (random, truncated and bit-flipped items): never a 5xx,
    always a JSON error for a 4xx, and the schedule never changes."""
    loop = asyncio.new_event_loop()
    su = running_su(f"sqlite:///{tmp_path}/fuzz.db", tmp_path, max_item_bytes=2048)
    unit, http, _ = loop.run_until_complete(su.__aenter__())
    try:
        process = spawn()
        assert loop.run_until_complete(post(http, process)).status_code == 200
        pid, valid = process.id, message(process.id, 1).to_bytes()

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def fuzz(data):
            method = data.draw(_methods)
            path = "/" + "/".join(data.draw(st.lists(st.one_of(_segments, st.just(pid)), max_size=3)))
            values = st.one_of(st.text(max_size=50), st.just(pid), st.integers().map(str))
            params = data.draw(st.dictionaries(_query_keys, values))
            body = data.draw(
                st.one_of(
                    st.binary(max_size=300),
                    st.binary(max_size=40).map(lambda b: valid[: len(valid) // 2] + b),
                    st.integers(0, len(valid) - 1).map(lambda i: valid[:i] + bytes([valid[i] ^ 0x55]) + valid[i + 1 :]),
                )
            )
            r = loop.run_until_complete(http.request(method, path, params=params, content=body))
            assert r.status_code < 500, (method, path, params, r.status_code, r.text)
            if r.status_code >= 400 and method != "HEAD":
                assert isinstance(r.json()["error"], str)

        fuzz()
        assert unit.store.counts()[0] == 1
    finally:
        loop.run_until_complete(su.__aexit__(None, None, None))
        loop.close()
