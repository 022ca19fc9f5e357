"""The CU end to end over real HTTP: real gateway + real SU + CU, all on loopback."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyao.vm import LUA_NATIVE_FORMAT
from tests._cu import OTHER, USER, network

CRON_TAGS = [("Cron-Interval", "1-seconds"), ("Cron-Tag-Action", "Cron")]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with network(tmp_path_factory.mktemp("cu-net")) as n:
        yield n


@pytest.fixture(scope="module")
def module_id(net):
    return net.module()


def _all(client, path, **params):
    """Every edge of a connection, following cursors."""
    edges, cursor = [], None
    while True:
        query = dict(params, **({"from": cursor} if cursor else {}))
        page = client.get(path, params=query).json()
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return edges
        cursor = page["edges"][-1]["cursor"]


def test_results_dry_run_and_state_over_http(net, module_id, tmp_path):
    pid = net.spawn(module_id, [("Name", "calc")])
    m_eval = net.send(pid, [("Action", "Eval")], "1 + 41")
    m_ping = net.send(pid, [("Action", "Ping")])
    m_make = net.send(pid, [("Action", "Make")])
    m_boom = net.send(pid, [("Action", "Boom")])
    m_ping2 = net.send(pid, [("Action", "Ping")])
    m_other = net.send(pid, [("Action", "Eval")], "Count = 7", signer=OTHER)  # not the owner: no Eval
    with net.cu() as cu:
        info = cu.get("/").json()
        assert set(info) == {"address", "timestamp"} and isinstance(info["timestamp"], int)

        r = cu.get(f"/result/{m_ping['id']}", params={"process-id": pid})  # lazily evaluates up to it
        assert r.status_code == 200, r.text
        ping = r.json()
        assert list(ping) == ["Messages", "Spawns", "Assignments", "Output", "GasUsed"]
        (reply,) = ping["Messages"]
        assert reply["Target"] == USER.address and reply["Anchor"] == "0" * 31 + "1" and reply["Data"] == "pong 1"
        names = [t["name"] for t in reply["Tags"]]
        assert names[:4] == ["Data-Protocol", "Variant", "Type", "Reference"]
        assert {"name": "Action", "value": "Pong"} in reply["Tags"] and {"name": "X-Count", "value": "1"} in reply[
            "Tags"
        ]

        out = cu.get(f"/result/{m_eval['id']}", params={"process-id": pid}).json()  # from the store
        # held in memory (the lean path) or read by the full route (an escaped query): the same answer
        full = cu.get(f"/result/{m_eval['id']}", params={"process-id": pid, "x": "a b%"})
        assert full.status_code == 200 and full.json() == out
        assert full.headers["content-type"] == "application/json"
        assert out["Output"]["data"] == "42" and "calc\x1b[90m@" in out["Output"]["prompt"] and out["Messages"] == []

        make = cu.get(f"/result/{m_make['id']}", params={"process-id": pid}).json()
        (spawn,) = make["Spawns"]
        assert spawn["Data"] == "child" and {"name": "Name", "value": "kid"} in spawn["Tags"]
        assert {"name": "Module", "value": module_id} in spawn["Tags"]
        assert make["Output"]["data"] == "spawned"

        boom = cu.get(f"/result/{m_boom['id']}", params={"process-id": pid}).json()
        assert "boom 101" in boom["Error"] and boom["Messages"] == []
        ping2 = cu.get(f"/result/{m_ping2['id']}", params={"process-id": pid}).json()
        assert ping2["Messages"][0]["Data"] == "pong 2"  # the Boom's Count + 100 was undone
        other = cu.get(f"/result/{m_other['id']}", params={"process-id": pid}).json()
        assert other["Output"]["data"].startswith("New Message From")  # to the Inbox, not evaluated

        # /results: errored evaluations left out; cursors page both ways
        edges = _all(cu, f"/results/{pid}", limit=2)
        assert len(edges) == 6  # process, eval, ping, make, ping2, other (boom excluded)
        decoded = [json.loads(base64.b64decode(e["cursor"])) for e in edges]
        assert [d["ordinate"] for d in decoded] == ["0", "1", "2", "3", "5", "6"]
        assert all(d["sort"] == "ASC" and "cron" not in d for d in decoded)
        assert all("Error" not in e["node"] and set(e["node"]) == {"Messages", "Assignments", "Spawns", "Output"}
                   for e in edges)  # fmt: skip
        down = _all(cu, f"/results/{pid}", limit=4, sort="DESC")
        assert [json.loads(base64.b64decode(e["cursor"]))["ordinate"] for e in down] == ["6", "5", "3", "2", "1", "0"]
        window = cu.get(f"/results/{pid}", params={"from": edges[1]["cursor"], "to": edges[4]["cursor"]}).json()
        assert [e["node"] for e in window["edges"]] == [e["node"] for e in edges[2:5]]
        assert window["pageInfo"]["hasNextPage"] is False
        by_time = cu.get(f"/results/{pid}", params={"from": str(m_make["timestamp"])}).json()
        assert by_time["edges"][0]["node"] == edges[3]["node"]  # a bare timestamp is inclusive

        # /dry-run: evaluated on a copy; the state is unchanged
        state = cu.get(f"/state/{pid}")
        assert state.status_code == 200 and state.headers["content-type"] == "application/octet-stream"
        assert state.headers["Last-Ordinate"] == "6" and state.headers["Last-Timestamp"] == str(m_other["timestamp"])
        assert int(state.headers["Last-Block-Height"]) >= 0
        body = {"Target": pid, "Owner": USER.address, "Tags": [{"name": "Action", "value": "Eval"}],
                "Data": "Count = 1000; return Count"}  # fmt: skip
        dry = cu.post("/dry-run", params={"process-id": pid}, json=body)
        assert dry.status_code == 200 and dry.json()["Output"]["data"] == "1000"
        dry = cu.post("/dry-run", params={"process-id": pid}, json={"Tags": [{"name": "Action", "value": "Ping"}]})
        assert dry.json()["Messages"][0]["Data"] == "pong 3"
        assert cu.get(f"/state/{pid}").content == state.content
        m_ping3 = net.send(pid, [("Action", "Ping")])
        assert cu.get(f"/result/{m_ping3['id']}", params={"process-id": pid}).json()["Messages"][0]["Data"] == "pong 3"

        # bad input
        assert cu.get(f"/result/{m_ping['id']}").status_code == 400  # no process-id
        assert cu.get("/result/short", params={"process-id": pid}).status_code == 400
        unknown = "A" * 43
        r = cu.get(f"/result/{unknown}", params={"process-id": unknown})
        assert r.status_code == 404 and "error" in r.json()
        assert cu.get(f"/result/{unknown}", params={"process-id": pid}).status_code == 404
        assert cu.get(f"/results/{pid}", params={"sort": "UP"}).status_code == 400
        assert cu.get(f"/results/{pid}", params={"from": "not-a-cursor"}).status_code == 400
        assert cu.get(f"/results/{pid}", params={"limit": "-1"}).status_code == 400
        assert cu.post("/dry-run", params={"process-id": pid}, content=b"{").status_code == 400
        assert cu.get("/nope").status_code == 404

        # a module with an unknown Module-Format
        wasm = net.module(b"\0asm", module_format="wasm99-unknown")
        bad = net.spawn(wasm)
        r = cu.get(f"/results/{bad}")
        assert r.status_code == 400 and LUA_NATIVE_FORMAT in r.json()["error"] and "wasm99-unknown" in r.json()["error"]


def _expected_ticks(origin_ms: int, boundaries: list[int]) -> list[int]:
    """Spec §6, written independently: from each scheduled message, every 1000 ms below the next one,
    a 1-second cron fires unless in the origin's second."""
    ticks = []
    for left, right in itertools.pairwise(boundaries):
        t = left
        while t < right:
            if t // 1000 != origin_ms // 1000:
                ticks.append(t)
            t += 1000
    return ticks


