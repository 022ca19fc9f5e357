"""The MU end to end over real HTTP: real gateway + SU + CU + MU, all on loopback."""

from __future__ import annotations

import httpx
import pytest

from pyao.data import DataItem, Ed25519Signer, ao
from tests._cu import USER
from tests._mu import mu_network, tags_of, wait_for, wallet_address


@pytest.fixture(scope="module")
def mu(tmp_path_factory):
    with mu_network(tmp_path_factory.mktemp("mu-net")) as n:
        yield n


def test_get_root(mu):
    r = httpx.get(mu.mu + "/")
    assert r.status_code == 200 and r.text == "ao messenger unit"
    status = mu.status()
    assert status["address"] == mu.mu_address and set(status["jobs"]) >= {"pending", "failed"}


def test_message_chain_between_processes(mu):
    a = mu.spawn([("Name", "a")])
    b = mu.spawn([("Name", "b")])
    root = mu.send(a, [("Action", "Relay"), ("To", b)])

    (ping,) = wait_for(lambda: mu.pushed(b, Action="Ping"), what="the Ping on B")
    ping_tags = tags_of(ping)
    assert ping["owner"]["address"] == mu.mu_address and ping["target"] == b
    assert ping_tags["From-Process"] == a and ping_tags["Pushed-For"] == root
    assert ping_tags["From-Module"] == mu.module and ping_tags["Type"] == "Message"
    assert ping["anchor"] == "0" * 31 + "1" and ping["data"] == f"from {a}"
    names = [t["name"] for t in ping["tags"]]
    assert names[-5:] == ["Data-Protocol", "Type", "From-Process", "From-Module", "Pushed-For"]

    (pong,) = wait_for(lambda: mu.pushed(a, Action="Pong"), what="the Pong on A")
    assert tags_of(pong)["From-Process"] == b and tags_of(pong)["Pushed-For"] == root
    assert mu.result(a, pong["id"])["Output"]["data"] == f"got pong 1 from {b}"
    b_result = mu.result(b, ping["id"])
    assert b_result["Messages"][0]["Target"] == a
    mu.idle()
    assert mu.status()["jobs"]["failed"] == 0


def test_spawn_is_answered_with_spawned(mu):
    parent = mu.spawn([("Name", "parent")])
    mu.send(parent, [("Action", "Make")])
    (spawned,) = wait_for(lambda: mu.pushed(parent, Action="Spawned"), what="the Spawned notice")
    tags = tags_of(spawned)
    kid = tags["Process"]
    assert spawned["owner"]["address"] == mu.mu_address and tags["Variant"] == "ao.TN.1"
    assert [t["name"] for t in spawned["tags"]][-5:] == ["Data-Protocol", "Type", "Process", "Action", "Variant"]
    assert mu.result(parent, spawned["id"])["Output"]["data"] == f"kid is {kid}"

    child = mu.schedule(kid)[0]["message"]  # slot 0: the process itself
    child_tags = tags_of(child)
    assert child["id"] == kid and child["owner"]["address"] == mu.mu_address
    assert child_tags["Type"] == "Process" and child_tags["Module"] == mu.module and child_tags["Name"] == "kid"
    assert child_tags["Scheduler"] == mu.net.su_address and child["data"] == "child"
    names = [t["name"] for t in child["tags"]]
    assert names.count("From-Process") == 2 and names[-1] == "Scheduler"  # aos's own, and the MU's
    assert [t["value"] for t in child["tags"] if t["name"] == "From-Module"] == [mu.module]


