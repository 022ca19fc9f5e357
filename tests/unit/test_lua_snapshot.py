"""Determinism and snapshots of the native Lua VM."""

import hashlib
import json
import subprocess
import sys

import pytest

from pyao.errors import SnapshotError
from tests.unit._lua import MU, STRANGER, make_process

SCRIPT = [
    ("eval", "Balances = {} for i = 1, 50 do Balances['acct' .. i] = i * 7 end"),
    ("eval", "Keyed = {} for i = 1, 5 do Keyed[{ n = i }] = i end T = {} for k in pairs(Keyed) do T[#T+1] = k.n end"),
    (
        "eval",
        "F = function(a) return a + #Balances end; local up = { 1 }; function G() up[1] = up[1] + 1 return up[1] end",
    ),
    ("eval", "R = {} for i = 1, 3 do R[i] = math.random(1e6) end print(tostring({}))"),
    ("eval", "Order = {} for k, v in pairs(Balances) do Order[#Order + 1] = k end print(table.concat(Order, ','))"),
    ("eval", "Handlers.add('x', 'X', function(m) Last = m.Data; G() end)"),
    ("send", "one"),
    ("eval", "error('nope')"),
    ("send", "two"),
    ("eval", "print(G(), F(1), Last, math.random(), 0.1 + 0.2, 2^63, math.maxinteger)"),
]


def run(p, steps):
    out = []
    for kind, data in steps:
        r = p.eval(data) if kind == "eval" else p.send(data, frm=STRANGER, Action="X")
        out.append(r.to_json())
    return out


def test_two_instances_agree():
    a, b = make_process(), make_process()
    assert run(a, SCRIPT) == run(b, SCRIPT)
    assert a.instance.snapshot() == b.instance.snapshot()


def test_agrees_across_os_processes():
    """Lua's string hashing is seeded per OS process: iteration order must not depend on it."""
    here = run(make_process(), SCRIPT)
    code = (
        "import json, sys; sys.path.insert(0, '.');"
        "from tests.unit.test_lua_snapshot import run, SCRIPT; from tests.unit._lua import make_process;"
        "p = make_process(); r = run(p, SCRIPT); import hashlib;"
        "print(json.dumps([r, hashlib.sha256(p.instance.snapshot()).hexdigest()]))"
    )
    there, digest = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert there == json.loads(json.dumps(here))
    p = make_process()
    run(p, SCRIPT)
    assert digest == hashlib.sha256(p.instance.snapshot()).hexdigest()


@pytest.mark.parametrize("compact_every", [1, 3])
def test_restore_then_continue_equals_straight_run(compact_every):
    straight = make_process(compact_every=compact_every)
    full = run(straight, SCRIPT)
    for k in (0, 3, 6, 8):
        p = make_process(compact_every=compact_every)
        head = run(p, SCRIPT[:k]) if k else []
        snap = p.instance.snapshot()
        q = make_process(compact_every=compact_every)
        q.booted = p.booted
        q.nonce = p.nonce
        q.instance.restore(snap)
        assert head + run(q, SCRIPT[k:]) == full
        assert q.instance.snapshot() == straight.instance.snapshot()


def test_pending_receive_survives_a_checkpoint():
    p = make_process()
    p.eval("Handlers.add('ask', 'Ask', function(m) local r = Send({ Target = 'ORACLE' }).receive(); Got = r.Data end)")
    r = p.send("", frm=STRANGER, Action="Ask")
    ref = next(t["value"] for t in r.messages[0]["Tags"] if t["name"] == "Reference")
    snap = p.instance.snapshot()  # a parked coroutine cannot be written: base + the log since
    assert p.instance._log, "the parked Receive keeps the message log"
    q = make_process()
    q.booted, q.nonce = True, p.nonce
    q.instance.restore(snap)
    r = q.send("answer", frm="ORACLE", owner=MU, X_Reference=ref)
    assert r.error is None
    assert q.value("Got") == "answer"
    assert not q.instance._log, "once resumed, the state is serialisable again"
    # an error while a Receive is parked rolls back to a state where it is still parked
    p.eval("error('x')")
    p.send("answer", frm="ORACLE", owner=MU, X_Reference=ref)
    assert p.value("Got") == "answer"