def test_cron_results(net, module_id):
    pid = net.spawn(module_id, CRON_TAGS)
    net.mine()
    time.sleep(1.2)
    net.mine()
    m1 = net.send(pid, [("Action", "Ping")])
    time.sleep(1.1)
    m2 = net.send(pid, [("Action", "Ping")])
    with net.cu() as cu:
        assert cu.get(f"/result/{m2['id']}", params={"process-id": pid}).status_code == 200
        meta = cu.get(f"/results/{pid}", params={"limit": 1}).json()["edges"][0]["cursor"]
        origin = json.loads(base64.b64decode(meta))["timestamp"]
        crons = _all(cu, f"/cron/{pid}", limit=2)
        stamps = [json.loads(base64.b64decode(e["cursor"]))["timestamp"] for e in crons]
        expected = _expected_ticks(origin, [origin, m1["timestamp"], m2["timestamp"]])
        assert len(expected) >= 2 and stamps[: len(expected)] == expected
        cursors = [json.loads(base64.b64decode(e["cursor"])) for e in crons]
        assert all(c["cron"] == "0-1-seconds" for c in cursors)
        for n, edge in enumerate(crons[: len(expected)]):
            assert edge["node"]["Output"]["data"].startswith(f"tick {n + 1} at {stamps[n]} cron=true")
        # trailing ticks up to the SU's clock (less the lag) appear on /cron, never twice
        again = _all(cu, f"/cron/{pid}", limit=500)
        assert [e["cursor"] for e in again[: len(crons)]] == [e["cursor"] for e in crons]
        every = _all(cu, f"/results/{pid}", limit=100)
        assert len(every) == 3 + len(again)