def test_assignment_through_the_mu(mu):
    target = mu.spawn([("Name", "assignee")])
    other = mu.spawn([("Name", "origin")])
    mid = mu.send(other, [("Action", "Count")], data="assigned")
    wait_for(lambda: httpx.post(mu.net.gateway + "/graphql", json={
        "query": "query($i:[ID!]){transactions(ids:$i){edges{node{id}}}}", "variables": {"i": [mid]}}
    ).json()["data"]["transactions"]["edges"], what="the message on the gateway")  # fmt: skip
    r = httpx.post(mu.mu + "/", params={"process-id": target, "assign": mid})
    assert r.status_code == 202, r.text
    assert r.json()["message"] == "Processing Assignment" and len(r.json()["id"]) == 43
    entry = wait_for(lambda: [n for n in mu.schedule(target) if tags_of(n["assignment"]).get("Message") == mid])
    assert entry[0]["assignment"]["id"] == r.json()["id"]
    assert mu.result(target, mid)["Output"]["data"] == "counted 1 assigned"
    for params in ({"process-id": target}, {"assign": mid}):
        bad = httpx.post(mu.mu + "/", params=params)
        assert bad.status_code == 400
        assert bad.json() == {"error": "You must set both process-id and assign to send an assignment, not just one"}


def test_message_to_a_wallet_is_stored_on_the_gateway(mu):
    tipper = mu.spawn([("Name", "tipper")])
    wallet = wallet_address(99)
    root = mu.send(tipper, [("Action", "Tip"), ("Wallet", wallet)])
    query = "query($r:[String!]){transactions(recipients:$r){edges{node{id owner{address} tags{name value}}}}}"

    def stored():
        body = httpx.post(mu.net.gateway + "/graphql", json={"query": query, "variables": {"r": [wallet]}}).json()
        return body["data"]["transactions"]["edges"]

    (edge,) = wait_for(stored, what="the message on the gateway")
    tags = tags_of(edge["node"])
    assert tags["Action"] == "Thanks" and tags["From-Process"] == tipper and tags["Pushed-For"] == root
    assert edge["node"]["owner"]["address"] == mu.mu_address
    mu.idle()
    assert mu.status()["jobs"]["failed"] == 0


def test_monitor_cranks_cron_results(mu):
    sink = mu.spawn([("Name", "sink")])
    clock = mu.spawn([("Name", "clock"), ("Cron-Interval", "1-seconds"), ("Cron-Tag-Action", "Cron")])
    mu.send(clock, [("Action", "Set-Peer"), ("Peer", sink)])
    wait_for(lambda: mu.pushed(clock, Action="Set-Peer"))
    body = DataItem.create(" ", signer=USER, target=clock).to_bytes()
    r = httpx.post(f"{mu.mu}/monitor/{clock}", content=body)
    assert r.status_code == 200 and r.text == "Monitoring process"
    assert httpx.post(f"{mu.mu}/monitor/{clock}", content=body).status_code == 200
    assert clock in mu.status()["monitors"]
    ticks = wait_for(lambda: len(mu.pushed(sink, Action="Tick")) >= 2 and mu.pushed(sink, Action="Tick"), 30)
    tags = tags_of(ticks[0])
    assert tags["From-Process"] == clock and "Pushed-For" not in tags  # cron messages have no root
    r = httpx.delete(f"{mu.mu}/monitor/{clock}")
    assert r.status_code == 200 and r.text == "Process deleted"
    assert httpx.delete(f"{mu.mu}/monitor/{clock}").status_code == 404
    assert httpx.post(f"{mu.mu}/monitor/{'A' * 43}", content=body).status_code == 404
    assert httpx.post(f"{mu.mu}/monitor/{clock}").status_code == 400  # no body


