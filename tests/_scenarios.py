"""The six aoconnect end-to-end scenarios (``interop/js/aoconnect-e2e.mjs``), written against the
Python SDK. Test modules import the ``test_sdk_*`` functions and provide a ``scenario_net`` fixture
(a ``ScenarioNet``) for the network they run on: ``pyao up``, or the units as separate processes.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyao.client.connect import Connection
from pyao.data import is_id


@dataclass
class ScenarioNet:
    ao: Connection
    module: str
    scheduler: str
    mu_address: str
    owner: str

    def spawn(self, name: str, extra: list[tuple[str, str]] | None = None) -> str:
        tags = [("Name", name), ("Authority", self.mu_address), *(extra or [])]
        return self.ao.spawn(self.module, self.scheduler, tags=tags)

    def evaluate(self, pid: str, code: str) -> tuple[str, dict[str, Any]]:
        message = self.ao.message(pid, tags=[("Action", "Eval")], data=code)
        return message, self.ao.result(message, pid)

    def ask(self, pid: str, action: str, tags: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """A dry run of ``Action=action`` as the wallet (the processes' owner)."""
        return self.ao.dryrun(pid, tags=[("Action", action), *(tags or [])], owner=self.owner)

    def ask_json(self, pid: str, action: str) -> Any:
        return json.loads(first_data(self.ask(pid, action)) or "null")


def output(result: dict[str, Any]) -> Any:
    out = result.get("Output")
    return out.get("data") if isinstance(out, dict) else out


def first_data(result: dict[str, Any]) -> str | None:
    messages = result.get("Messages") or []
    return messages[0].get("Data") if messages else None


def tag(tags: list[dict[str, str]], name: str) -> str | None:
    return next((t["value"] for t in tags if t["name"] == name), None)


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def outputs(page: dict[str, Any]) -> list[Any]:
    return [output(edge["node"]) for edge in page["edges"]]


# ---------------------------------------------------------------- the scenarios


def test_sdk_spawn_message_eval_and_result(scenario_net):
    net = scenario_net
    pid = net.spawn("sdk-basic")
    assert is_id(pid)
    _, added = net.evaluate(
        pid,
        'Handlers.add("ping", "Ping", function(m) m.reply({ Action = "Pong", Data = "pong:" .. (m.Data or "") }) end)\n'
        'return "handler added"',
    )
    assert added.get("Error") is None and output(added) == "handler added"
    assert "sdk-basic" in added["Output"]["prompt"]
    ping_id = net.ao.message(pid, tags=[("Action", "Ping")], data="hello")
    ping = net.ao.result(ping_id, pid)
    assert ping.get("Error") is None
    assert [(m["Target"], m["Data"], tag(m["Tags"], "Action")) for m in ping["Messages"]] == [
        (net.owner, "pong:hello", "Pong")
    ]
    assert output(net.evaluate(pid, "return 6 * 7")[1]) == "42"


def test_sdk_results_pages_both_ways_and_dryrun_changes_nothing(scenario_net):
    net = scenario_net
    pid = net.spawn("sdk-results")
    net.evaluate(
        pid,
        """Counter = 0
        Handlers.add("inc", "Inc", function(m) Counter = Counter + 1; print("counter " .. Counter) end)
        Handlers.add("get", "Get", function(m) m.reply({ Action = "Got", Data = tostring(Counter) }) end)
        return "ok" """,
    )
    incs = [net.ao.message(pid, tags=[("Action", "Inc")], data=f"inc {i}") for i in range(4)]
    assert output(net.ao.result(incs[-1], pid)) == "counter 4"

    everything = ["", "ok", *(f"counter {i}" for i in range(1, 5))]
    page = net.ao.results(pid, sort="ASC", limit=100)
    assert outputs(page) == everything and page["pageInfo"]["hasNextPage"] is False
    cursors = [edge["cursor"] for edge in page["edges"]]
    decoded = [json.loads(base64.b64decode(c)) for c in cursors]
    assert [d["ordinate"] for d in decoded] == [str(n) for n in range(6)]

    for sort, expected in (("ASC", everything), ("DESC", everything[::-1])):
        seen, cursor = [], None
        for _ in range(10):
            page = net.ao.results(pid, from_=cursor, sort=sort, limit=2)
            assert len(page["edges"]) <= 2
            seen += outputs(page)
            if not page["pageInfo"]["hasNextPage"]:
                break
            cursor = page["edges"][-1]["cursor"]
        assert seen == expected, sort
    assert outputs(net.ao.results(pid, from_=cursors[1], to=cursors[3])) == ["counter 1", "counter 2"]
    assert outputs(net.ao.results(pid, sort="DESC", limit=2)) == ["counter 4", "counter 3"]

    got = net.ask(pid, "Get")
    assert first_data(got) == "4" and tag(got["Messages"][0]["Tags"], "Action") == "Got"
    plain = net.ao.dryrun(pid, tags=[("Action", "Get")])  # aoconnect's defaults: Owner "1234"
    assert first_data(plain) == "4" and plain["Messages"][0]["Target"] == "1234"
    assert output(net.ask(pid, "Inc")) == "counter 5"  # the handler ran ...
    assert first_data(net.ask(pid, "Get")) == "4"  # ... and nothing stuck
    assert output(net.evaluate(pid, "return Counter")[1]) == "4"
    assert len(net.ao.results(pid, limit=100)["edges"]) == 7


def test_sdk_monitor_a_cron_process_that_sends_to_another(scenario_net):
    net = scenario_net
    sink = net.spawn("sdk-sink")
    net.evaluate(
        sink,
        """Ticks = {}
        Handlers.add("tick", "Tick", function(m) table.insert(Ticks, m.From) end)
        Handlers.add("ticks", "Ticks", function(m) m.reply({ Data = require("json").encode(Ticks) }) end)
        return "sink ready" """,
    )
    cron = net.spawn("sdk-cron", [("Cron-Interval", "1-second"), ("Cron-Tag-Action", "Cron")])
    _, ready = net.evaluate(
        cron,
        f"""Fired = 0
        Handlers.add("cron", "Cron", function(m)
          Fired = Fired + 1
          print("cron tick " .. Fired)
          Send({{ Target = "{sink}", Action = "Tick", Data = tostring(Fired) }})
        end)
        return "cron ready" """,
    )
    assert output(ready) == "cron ready"
    assert net.ao.monitor(cron)
    ticks = wait_for(lambda: net.ask_json(sink, "Ticks") or [], lambda t: len(t) >= 2)
    assert len(ticks) >= 2 and set(ticks) == {cron}  # pushed by the MU, From = the cron process
    page = net.ao.results(cron, limit=100)
    assert [o for o in outputs(page) if str(o).startswith("cron tick")][:2] == ["cron tick 1", "cron tick 2"]
    assert {m["Target"] for e in page["edges"] for m in e["node"]["Messages"]} == {sink}
    assert any(json.loads(base64.b64decode(e["cursor"])).get("cron") is not None for e in page["edges"])
    assert net.ao.unmonitor(cron)


def test_sdk_assign_an_existing_message_to_another_process(scenario_net):
    net = scenario_net
    first, second = net.spawn("sdk-assign-a"), net.spawn("sdk-assign-b")
    code = """Notes = {}
      Handlers.add("note", "Note", function(m) table.insert(Notes, m.Id .. ":" .. m.Data); print("noted " .. m.Id) end)
      Handlers.add("notes", "Notes", function(m) m.reply({ Data = require("json").encode(Notes) }) end)
      return "notes ready" """
    net.evaluate(first, code)
    net.evaluate(second, code)
    note = net.ao.message(first, tags=[("Action", "Note")], data="remember me")
    assert output(net.ao.result(note, first)) == f"noted {note}"
    assert is_id(net.ao.assign(second, note))
    assert wait_for(lambda: net.ask_json(second, "Notes") or [], bool) == [f"{note}:remember me"]
    assert net.ask_json(first, "Notes") == [f"{note}:remember me"]
    assigned = net.ao.result(note, second)
    assert assigned.get("Error") is None and output(assigned) == f"noted {note}"


NOTICES = """Notices = {{}}
Handlers.add("credit", "Credit-Notice", function(m)
  table.insert(Notices, "credit:" .. m.From .. ":" .. m.Sender .. ":" .. m.Quantity)
  print("credit " .. m.Quantity .. " from " .. m.Sender)
  {refund}
end)
Handlers.add("debit", "Debit-Notice", function(m)
  table.insert(Notices, "debit:" .. m.From .. ":" .. m.Recipient .. ":" .. m.Quantity)
  print("debit " .. m.Quantity .. " to " .. m.Recipient)
end)
Handlers.add("notices", "Notices", function(m) m.reply({{ Data = require("json").encode(Notices) }}) end)
return "notices ready" """


def test_sdk_transfer_between_two_token_processes(scenario_net):
    """Two processes load pyao's token blueprint; alpha pays beta 250 on alpha's ledger, beta pays
    100 back on the Credit-Notice: each process gets a Debit-Notice and a Credit-Notice."""
    net = scenario_net
    alpha, beta = net.spawn("sdk-token-alpha"), net.spawn("sdk-token-beta")
    refund = (
        f'if m.From == "{alpha}" then '
        'Send({ Target = m.From, Action = "Transfer", Recipient = m.From, Quantity = "100" }) end'
    )
    for pid, on_credit in ((alpha, ""), (beta, refund)):
        _, loaded = net.evaluate(pid, 'require(".token"); return Ticker')
        assert loaded.get("Error") is None and output(loaded) == "PNTS"
        assert output(net.evaluate(pid, NOTICES.format(refund=on_credit))[1]) == "notices ready"
    supply = int(output(net.evaluate(alpha, "return TotalSupply")[1]))
    _, kick = net.evaluate(
        alpha, f'Send({{ Target = ao.id, Action = "Transfer", Recipient = "{beta}", Quantity = "250" }})'
    )
    assert [(m["Target"], tag(m["Tags"], "Action")) for m in kick["Messages"]] == [(alpha, "Transfer")]

    alpha_notices = wait_for(lambda: net.ask_json(alpha, "Notices") or [], lambda n: len(n) >= 2)
    beta_notices = wait_for(lambda: net.ask_json(beta, "Notices") or [], lambda n: len(n) >= 2)
    assert sorted(alpha_notices) == sorted([f"debit:{alpha}:{beta}:250", f"credit:{alpha}:{beta}:100"])
    assert sorted(beta_notices) == sorted([f"credit:{alpha}:{alpha}:250", f"debit:{alpha}:{alpha}:100"])
    assert net.ask_json(alpha, "Balances") == {alpha: str(supply - 150), beta: "150"}
    assert net.ask_json(beta, "Balances") == {beta: str(supply)}
    balance = net.ask(alpha, "Balance", [("Recipient", beta)])
    assert tag(balance["Messages"][0]["Tags"], "Balance") == "150" == first_data(balance)

    def history(pid: str) -> tuple[list[tuple[str, str]], set[str]]:
        page = net.ao.results(pid, limit=100)
        sent = [(m["Target"], tag(m["Tags"], "Action")) for e in page["edges"] for m in e["node"]["Messages"]]
        return sent, {str(o) for o in outputs(page) if o}

    alpha_sent, alpha_printed = history(alpha)
    assert sorted(alpha_sent) == sorted(
        [
            (alpha, "Transfer"),
            (alpha, "Debit-Notice"),
            (beta, "Credit-Notice"),
            (beta, "Debit-Notice"),
            (alpha, "Credit-Notice"),
        ]
    )
    beta_sent, beta_printed = history(beta)
    assert beta_sent == [(alpha, "Transfer")]
    assert {f"debit 250 to {beta}", f"credit 100 from {beta}"} <= alpha_printed
    assert {f"credit 250 from {alpha}", f"debit 100 to {alpha}"} <= beta_printed


def test_sdk_a_process_spawns_another_and_gets_spawned(scenario_net):
    net = scenario_net
    parent = net.spawn("sdk-parent")
    _, kick = net.evaluate(
        parent,
        f"""Children = {{}}
        Handlers.add("spawned", "Spawned", function(m)
          table.insert(Children, m.Process); print("spawned " .. m.Process)
        end)
        Handlers.add("children", "Children", function(m) m.reply({{ Data = require("json").encode(Children) }}) end)
        Spawn(ao._module, {{ Data = "child data", Name = "sdk-child", Authority = "{net.mu_address}" }})
        return "spawning" """,
    )
    assert output(kick) == "spawning" and len(kick["Spawns"]) == 1
    children = wait_for(lambda: net.ask_json(parent, "Children") or [], bool)
    assert len(children) == 1 and is_id(children[0])
    child = children[0]
    page = wait_for(lambda: net.ao.results(child, limit=10), lambda p: len(p["edges"]) >= 1)
    assert len(page["edges"]) >= 1
    probe = net.ao.dryrun(child, tags=[("Action", "Eval")], data="return Owner .. '|' .. Name", owner=parent)
    assert output(probe) == f"{parent}|sdk-child"  # its Owner is the spawner