def _stream(cu, pid):
    edges = _all(cu, f"/results/{pid}", limit=100)
    return [(e["cursor"], e["node"]) for e in edges]


def test_two_cus_on_sqlite_and_postgres_agree(net, module_id, postgres_dsn):
    pid = net.spawn(module_id, CRON_TAGS)
    time.sleep(1.1)  # past the origin's second: every message is followed by a cron tick (official rule)

    def send(n):
        action = "Boom" if n == 57 else ("Eval" if n % 50 == 10 else "Ping")
        return net.send(pid, [("Action", action)], f"Count = Count + {n}" if action == "Eval" else "")

    sent = []
    with ThreadPoolExecutor(8) as pool:
        for chunk in (range(0, 80), range(80, 160)):
            net.mine()
            sent += list(pool.map(send, chunk))
    boom_id = sent[57]["id"]
    sent.sort(key=lambda m: m["timestamp"])
    middle, last = sent[len(sent) // 2], sent[-1]
    with net.cu(name="a") as a, net.cu(db=postgres_dsn, name="b") as b:
        # A evaluates in two steps, B in one
        assert a.get(f"/result/{middle['id']}", params={"process-id": pid}).status_code == 200
        results_a = a.get(f"/result/{last['id']}", params={"process-id": pid}).json()
        results_b = b.get(f"/result/{last['id']}", params={"process-id": pid}).json()
        assert results_a == results_b
        stream_a, stream_b = _stream(a, pid), _stream(b, pid)
        assert stream_a == stream_b
        assert len(stream_a) >= len(sent)  # every message but the Boom, plus cron ticks
        assert any(json.loads(base64.b64decode(c)).get("cron") for c, _ in stream_a)
        boom = a.get(f"/result/{boom_id}", params={"process-id": pid}).json()
        assert boom == b.get(f"/result/{boom_id}", params={"process-id": pid}).json() and "Error" in boom
        digest_a = hashlib.sha256(a.get(f"/state/{pid}").content).hexdigest()
        digest_b = hashlib.sha256(b.get(f"/state/{pid}").content).hexdigest()
        assert digest_a == digest_b


def test_a_restarted_cu_answers_from_its_store_and_goes_on(net, module_id, tmp_path):
    pid = net.spawn(module_id)
    first = [net.send(pid, [("Action", "Ping")]) for _ in range(5)]
    db = f"sqlite:///{tmp_path / 'restart.db'}"
    with net.cu(db=db, name="r1") as cu:
        before = [cu.get(f"/result/{m['id']}", params={"process-id": pid}).json() for m in first]
    later = net.send(pid, [("Action", "Ping")])
    with net.cu(db=db, name="r1") as cu:
        assert [cu.get(f"/result/{m['id']}", params={"process-id": pid}).json() for m in first] == before
        # a new message: the process is rebuilt by a full replay (no checkpoints yet), then goes on
        assert cu.get(f"/result/{later['id']}", params={"process-id": pid}).json()["Messages"][0]["Data"] == "pong 6"
        assert len(_stream(cu, pid)) == 7


_ID = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=43, max_size=43)
_JUNK = st.text(max_size=60)
_PARAM = st.one_of(_JUNK, _ID, st.integers(-5, 10**14).map(str), st.sampled_from(["ASC", "DESC", ""]))


@pytest.fixture(scope="module")
def fuzz_target(net, module_id, tmp_path_factory):
    pid = net.spawn(module_id)
    msg = net.send(pid, [("Action", "Ping")])
    with net.cu(name="fuzz", db=f"sqlite:///{tmp_path_factory.mktemp('fz') / 'cu.db'}") as cu:
        yield cu, pid, msg["id"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(["result", "results", "cron", "state", "dry-run", "other"]),
    ident=st.one_of(_ID, _JUNK, st.just("KNOWN-PID"), st.just("KNOWN-MSG")),
    params=st.dictionaries(st.sampled_from(["process-id", "from", "to", "sort", "limit"]), _PARAM, max_size=4),
    body=st.one_of(st.binary(max_size=80), st.builds(lambda v: json.dumps(v).encode(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["Tags", "Data", "Owner", "Id",
                                                                             "Timestamp", "name", "value"]), c,
                                                            max_size=4), max_leaves=8))),
)  # fmt: skip
def test_fuzz_http_never_answers_5xx(fuzz_target, route, ident, params, body):
    cu, pid, mid = fuzz_target
    ident = quote({"KNOWN-PID": pid, "KNOWN-MSG": mid}.get(ident, ident), safe="")
    params = {k: ({"KNOWN-PID": pid}.get(v, v)) for k, v in params.items()}
    if route == "dry-run":
        r = cu.post("/dry-run", params=params, content=body)
    elif route == "other":
        r = cu.get(f"/{ident}", params=params)
    else:
        r = cu.get(f"/{route}/{ident}", params=params)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert "error" in r.json()
