"""aos conformance: every handler rule, trust rule, reply/Receive flow and token action, end to end.

Signed messages go to a real SU over HTTP; a real CU replays them through a native Lua process
(docs/lua-modules.md) and its ``/result`` objects (Messages with their tags, Spawns, Assignments,
Output, Error) are checked field by field. There is no MU: process-to-process messages are not
pushed, so the tests assert the outbox, and feed the "replies" themselves as messages with a
``From-Process`` tag signed by ``MU``, a key listed as an Authority of the process (what an MU does).

One process per topic, many messages each, so the suite stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pyao.data import Ed25519Signer
from pyao.vm.lua import blueprint_source
from tests._cu import OTHER, USER, Network, network

MU = Ed25519Signer.from_seed(bytes([23]) * 32)  # plays the messenger: an Authority, not the owner
ORACLE = "oracle-process-" + "o" * 28  # another process (43 characters), reached only through MU pushes
INITIAL = str(10_000 * 10**12)  # the token blueprint's supply: 10000 tokens of 12 decimals


#: an expression listing the process's handler names, in list order
HANDLER_NAMES = "local n = {} for _, h in ipairs(Handlers.list) do n[#n + 1] = h.name end return table.concat(n, ',')"


def tags_of(m: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in m["Tags"]}


def anchor(n: int) -> str:
    return f"{n:032d}"


@dataclass
class Proc:
    """One process on the network, read through one CU."""

    net: Network
    cu: httpx.Client
    pid: str
    sent: list[dict[str, Any]] = field(default_factory=list)

    def post(self, tags: Sequence[tuple[str, str]] = (), data: str = "", signer=USER) -> dict[str, Any]:
        m = self.net.send(self.pid, list(tags), data, signer=signer)
        self.sent.append(m)
        return m

    def result(self, m: dict[str, Any]) -> dict[str, Any]:
        r = self.cu.get(f"/result/{m['id']}", params={"process-id": self.pid})
        assert r.status_code == 200, r.text
        return r.json()

    def ask(self, tags: Sequence[tuple[str, str]] = (), data: str = "", signer=USER) -> dict[str, Any]:
        return self.result(self.post(tags, data, signer))

    def push(self, from_process: str, tags: Sequence[tuple[str, str]] = (), data: str = "", signer=MU):
        """A message as an MU delivers it from another process: From-Process, signed by the MU."""
        return self.ask([*tags, ("From-Process", from_process)], data, signer)

    def eval(self, code: str, signer=USER) -> dict[str, Any]:
        return self.ask([("Action", "Eval")], code, signer)

    def value(self, expr: str) -> str:
        r = self.eval(expr)
        assert "Error" not in r, r["Error"]
        return r["Output"]["data"]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with network(tmp_path_factory.mktemp("aos-conformance")) as n:
        yield n


@pytest.fixture(scope="module")
def cu(net):
    with net.cu(name="conformance") as client:
        yield client


@pytest.fixture(scope="module")
def modules(net):
    return {"plain": net.module(b""), "token": net.module(b"require('.token')")}


@pytest.fixture
def spawn(net, cu, modules):
    def make(kind: str = "plain", tags: Sequence[tuple[str, str]] = ()) -> Proc:
        pid = net.spawn(modules[kind], [("Authority", MU.address), *tags])
        return Proc(net, cu, pid)

    return make


def ok(r: dict[str, Any]) -> dict[str, Any]:
    assert "Error" not in r, r["Error"]
    return r


def printed(r: dict[str, Any]) -> list[str]:
    return ok(r)["Output"]["data"].split("\n")


# ------------------------------------------------------------------ handlers

LOGGERS = """
local function say(name) return function() print(name) end end
local function when(action, verdict) return function(m) if m.Action == action then return verdict end return 0 end end
"""


def test_handler_list_order_add_append_prepend_once_before_after_remove(spawn):
    p = spawn()
    ok(
        p.eval(
            LOGGERS
            + """
            local c = when('X', 'continue')
            Handlers.add('b', c, say('b'))
            Handlers.append('c', c, say('c'))
            Handlers.prepend('a', c, say('a'))
            Handlers.before('b').add('a2', c, say('a2'))
            Handlers.after('b').add('b2', c, say('b2'))
            Handlers.once('o', c, say('o'))
            Handlers.add('twice', c, say('t'), 2)
            Handlers.add('X', say('by-name'))
            """
        )
    )
    assert printed(p.ask([("Action", "X")])) == ["o", "a", "a2", "b", "b2", "c", "t", "by-name"]
    ok(p.eval("Handlers.remove('a2'); Handlers.add('b', function(m) return m.Action == 'X' and 'continue' end,"
              " function() print('b-new') end)"))  # fmt: skip
    assert printed(p.ask([("Action", "X")])) == ["a", "b-new", "b2", "c", "t", "by-name"]  # replaced in place
    assert printed(p.ask([("Action", "X")])) == ["a", "b-new", "b2", "c", "by-name"]  # 'twice' ran out
    # _eval and _default come from the first message (_default always runs last, if at all)
    assert p.value(HANDLER_NAMES) == "a,_eval,_default,b,b2,c,X"  # prepend put "a" before them


def test_pattern_forms_and_verdicts(spawn):
    p = spawn()
    ok(
        p.eval(
            LOGGERS
            + """
            Handlers.add('str', 'A', say('str'))
            Handlers.add('exact', { Action = 'B', Color = 'red' }, say('exact'))
            Handlers.add('lpat', { Action = 'C', Qty = '^%d+$' }, say('lpat'))
            Handlers.add('wild', { Action = 'D', Anything = '_' }, say('wild'))
            Handlers.add('alts', { Action = { 'E1', 'E2' } }, say('alts'))
            Handlers.add('fnval', { Action = 'F', Qty = function(v) return tonumber(v) > 10 end }, say('fnval'))
            Handlers.add('v-true', when('T', true), say('true'))
            Handlers.add('v-cont', when('G', 'continue'), say('continue'))
            Handlers.add('v-one', when('G', 1), say('one'))
            Handlers.add('v-zero', when('G', 0), say('zero'))
            Handlers.add('v-false', when('G', false), say('false'))
            Handlers.add('v-minus', when('G', -1), say('minus-one'))
            Handlers.add('v-after', when('G', -1), say('after-break'))
            Handlers.add('v-true2', when('T', true), say('after-true'))
            """
        )
    )
    cases = [
        ([("Action", "A")], ["str"]),
        ([("Action", "B"), ("Color", "RED")], ["exact"]),  # exact match, case-insensitive
        ([("Action", "C"), ("Qty", "42")], ["lpat"]),
        ([("Action", "D"), ("Anything", "whatever")], ["wild"]),
        ([("Action", "E2")], ["alts"]),
        ([("Action", "F"), ("Qty", "11")], ["fnval"]),
        ([("Action", "T")], ["true"]),
        ([("Action", "G")], ["continue", "one", "minus-one"]),  # 0/false skip, -1 runs and stops
    ]
    for tags, want in cases:
        assert printed(p.ask(tags)) == want, tags
    user = USER.address[:3] + "..." + USER.address[-3:]
    for tags, action in [
        ([("Action", "B"), ("Color", "blue")], "B"),  # exact value differs
        ([("Action", "C"), ("Qty", "4x")], "C"),  # Lua pattern does not match
        ([("Action", "D")], "D"),  # '_' still needs the key present
        ([("Action", "E3")], "E3"),
        ([("Action", "F"), ("Qty", "3")], "F"),
    ]:
        assert printed(p.ask(tags)) == [f"New Message From {user}: Action = {action}"], tags
    assert p.value("#Inbox") == "5"


def test_default_handler_and_inbox(spawn):
    p = spawn()
    other = OTHER.address[:3] + "..." + OTHER.address[-3:]
    r = p.ask([], "hello inbox", signer=OTHER)
    assert r["Output"]["data"] == f"New Message From {other}: Data = hello inbox" and r["Messages"] == []
    r = p.ask([("Action", "Ping"), ("Note", "n")], signer=OTHER)
    assert r["Output"]["data"] == f"New Message From {other}: Action = Ping"
    assert p.value("#Inbox") == "2"
    assert p.value("Inbox[1].Data .. '|' .. Inbox[2].Action .. '|' .. Inbox[2].Note") == "hello inbox|Ping|n"
    assert p.value("Inbox[2].From") == OTHER.address


# --------------------------------------------------------------------- trust


def test_eval_trust_and_authority(spawn):
    p = spawn()
    assert p.value("Owner") == USER.address
    assert sorted(p.value("table.concat(ao.authorities, ',')").split(",")) == sorted([USER.address, MU.address])
    ok(p.eval("X = 'owner'"))
    r = p.eval("X = 'stranger'", signer=OTHER)  # signed by a stranger: trusted, but not the owner
    assert r["Output"]["data"].startswith("New Message From") and "Action = Eval" in r["Output"]["data"]
    r = p.eval("X = 'authority'", signer=MU)  # our rule: an Authority may Eval
    assert ok(r)["Output"]["data"] == ""
    assert p.value("X") == "authority"
    # pushed by the MU from another process: trusted, but that process may not Eval
    r = p.push(ORACLE, [("Action", "Eval")], "X = 'pushed'")
    assert r["Output"]["data"].startswith("New Message From ora...ooo")
    # pushed by a key that is no Authority: not trusted, no handler runs, nothing reaches the Inbox
    inbox = p.value("#Inbox")
    r = p.push(ORACLE, [("Action", "Eval")], "X = 'forged'", signer=OTHER)
    assert r["Output"]["data"] == f"Message is not trusted! From: {ORACLE} - Owner: {OTHER.address}"
    assert r["Messages"] == [] and r["Spawns"] == []
    assert p.value("X") == "authority" and p.value("#Inbox") == inbox


# -------------------------------------------------------- replies and outbox


def test_reply_and_forward(spawn):
    p = spawn()
    ok(
        p.eval(
            "Handlers.add('ask', 'Ask', function(m) m.reply({ Action = 'Answer', Data = 'yes' }) end);"
            "Handlers.add('fwd', 'Fwd', function(m) m.forward('ELSEWHERE', { Note = 'n' }) end)"
        )
    )
    (m,) = ok(p.ask([("Action", "Ask"), ("Reference", "7")], signer=OTHER))["Messages"]
    assert m["Target"] == OTHER.address and m["Data"] == "yes" and m["Anchor"] == anchor(1)
    t = tags_of(m)
    assert (t["Action"], t["X-Reference"], t["Reference"]) == ("Answer", "7", "1")
    (m,) = ok(p.ask([("Action", "Ask"), ("Reference", "8"), ("Reply-To", "BOX")], signer=OTHER))["Messages"]
    assert m["Target"] == "BOX" and tags_of(m)["X-Reference"] == "8"
    (m,) = ok(p.ask([("Action", "Fwd"), ("Reference", "9"), ("Keep", "k")], "payload", signer=OTHER))["Messages"]
    t = tags_of(m)
    assert m["Target"] == "ELSEWHERE" and m["Data"] == "payload" and m["Anchor"] == anchor(3)
    assert (t["Note"], t["Keep"], t["Action"], t["Reply-To"], t["X-Reference"], t["X-Origin"]) == (
        "n",
        "k",
        "Fwd",
        OTHER.address,
        "9",
        OTHER.address,
    )
    assert t["Reference"] == "3" and "From-Process" not in t and "Id" not in t


def test_send_spawn_assign_outbox_shapes(spawn, modules):
    p = spawn()
    r = ok(
        p.eval(
            "Send({ Target = 'T1', Action = 'Hi', Data = 'x', Count = 3, Flag = true, Tags = { Extra = '1' } });"
            "Send({ Target = 'T2', Data = { k = 1, list = { 1, 2 } } });"
            "Spawn(ao._module, { Data = 'code', Name = 'kid' }); Spawn('MOD', {});"
            "Assign({ Processes = { 'p1', 'p2' }, Message = 'mid' })"
        )
    )
    m1, m2 = r["Messages"]
    assert set(m1) == {"Target", "Anchor", "Tags", "Data"}
    assert (m1["Target"], m1["Data"], m1["Anchor"]) == ("T1", "x", anchor(1))
    assert m1["Tags"][:4] == [
        {"name": "Data-Protocol", "value": "ao"},
        {"name": "Variant", "value": "ao.TN.1"},
        {"name": "Type", "value": "Message"},
        {"name": "Reference", "value": "1"},
    ]
    t = tags_of(m1)
    assert (t["Action"], t["Count"], t["Flag"], t["Extra"]) == ("Hi", "3", "true", "1")
    assert (m2["Target"], m2["Anchor"], json.loads(m2["Data"])) == ("T2", anchor(2), {"k": 1, "list": [1, 2]})
    assert tags_of(m2)["Content-Type"] == "application/json"
    s1, s2 = r["Spawns"]
    assert set(s1) == {"Anchor", "Tags", "Data"} and (s1["Data"], s1["Anchor"]) == ("code", anchor(3))
    t = tags_of(s1)
    assert (t["Data-Protocol"], t["Variant"], t["Type"], t["Reference"], t["Name"]) == (
        "ao",
        "ao.TN.1",
        "Process",
        "3",
        "kid",
    )
    assert (t["From-Process"], t["From-Module"], t["Module"]) == (p.pid, modules["plain"], modules["plain"])
    assert (s2["Data"], tags_of(s2)["Module"], s2["Anchor"]) == ("NODATA", "MOD", anchor(4))
    assert r["Assignments"] == [{"Processes": ["p1", "p2"], "Message": "mid"}]
    # the reference counter survives between messages
    (m,) = ok(p.eval("Send({ Target = 'T3' })"))["Messages"]
    assert m["Anchor"] == anchor(5) and tags_of(m)["Reference"] == "5" and "Data" not in m


def test_receive_across_messages(spawn):
    p = spawn()
    ok(
        p.eval(
            f"""
            Handlers.add('ask', 'Ask', function(m)
              local reply = Send({{ Target = '{ORACLE}', Action = 'Question' }}).receive()
              Answer = reply.Data
              m.reply({{ Action = 'Answered', Data = 'got ' .. reply.Data }})
            end)
            Handlers.add('wait', 'Wait', function(m)
              local r = Receive({{ Action = 'Go', From = '{ORACLE}' }})
              print('released by ' .. r.Id)
            end)
            Handlers.add('later', 'Later', function(m)
              Send({{ Target = '{ORACLE}', Action = 'Q2' }}).onReply(function(r) print('onReply ' .. r.Data) end)
            end)
            """
        )
    )
    r = ok(p.ask([("Action", "Ask"), ("Reference", "1")], signer=OTHER))
    (q,) = r["Messages"]
    ref = tags_of(q)["Reference"]
    assert q["Target"] == ORACLE and tags_of(q)["Action"] == "Question" and ref == "1"
    assert p.value("tostring(Answer)") == "nil"
    # wrong sender or wrong reference: the parked handler stays parked (the message goes to the Inbox)
    r = ok(p.push("not-the-oracle-" + "x" * 28, [("X-Reference", ref)], "wrong sender"))
    assert r["Messages"] == [] and "New Message From" in r["Output"]["data"]
    assert ok(p.push(ORACLE, [("X-Reference", "999")], "wrong ref"))["Messages"] == []
    assert p.value("tostring(Answer)") == "nil"
    r = ok(p.push(ORACLE, [("X-Reference", ref)], "42"))
    (a,) = r["Messages"]
    assert (a["Target"], a["Data"], tags_of(a)["Action"], tags_of(a)["X-Reference"]) == (
        OTHER.address,
        "got 42",
        "Answered",
        "1",
    )
    assert p.value("Answer") == "42"
    # Receive(pattern) on a table spec
    assert ok(p.ask([("Action", "Wait")]))["Output"]["data"] == ""
    go = p.post([("Action", "Go"), ("From-Process", ORACLE)], signer=MU)
    assert printed(p.result(go)) == [f"released by {go['id']}"]
    # .onReply: a one-off handler on From + X-Reference
    (q2,) = ok(p.ask([("Action", "Later")]))["Messages"]
    assert printed(p.push(ORACLE, [("X-Reference", tags_of(q2)["Reference"])], "late")) == ["onReply late"]


def test_json_data_os_time_and_msg_fields(spawn):
    p = spawn()
    ok(
        p.eval(
            "Handlers.add('seen', 'Look', function(m)"
            " print(os.time() == m.Timestamp, m.Timestamp, m['Block-Height'] >= 0, m.Id, m.From, m.Owner,"
            " m['Forwarded-By'], m.Data.a[2], math.type(m.Data.a[1]), m.Tags['Content-Type'], m['My-Tag'],"
            " tostring(m.Type), m.TagArray[1].name) end)"
        )
    )
    sent = p.post([("Action", "Look"), ("Content-Type", "application/json"), ("my_tag", "v")], '{"a": [1, 2.5]}')
    (line,) = printed(p.result(sent))
    assert line.split("\t") == [
        "true",
        str(sent["timestamp"]),
        "true",
        sent["id"],
        USER.address,
        USER.address,
        "nil",
        "2.5",
        "integer",
        "application/json",
        "v",
        "nil",  # Type stays in Tags, never copied onto msg
        "Action",
    ]
    pushed = p.post(
        [("Action", "Look"), ("Content-Type", "application/json"), ("From-Process", ORACLE)], '{"a":[3,4]}', signer=MU
    )
    fields = printed(p.result(pushed))[0].split("\t")
    assert fields[4:7] == [ORACLE, MU.address, MU.address]  # From, Owner, Forwarded-By
    assert p.value("os.time()") == str(p.sent[-1]["timestamp"])


def test_error_in_handler_is_an_error_result_and_rolls_back(spawn):
    p = spawn()
    ok(
        p.eval(
            "Counter = 1; Handlers.add('boom', 'Boom', function(m)"
            " Counter = Counter + 100; Send({ Target = 'T', Action = 'Lost' }); error('boom ' .. Counter) end);"
            "Handlers.add('inc', 'Inc', function(m) Counter = Counter + 1; print(Counter) end)"
        )
    )
    assert p.value("Counter") == "1"
    r = p.ask([("Action", "Boom")])
    assert "boom 101" in r["Error"] and r["Messages"] == [] and r["Spawns"] == []
    assert p.value("Counter") == "1"
    assert printed(p.ask([("Action", "Inc")])) == ["2"]
    r = p.eval("Counter = 50; error('eval failed')")
    assert "eval failed" in r["Error"]
    assert p.value("Counter") == "2"
    assert p.value(HANDLER_NAMES) == "_eval,_default,boom,inc"
    r = p.eval("Handlers.remove('boom'); error('after removing')")  # handlers are state too
    assert "after removing" in r["Error"] and p.value(HANDLER_NAMES) == "_eval,_default,boom,inc"
    r = p.eval("this is not lua")
    assert "syntax error" in r["Error"] or "expected" in r["Error"]


# -------------------------------------------------------------------- token


def test_token_read_actions(spawn):
    p = spawn("token")
    (m,) = ok(p.ask([("Action", "Info"), ("Reference", "3")], signer=OTHER))["Messages"]
    t = tags_of(m)
    assert m["Target"] == OTHER.address and "Data" not in m
    assert (t["Name"], t["Ticker"], t["Logo"], t["Denomination"], t["X-Reference"]) == (
        "Points Coin",
        "PNTS",
        "SBCCXwwecBlDqRLUjb8dYABExTJXLieawf7m2aBJ-KY",
        "12",
        "3",
    )
    (m,) = ok(p.ask([("Action", "Balance")], signer=OTHER))["Messages"]
    t = tags_of(m)
    assert (m["Data"], t["Balance"], t["Ticker"], t["Account"]) == ("0", "0", "PNTS", OTHER.address)
    (m,) = ok(p.ask([("Action", "Balance"), ("Recipient", p.pid)], signer=OTHER))["Messages"]
    assert (m["Data"], tags_of(m)["Account"]) == (INITIAL, p.pid)
    (m,) = ok(p.ask([("Action", "Balance"), ("Target", p.pid)], signer=OTHER))["Messages"]
    assert (m["Data"], tags_of(m)["Account"]) == (INITIAL, OTHER.address)
    (m,) = ok(p.ask([("Action", "Balances")]))["Messages"]
    assert json.loads(m["Data"]) == {p.pid: INITIAL} and m["Target"] == USER.address
    (m,) = ok(p.ask([("Action", "Total-Supply")], signer=OTHER))["Messages"]
    assert (m["Data"], tags_of(m)["Action"], tags_of(m)["Ticker"]) == (INITIAL, "Total-Supply", "PNTS")
    r = p.push(p.pid, [("Action", "Total-Supply")])
    assert "Cannot call Total-Supply from the same process!" in r["Error"]


def test_token_transfer_notices_errors_and_cast(spawn):
    p = spawn("token")
    # the process's own tokens move when a message From the process arrives (pushed by the MU)
    r = ok(p.push(p.pid, [("Action", "Transfer"), ("Recipient", OTHER.address), ("Quantity", "1000"),
                          ("X-Order", "o-1"), ("Reference", "5")]))  # fmt: skip
    debit, credit = r["Messages"]
    assert debit["Target"] == p.pid and credit["Target"] == OTHER.address
    d, c = tags_of(debit), tags_of(credit)
    assert (d["Action"], d["Recipient"], d["Quantity"], d["X-Order"], d["X-Reference"]) == (
        "Debit-Notice",
        OTHER.address,
        "1000",
        "o-1",
        "5",
    )
    assert (c["Action"], c["Sender"], c["Quantity"], c["X-Order"]) == ("Credit-Notice", p.pid, "1000", "o-1")
    assert "You transferred" in debit["Data"] and "You received" in credit["Data"]
    assert (debit["Anchor"], credit["Anchor"]) == (anchor(1), anchor(2))
    balances = {p.pid: str(int(INITIAL) - 1000), OTHER.address: "1000"}
    assert json.loads(ok(p.ask([("Action", "Balances")]))["Messages"][0]["Data"]) == balances
    # Cast: moved, no notices
    r = ok(
        p.ask([("Action", "Transfer"), ("Recipient", USER.address), ("Quantity", "300"), ("Cast", "1")], signer=OTHER)
    )
    assert r["Messages"] == []
    # too much: Transfer-Error to the sender
    r = ok(p.ask([("Action", "Transfer"), ("Recipient", USER.address), ("Quantity", "701")], signer=OTHER))
    (e,) = r["Messages"]
    assert e["Target"] == OTHER.address
    assert {k: tags_of(e)[k] for k in ("Action", "Error", "Message-Id")} == {
        "Action": "Transfer-Error",
        "Error": "Insufficient Balance!",
        "Message-Id": p.sent[-1]["id"],
    }
    # malformed requests: Error results, nothing moves
    for tags, why in [
        ([("Quantity", "1")], "Recipient is required!"),
        ([("Recipient", USER.address)], "Quantity is required!"),
        ([("Recipient", USER.address), ("Quantity", "0")], "Quantity must be greater than 0"),
        ([("Recipient", USER.address), ("Quantity", "-3")], "Quantity must be greater than 0"),
        ([("Recipient", USER.address), ("Quantity", "2.5")], "Quantity must be greater than 0"),
    ]:
        r = p.ask([("Action", "Transfer"), *tags], signer=OTHER)
        assert why in r["Error"] and r["Messages"] == [], tags
    balances = {p.pid: str(int(INITIAL) - 1000), OTHER.address: "700", USER.address: "300"}
    assert json.loads(ok(p.ask([("Action", "Balances")]))["Messages"][0]["Data"]) == balances


def test_token_mint_and_burn(spawn):
    p = spawn("token")
    (m,) = ok(p.ask([("Action", "Mint"), ("Quantity", "5")]))["Messages"]  # the owner is not the process
    assert m["Target"] == USER.address
    assert {k: tags_of(m)[k] for k in ("Action", "Error", "Message-Id")} == {
        "Action": "Mint-Error",
        "Error": "Only the Process Id can mint new PNTS tokens!",
        "Message-Id": p.sent[-1]["id"],
    }
    assert "greater than zero!" in p.push(p.pid, [("Action", "Mint"), ("Quantity", "0")])["Error"]
    huge = 10**30
    (m,) = ok(p.push(p.pid, [("Action", "Mint"), ("Quantity", str(huge))]))["Messages"]
    assert m["Target"] == p.pid and "Successfully minted" in m["Data"]
    supply = str(int(INITIAL) + huge)
    (m,) = ok(p.ask([("Action", "Total-Supply")]))["Messages"]
    assert m["Data"] == supply
    ok(p.push(p.pid, [("Action", "Transfer"), ("Recipient", USER.address), ("Quantity", str(huge)), ("Cast", "1")]))
    (m,) = ok(p.ask([("Action", "Burn"), ("Quantity", "400")]))["Messages"]
    assert m["Target"] == USER.address and "Successfully burned" in m["Data"]
    r = p.ask([("Action", "Burn"), ("Quantity", str(huge))])
    assert "Quantity must be less than or equal to the current balance!" in r["Error"]
    (m,) = ok(p.ask([("Action", "Balance")]))["Messages"]
    assert m["Data"] == str(huge - 400)
    (m,) = ok(p.ask([("Action", "Total-Supply")]))["Messages"]
    assert m["Data"] == str(int(supply) - 400)


def test_token_loaded_by_eval_keeps_state_on_reload(spawn):
    p = spawn()
    assert ok(p.eval(blueprint_source("token")))["Output"]["data"] == ""  # aos's `.load-blueprint token`
    assert p.value("Name .. ' ' .. Ticker .. ' ' .. Balances[ao.id]") == f"aos PNTS {INITIAL}"
    ok(p.push(p.pid, [("Action", "Transfer"), ("Recipient", OTHER.address), ("Quantity", "12"), ("Cast", "1")]))
    ok(p.eval(blueprint_source("token")))
    (m,) = ok(p.ask([("Action", "Balance"), ("Recipient", OTHER.address)]))["Messages"]
    assert m["Data"] == "12"
    assert p.value(HANDLER_NAMES) == "_eval,_default,info,balance,balances,transfer,mint,totalSupply,burn"