def test_bad_input_is_refused_and_schedules_nothing(mu):
    pid = mu.spawn([("Name", "guarded")])
    before = len(mu.schedule(pid))
    good = mu.message(pid, [("Action", "Count")], data="x")

    def refused(body: bytes, status: int = 400) -> None:
        r = httpx.post(mu.mu + "/", content=body)
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"}

    refused(b"")
    refused(b"garbage, not a data item")
    raw = bytearray(good.to_bytes())
    raw[-1] ^= 1  # the data changes: the signature no longer matches
    refused(bytes(raw))
    wrong = DataItem.create(" ", signer=USER, tags=[("Data-Protocol", "ao"), ("Type", "Module")], target=pid)
    refused(wrong.to_bytes())
    no_ao = DataItem.create(" ", signer=USER, tags=[("Type", "Message")], target=pid)
    refused(no_ao.to_bytes())
    unknown = mu.message(wallet_address(55), [("Action", "Count")])
    refused(unknown.to_bytes(), 404)
    no_scheduler = DataItem.create(" ", signer=USER, tags=ao.module_tags("x"), target=pid)
    refused(no_scheduler.to_bytes())
    stranger = Ed25519Signer.from_seed(bytes([77]) * 32)
    orphan = DataItem.create(b"x", signer=stranger, tags=ao.process_tags(mu.module, stranger.address))
    refused(orphan.to_bytes(), 404)  # no Scheduler-Location for that "scheduler"
    assert len(mu.schedule(pid)) == before
    # a duplicate: the SU's refusal is passed on
    assert mu.post(good).status_code == 202
    dup = mu.post(good)
    assert dup.status_code == 400 and "already" in dup.json()["error"]
    assert len(mu.schedule(pid)) == before + 1


def test_more_bad_input_is_refused_and_changes_nothing(mu):
    """The remaining shapes of bad input: each a 4xx {"error"}; no SU entry, no gateway item, no MU job."""
    pid = mu.spawn([("Name", "guarded-2")])
    mu.idle()
    before, jobs_before = len(mu.schedule(pid)), mu.status()["jobs"]

    def refused(response: httpx.Response, status: int = 400) -> None:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"} and response.json()["error"]

    odd_type = DataItem.create(" ", signer=USER, tags=[("Data-Protocol", "ao"), ("Type", "Spell")], target=pid)
    refused(mu.post(odd_type))
    no_type = DataItem.create(" ", signer=USER, tags=[("Data-Protocol", "ao"), ("Action", "Count")], target=pid)
    refused(mu.post(no_type))
    untargeted = DataItem.create(" ", signer=USER, tags=ao.message_tags([("Action", "Count")]))
    refused(mu.post(untargeted))
    # a spawn whose signature is broken: no process appears anywhere
    spawn = DataItem.create(b"x", signer=USER, tags=ao.process_tags(mu.module, mu.net.su_address, [("Name", "bad")]))
    raw = bytearray(spawn.to_bytes())
    raw[2] ^= 1  # inside the signature
    refused(httpx.post(mu.mu + "/", content=bytes(raw), timeout=30))
    assert httpx.get(f"{mu.net.gateway}/raw/{spawn.id}", timeout=10).status_code == 404
    assert httpx.get(f"{mu.net.su}/processes/{spawn.id}", timeout=10).status_code == 404
    # a body over the MU's item limit
    refused(httpx.post(mu.mu + "/", content=b"\x01" * (16 * 1024 * 1024 + 1), timeout=60), 413)
    assert httpx.get(f"{mu.net.su}/processes/{pid}", timeout=10).status_code == 200  # the probe above can see
    assert len(mu.schedule(pid)) == before and mu.status()["jobs"] == jobs_before
    # assignments: an unknown process, an unknown message, a malformed id, only one of the two
    message = mu.send(pid, [("Action", "Count")], data="real")
    mu.idle()
    before, jobs_before = len(mu.schedule(pid)), mu.status()["jobs"]
    refused(httpx.post(mu.mu + "/", params={"process-id": wallet_address(66), "assign": message}, timeout=30), 404)
    unknown = httpx.post(mu.mu + "/", params={"process-id": pid, "assign": "B" * 43}, timeout=30)
    assert 400 <= unknown.status_code < 500 and set(unknown.json()) == {"error"}, unknown.text
    refused(httpx.post(mu.mu + "/", params={"process-id": pid, "assign": "short"}, timeout=30))
    refused(httpx.post(mu.mu + "/", params={"process-id": pid}, timeout=30))
    assert len(mu.schedule(pid)) == before
    assert mu.status()["jobs"] == jobs_before
