"""The chat-room blueprint end to end: signed messages through a real SU, results from a real CU.

Same harness as test_aos_conformance.py: members are users (signed messages) and other
processes (pushed by MU with From-Process); broadcasts are asserted in the outbox.
"""

from __future__ import annotations

import json

import pytest

from pyao.vm.lua import blueprint_source
from tests._cu import OTHER, USER, network
from tests.integration.test_aos_conformance import MU, ORACLE, Proc, ok, tags_of


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    with network(tmp_path_factory.mktemp("chatroom")) as net, net.cu(name="chatroom") as cu:
        module = net.module(b"require('.chatroom')")
        pid = net.spawn(module, [("Authority", MU.address)])
        yield Proc(net, cu, pid), net, cu


def members(p: Proc) -> list[str]:
    r = ok(p.ask([("Action", "Members")]))
    (reply,) = r["Messages"]
    assert tags_of(reply)["Action"] == "Members" and reply["Target"] == USER.address
    return json.loads(reply["Data"])


def test_register_broadcast_unregister(room):
    p, _net, _cu = room
    assert members(p) == []
    # a non-member cannot post
    r = ok(p.ask([("Action", "Broadcast")], "hello?", signer=OTHER))
    (err,) = r["Messages"]
    assert tags_of(err)["Action"] == "Broadcast-Error" and tags_of(err)["Error"] == "Register first"
    assert err["Target"] == OTHER.address
    # users and a process join; registering twice changes nothing but the nickname
    r = ok(p.ask([("Action", "Register"), ("Nickname", "alice")]))
    (reg,) = r["Messages"]
    assert reg["Target"] == USER.address
    assert {k: tags_of(reg)[k] for k in ("Action", "Members")} == {"Action": "Registered", "Members": "1"}
    assert reg["Data"] == "Registered."
    ok(p.ask([("Action", "Register")], signer=OTHER))
    ok(p.push(ORACLE, [("Action", "Register"), ("Nickname", "oracle")]))
    r = ok(p.ask([("Action", "Register"), ("Nickname", "al")]))
    assert tags_of(r["Messages"][0])["Members"] == "3"
    assert members(p) == [USER.address, OTHER.address, ORACLE]
    # a broadcast goes to every member, in join order, with who sent it
    r = ok(p.ask([("Action", "Broadcast")], "hi all"))
    assert [m["Target"] for m in r["Messages"]] == [USER.address, OTHER.address, ORACLE]
    for m in r["Messages"]:
        t = tags_of(m)
        assert (t["Action"], t["Broadcaster"], t["Nickname"], m["Data"]) == (
            "Broadcasted",
            USER.address,
            "al",
            "hi all",
        )
        assert (t["Data-Protocol"], t["Variant"], t["Type"]) == ("ao", "ao.TN.1", "Message")
    assert r["Output"]["data"] == "Broadcast to 3 members"
    # from a process member (via MU), without a nickname of its own sender: OTHER has none
    r = ok(p.ask([("Action", "Broadcast")], "from other", signer=OTHER))
    assert all("Nickname" not in tags_of(m) for m in r["Messages"])
    assert {tags_of(m)["Broadcaster"] for m in r["Messages"]} == {OTHER.address}
    r = ok(p.push(ORACLE, [("Action", "Broadcast")], "oracle speaks"))
    assert [tags_of(m)["Nickname"] for m in r["Messages"]] == ["oracle"] * 3
    # leaving
    r = ok(p.ask([("Action", "Unregister")], signer=OTHER))
    assert tags_of(r["Messages"][0])["Action"] == "Unregistered" and tags_of(r["Messages"][0])["Members"] == "2"
    r = ok(p.ask([("Action", "Unregister")], signer=OTHER))
    assert tags_of(r["Messages"][0])["Action"] == "Unregister-Error"
    assert members(p) == [USER.address, ORACLE]
    r = ok(p.ask([("Action", "Broadcast")], "after", signer=OTHER))
    assert tags_of(r["Messages"][0])["Action"] == "Broadcast-Error"
    r = ok(p.ask([("Action", "Broadcast")], "bye"))
    assert [m["Target"] for m in r["Messages"]] == [USER.address, ORACLE]


def test_replies_follow_reply_to_and_reference(room):
    p, _net, _cu = room
    r = ok(p.ask([("Action", "Members"), ("Reply-To", ORACLE), ("Reference", "41")]))
    (reply,) = r["Messages"]
    assert reply["Target"] == ORACLE and tags_of(reply)["X-Reference"] == "41"


def test_loaded_by_eval_keeps_members_on_reload(room):
    p, _net, _cu = room
    before = members(p)
    ok(p.eval(blueprint_source("chatroom")))
    assert members(p) == before
    names = p.value(
        "local n = {} for _, h in ipairs(Handlers.list) do n[#n + 1] = h.name end return table.concat(n, ',')"
    )
    assert names.split(",").count("chatroom.broadcast") == 1