def test_bad_snapshots_are_refused():
    p = make_process()
    snap = p.instance.snapshot()
    with pytest.raises(SnapshotError):
        p.instance.restore(b"garbage")
    with pytest.raises(SnapshotError):
        p.instance.restore(snap[:-3])
    other = make_process("X = 1")
    with pytest.raises(SnapshotError):
        other.instance.restore(snap)
    p.instance.restore(snap)


def test_module_source_runs_after_the_library():
    p = make_process("Handlers.add('ping', 'Ping', function(m) m.reply({ Data = 'pong' }) end) Ready = Name == nil")
    r = p.send("", frm=STRANGER, Action="Ping")
    assert [m["Data"] for m in r.messages] == ["pong"]
    assert p.value("Ready") == "true"


OBJECT_KEYS = [
    (
        "eval",
        """
        Reg = {}
        for i = 1, 6 do Reg[{}] = 'empty ' .. i end                       -- alike keys, different values
        for i = 1, 4 do Reg[function() return i end] = 'closure' end      -- one definition, upvalues differ
        for i = 1, 3 do
          local co = coroutine.create(function(x) coroutine.yield(x) end)
          coroutine.resume(co, i)
          Reg[co] = 'co ' .. i
        end
        Reg[print] = 'builtin'
        Reg[{ tag = 'x' }] = { nested = true }
        """,
    ),
    (
        "eval",
        "local o = {} for k, v in pairs(Reg) do o[#o + 1] = type(k) .. ':' .. tostring(v) end "
        "return table.concat(o, ';')",
    ),
    ("eval", "local n = 0 local k = next(Reg) while k do n = n + 1 k = next(Reg, k) end return n"),
    ("eval", "for k in pairs(Reg) do if type(k) == 'thread' then Reg[k] = nil end end"),  # state without coroutines
]


def test_object_keys_iterate_and_serialise_identically_across_os_processes():
    """Keys that are tables, closures and coroutines: pairs order and snapshot bytes come out the
    same in two OS processes (different string-hash seeds and addresses)."""
    code = (
        "import json, sys, hashlib; sys.path.insert(0, '.');"
        "from tests.unit.test_lua_snapshot import run, OBJECT_KEYS; from tests.unit._lua import make_process;"
        "p = make_process(); r = run(p, OBJECT_KEYS);"
        "print(json.dumps([r, hashlib.sha256(p.instance.snapshot()).hexdigest()]))"
    )
    outs = [
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
        for _ in range(3)
    ]
    assert outs[0] == outs[1] == outs[2]
    results, _digest = outs[0]
    listing = results[1]["Output"]["data"].split(";")
    assert len(listing) == 15
    # alike keys fall back on their values: the empties come in value order
    empties = [x for x in listing if x.startswith("table:empty")]
    assert empties == [f"table:empty {i}" for i in range(1, 7)]
    assert results[2]["Output"]["data"] == "15"


DECIMALS = """
local d = require('decimal')
Handlers.add('sum', 'Sum', function(m)
  -- the library remembers strings it found canonical (decimal) and the prompt it made
  -- last: what it remembers changes how many instructions a message takes, so a restored
  -- or rebuilt instance must remember the same
  local x = Total or '1'
  for i = 1, 40 + (#(m.Data or '') % 7) * 30 do
    x = d.add(x, m.Tags.N)
    if d.lt(m.Tags.N, x) then x = d.sub(x, m.Tags.N) end
  end
  Total = x
  if m.Tags.Fail then error('asked to') end
  m.reply({ Data = x })
end)
"""


@pytest.mark.parametrize("compact_every", [None, 1, 4])
def test_gas_after_restore_or_rollback_equals_a_straight_run(compact_every):
    def steps(p, lo, hi):
        out = []
        for i in range(lo, hi):
            extra = {"Fail": "1"} if i % 5 == 3 else {}
            r = p.send("x" * (i % 9), frm=STRANGER, Action="Sum", N=str(i % 4 + 1), **extra)
            out.append(r.to_json())
        return out

    straight = make_process(DECIMALS, compact_every=compact_every)
    full = steps(straight, 0, 24)
    assert len({r["GasUsed"] for r in full}) > 2  # (the gas differs from message to message)
    for k in (5, 11, 17):
        p = make_process(DECIMALS, compact_every=compact_every)
        head = steps(p, 0, k)
        q = make_process(DECIMALS, compact_every=compact_every)
        q.booted, q.nonce = p.booted, p.nonce
        q.instance.restore(p.instance.snapshot())
        assert head + steps(q, k, 24) == full
