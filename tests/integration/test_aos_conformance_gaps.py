"""aos conformance, the rules test_aos_conformance.py did not reach yet: Handlers.utils
helpers, table-form handles, Owner taken from From-Process on a spawned process, and the
Spawn → Spawned flow. Same harness: a real SU and CU over HTTP."""

from __future__ import annotations

import pytest

from tests._cu import OTHER, USER
from tests.integration import test_aos_conformance as base
from tests.integration.test_aos_conformance import MU, ORACLE, Proc, ok, printed, tags_of

# the shared fixtures (one network and CU for this module too)
net, cu, modules, spawn = base.net, base.cu, base.modules, base.spawn


def test_handlers_utils_helpers(spawn):
    p = spawn()
    ok(
        p.eval(
            """
            local U = Handlers.utils
            Handlers.add('tag', U.hasMatchingTag('Action', 'Tag'), function() print('tag') end)
            Handlers.add('tagof', U.hasMatchingTagOf('Action', { 'One', 'Two' }), function() print('tagof') end)
            Handlers.add('data', U.hasMatchingData('ping'), U.reply('pong'))
            Handlers.add('cont', U.continue(U.hasMatchingTag('Action', 'Both')), function() print('first') end)
            Handlers.add('both', U.hasMatchingTag('Action', 'Both'), function() print('second') end)
            Handlers.add('tbl', U.hasMatchingTag('Action', 'Tbl'), U.reply({ Action = 'Tabled', Data = 'ok' }))
            """
        )
    )
    assert printed(p.ask([("Action", "Tag")])) == ["tag"]
    assert printed(p.ask([("Action", "Two")])) == ["tagof"]
    (m,) = ok(p.ask([], "ping", signer=OTHER))["Messages"]
    assert (m["Target"], m["Data"]) == (OTHER.address, "pong")
    assert printed(p.ask([("Action", "Both")])) == ["first", "second"]  # continue, then the next one
    (m,) = ok(p.ask([("Action", "Tbl"), ("Reference", "8")]))["Messages"]
    assert (tags_of(m)["Action"], m["Data"], tags_of(m)["X-Reference"]) == ("Tabled", "ok", "8")


def test_table_form_handle_picks_by_pattern(spawn):
    p = spawn()
    ok(
        p.eval(
            """
            Handlers.add('router', 'Route', {
              [function(m) return m.Kind == 'a' end] = function() print('route a') end,
              [function(m) return m.Kind == 'b' end] = function() print('route b') end,
            })
            """
        )
    )
    assert printed(p.ask([("Action", "Route"), ("Kind", "a")])) == ["route a"]
    assert printed(p.ask([("Action", "Route"), ("Kind", "b")])) == ["route b"]
    assert ok(p.ask([("Action", "Route"), ("Kind", "c")]))["Output"]["data"] == ""


def test_owner_of_a_spawned_process_is_its_parent(net, cu, modules):
    """A process spawned by another (its MU pushes the Process item with From-Process) is owned
    by that process: the parent's messages may Eval, the signer of the item may not."""
    pid = net.spawn(modules["plain"], [("Authority", MU.address), ("From-Process", ORACLE)], signer=OTHER)
    p = Proc(net, cu, pid)
    assert p.value("Owner") == ORACLE
    r = ok(p.push(ORACLE, [("Action", "Eval")], "return 'parent ok'"))
    assert r["Output"]["data"] == "parent ok"
    # OTHER signed the spawn but is neither owner nor authority: its Eval is an ordinary message
    r = ok(p.ask([("Action", "Eval")], "return 'should not run'", signer=OTHER))
    assert "should not run" not in r["Output"]["data"] and "New Message From" in r["Output"]["data"]
    # an Authority's own message may Eval (pyao, like aos 2.0.x for trusted MUs)
    assert ok(p.ask([("Action", "Eval")], "return ao.authorities[1] ~= nil", signer=MU))["Output"]["data"] == "true"


def test_spawn_then_spawned_notice_runs_the_callback(spawn, modules):
    p = spawn()
    ok(
        p.eval(
            """
            Handlers.add('make', 'Make', function(m)
              local h = Spawn({ Data = 'child', Name = 'kid' })
              h.after(function(n) print('child is ' .. n.Process) end)
            end)
            """
        )
    )
    r = ok(p.ask([("Action", "Make")]))
    (s,) = r["Spawns"]
    t = tags_of(s)
    assert (t["Type"], t["Name"], s["Data"], t["From-Process"]) == ("Process", "kid", "child", p.pid)
    ref = t["Reference"]
    # the MU tells the parent, as from the parent itself, with the Reference of the spawn
    child = "child-process-" + "c" * 29
    out = p.push(p.pid, [("Action", "Spawned"), ("Reference", ref), ("Process", child)])
    assert printed(out) == [f"child is {child}"]
    # a second notice finds no callback: it is an ordinary message
    assert "New Message From" in ok(p.push(p.pid, [("Action", "Spawned"), ("Reference", ref)]))["Output"]["data"]


@pytest.mark.parametrize("who", ["owner", "stranger"])
def test_message_from_owner_or_stranger_reaches_default(spawn, who):
    p = spawn()
    signer = USER if who == "owner" else OTHER
    r = ok(p.ask([("Action", "Nothing")], "x", signer=signer))
    short = signer.address[:3] + "..." + signer.address[-3:]
    assert printed(r) == [f"New Message From {short}: Action = Nothing"]
    assert p.value("#Inbox") == "1"
