"""The native Lua VM's fast paths: handle_many, the flat msg/result crossing, env caching,
amortised compaction. Each must give exactly what the plain path gives."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyao.vm import lua as vm_lua
from tests.unit._lua import MU, OWNER, PID, STRANGER, make_process, message

PROGRAM = """
require('.token')
Handlers.add('odd', 'Odd', function(m)
  -- results of shapes the flat form does not carry: they go as JSON, as before
  table.insert(ao.outbox.Messages, { Target = 'x', Data = 42, Tags = { { name = 'n', value = 'v', extra = true } } })
  ao.outbox.Spawns[1] = {}
end)
Handlers.add('env', 'Env', function(m, env)
  Seen = (Seen or '') .. tostring(env.Process.Scribble) .. ';'
  env.Process.Scribble = 'dirty'
  env.Process.Tags[1].value = 'changed'
  m.reply({ Data = ao.env.Process.Tags[1].value })
end)
Handlers.add('boom', 'Boom', function(m) Counter = (Counter or 0) + 1; error('boom ' .. Counter) end)
Handlers.add('count', 'Count', function(m) Counter = (Counter or 0) + 1; m.reply({ Data = tostring(Counter) }) end)
Handlers.add('tweak', 'Tweak', function(m)
  -- the library's pieces a msg's normalisation depends on, changed one after the other
  Tweaks = (Tweaks or 0) + 1
  if Tweaks == 1 then
    ao.nonExtractableTags = { 'Data-Protocol', 'Variant', 'From', 'Owner', 'Anchor', 'Target', 'Data' } -- not Tags
  elseif Tweaks == 2 then
    local own = ao.normalize
    ao.normalize = function(msg) msg.Normalised = 'yes'; return own(msg) end
  elseif Tweaks == 3 then
    Utils.normalize = function(key) return type(key) == 'string' and key:upper() or key end
  end
end)
Handlers.add('show', 'Show', function(m)
  local names = {}
  for k in pairs(m) do if type(k) == 'string' and type(m[k]) ~= 'function' then names[#names + 1] = k end end
  table.sort(names)
  local tags = {}
  for i, t in ipairs(m.TagArray) do tags[i] = tostring(t.name) .. '=' .. tostring(t.value) end
  m.reply({ Data = table.concat(names, ',') .. ' | ' .. table.concat(tags, ',') .. ' | ' .. tostring(m.Tags.Action)
    .. ' | ' .. type(m.Data) })
end)
"""


def tag(name, value):
    return {"name": name, "value": value}


def script():
    """A mixed log: transfers, odd results, env abuse, failures, unusual msg shapes."""
    msgs = []
    n = 1

    def add(tags, frm=OWNER, data="", **extra):
        nonlocal n
        n += 1
        m = message(f"m-{n:04d}", data, tags, frm=frm, nonce=n)
        m.update(extra)
        msgs.append(m)

    add([tag("Action", "Transfer"), tag("Recipient", OWNER), tag("Quantity", "5000")], frm=PID)
    for i in range(30):
        add([tag("Action", "Transfer"), tag("Recipient", f"{i % 7:043d}"), tag("Quantity", str(i + 1))])
        if i % 5 == 0:
            add([tag("Action", "Boom")])
        if i % 6 == 0:
            add([tag("Action", "Odd")])
        if i % 4 == 0:
            add([tag("Action", "Env")])
        if i % 9 == 0:  # shapes that go as JSON: a nested value, a big integer, a None, a float
            add([tag("Action", "Count")], Extra={"deep": [1, None, 3]})
            add([tag("Action", "Count")], Big=2**70, Nothing=None, Ratio=0.25, Flag=True)
            add([tag("Action", "Count"), {"name": "X-Note", "value": 'é\u0000"\\'}], frm=STRANGER, owner=MU)
        add([tag("Action", "Count")], data="plain")
    odd = [tag("Action", "Show"), tag("content_type", "text/plain"), tag("Action", "Second"), tag("TagArray", "t"),
           tag("Tags", "y"), tag("data_protocol", "z"), tag("X-Thing", "x"), tag("Recipient", "r")]  # fmt: skip
    for _ in range(4):  # (odd tag names, then again after each tweak of the library)
        add(odd)
        add([tag("Action", "Show"), tag("Content-Type", "application/json")], data='{"a": 1}')
        add([tag("Action", "Tweak")])
    add([tag("Action", "Balances")])
    return msgs


def env_of(p):
    return p.env


def run_one_by_one(msgs):
    p = make_process(PROGRAM, compact_every=None)
    p.boot()
    return [p.instance.handle(m, p.env).to_json() for m in msgs], p


@pytest.mark.parametrize("page", [1, 3, 64, 1000])
def test_handle_many_equals_handle_one_by_one(page):
    msgs = script()
    want, ref = run_one_by_one(msgs)
    p = make_process(PROGRAM, compact_every=None)
    p.boot()
    got = []
    for s in range(0, len(msgs), page):
        got += [r.to_json() for r in p.instance.handle_many(msgs[s : s + page], p.env)]
    assert got == want
    assert p.instance.snapshot() == ref.instance.snapshot()
    errors = [r for r in got if "Error" in r]
    assert len(errors) == 6 and all("boom" in r["Error"] for r in errors)


def test_flat_path_equals_json_path(monkeypatch):
    """Every msg forced through JSON (the old way) gives the same results and state."""
    msgs = script()
    want, ref = run_one_by_one(msgs)
    monkeypatch.setattr(vm_lua, "_flatten", lambda msg: None)
    got, p = run_one_by_one(msgs)
    assert got == want
    # the same state (the log's msgs are written from what each path kept, so compare the base)
    assert p.instance._base == ref.instance._base and len(p.instance._log) == len(ref.instance._log)


def test_unusual_results_keep_their_json_shape():
    p = make_process(PROGRAM)
    r = p.send("", Action="Odd")
    assert r.error is None
    assert r.messages == ({"Data": 42, "Tags": [{"extra": True, "name": "n", "value": "v"}], "Target": "x"},)
    assert r.spawns == ([],)  # an empty Lua table is a JSON array


def test_env_changes_do_not_leak_into_the_next_message():
    p = make_process(PROGRAM)
    first = p.send("", Action="Env")
    second = p.send("", Action="Env")
    assert first.messages[0]["Data"] == second.messages[0]["Data"] == "changed"
    assert p.value("Seen") == "nil;nil;"
    # a new env (the CU passes another dict) is picked up
    p.env = json.loads(json.dumps(p.env))
    p.env["Process"]["Scribble"] = "fresh"
    p.send("", Action="Env")
    assert p.value("Seen") == "nil;nil;fresh;"
    # and so is an env changed in place
    p.env["Process"]["Scribble"] = "again"
    p.send("", Action="Env")
    assert p.value("Seen") == "nil;nil;fresh;again;"


def test_amortised_compaction_is_counted_not_timed():
    """Two runs split differently into pages compact at the same messages: equal snapshots
    after every page, and a restore at any point continues identically."""
    msgs = script() * 1
    a = make_process(PROGRAM, compact_every=None)
    b = make_process(PROGRAM, compact_every=None)
    a.boot(), b.boot()
    for s in range(0, len(msgs), 10):
        a.instance.handle_many(msgs[s : s + 10], a.env)
        for m in msgs[s : s + 10]:
            b.instance.handle(m, b.env)
        assert a.instance.snapshot() == b.instance.snapshot()
    assert a.instance._log, "this log is shorter than one compaction period"


def test_compaction_schedule_survives_restore(monkeypatch):
    monkeypatch.setattr(vm_lua, "SERIALISE_WORK", 1000)
    monkeypatch.setattr(vm_lua, "WORK_PER_STATE_BYTE", 0)
    monkeypatch.setattr(vm_lua, "COMPACT_RATIO", 20)  # a compaction every few messages
    msgs = script()
    straight = make_process(PROGRAM, compact_every=None)
    straight.boot()
    full = [r.to_json() for r in straight.instance.handle_many(msgs, straight.env)]
    for cut in (5, 17, 40):
        p = make_process(PROGRAM, compact_every=None)
        p.boot()
        head = [r.to_json() for r in p.instance.handle_many(msgs[:cut], p.env)]
        q = make_process(PROGRAM, compact_every=None)
        q.instance.restore(p.instance.snapshot())
        tail = [r.to_json() for r in q.instance.handle_many(msgs[cut:], q.env)]
        assert head + tail == full
        assert q.instance.snapshot() == straight.instance.snapshot()


def test_a_failure_compacts_so_repeated_failures_stay_cheap():
    p = make_process(PROGRAM, compact_every=None)
    p.boot()
    p.instance.handle_many([m for m in script() if "Boom" not in json.dumps(m["Tags"])][:20], p.env)
    assert p.instance._log
    r = p.send("", Action="Boom")
    assert r.error is not None
    assert not p.instance._log, "the state before the failure became the base"


def test_normal_names_really_are_normal():
    """The library skips utils.normalize for a fixed list of names: each must be a fixed point."""
    source = (Path(vm_lua.__file__).parent.parent / "lua" / "process.lua").read_text()
    block = re.search(r"local NORMAL = \{\}\nfor _, k in ipairs\(\{(.*?)\}\) do", source, re.S).group(1)
    names = re.findall(r'"([^"]+)"', block)
    assert len(names) > 20
    p = make_process()
    listing = ", ".join(json.dumps(n) for n in names)
    out = p.value(
        f"local o = {{}} for _, k in ipairs({{{listing}}}) do o[#o + 1] = Utils.normalize(k) end "
        "return table.concat(o, ' ')"
    )
    assert out.split(" ") == names


@pytest.mark.slow
def test_giant_results_and_msgs_still_cross():
    """Too many values for Lua's stack: a result goes as one JSON string, a msg as JSON."""
    flood = "Handlers.add('flood', 'Flood', function(m) for i = 1, 15000 do Send({ Target = 'x' }) end end)"
    p = make_process(flood, memory=1 << 30, compute=10**9)
    msgs = [
        message("a", "", [tag("Action", "Flood")], nonce=1),
        message("b", "", [tag("Action", "Flood")], nonce=2),
        message("c", "", [tag(f"T{i}", "v") for i in range(20000)], nonce=3),
        message("d", "", [tag("Action", "Flood")], nonce=4),
    ]
    results = p.instance.handle_many(msgs, p.env)
    assert [r.error for r in results] == [None] * 4
    assert [len(r.messages) for r in results] == [15000, 15000, 0, 15000]
    assert results[1].messages[-1]["Anchor"] == f"{30000:032d}"
    assert p.value("#Inbox[1].TagArray") == "20000"


WIRE = r"""
Handlers.add('wire', 'Wire', function(m)
  local n = tonumber(m.Tags.N)
  local payload = m.Tags.Payload
  if payload == 'BAD' then payload = 'bad utf-8 \255\254 cut \226\130' end
  local tags = {}
  for i = 1, n do tags[i] = { name = 'T' .. i, value = string.rep('v', i % 3) } end
  ao.send({ Target = m.Tags.Target, Data = payload, Tags = tags })
  Spawn('MOD', { Data = payload, Extra = 'x\0y' })
  Assign({ Processes = { 'p1', m.Tags.Target }, Message = 'mid' })
  print(payload)
end)
"""


@pytest.mark.parametrize(
    "payload,n,text",
    [
        ("plain", 2, "plain"),
        ("nul\0inside", 2, "nul\0inside"),
        ("del\x7finside", 2, "del\x7finside"),
        ("BAD", 3, "bad utf-8 \ufffd\ufffd cut \ufffd"),
        ("many tags", 300, "many tags"),
        ("nul\0and many", 300, "nul\0and many"),
        ("del\x7fand many", 300, "del\x7fand many"),
    ],
)
def test_result_strings_cross_intact(payload, n, text):
    """A result's strings cross joined with DEL: a string holding DEL (or NUL) itself, invalid
    UTF-8 (decoded as each string alone would be) and a result too big for a compiled builder
    (300 tags) all arrive as they would one by one, as objects and as JSON text."""
    p = make_process(WIRE)
    tags = [tag("Action", "Wire"), tag("N", str(n)), tag("Target", "T\0x"), tag("Payload", payload)]
    r = p.instance.handle(message("wire-1", "", tags), p.env)
    assert r.error is None, r.error
    (msg,) = r.messages
    assert msg["Target"] == "T\0x" and msg["Data"] == text
    assert msg["Tags"][4:] == [tag(f"T{i}", "v" * (i % 3)) for i in range(1, n + 1)]
    assert list(msg) == ["Anchor", "Data", "Tags", "Target"]
    (spawn,) = r.spawns
    assert spawn["Data"] == text and tag("Extra", "x\0y") in spawn["Tags"] and "Target" not in spawn
    assert r.assignments == ({"Message": "mid", "Processes": ["p1", "T\0x"]},)
    assert r.output["data"] == text
    again = make_process(WIRE)
    (got,) = again.instance.result_json_many([message("wire-1", "", tags)], again.env)
    assert got == r.encoded()


@pytest.mark.parametrize("enabled", [True, False])
def test_handle_many_leaves_the_cyclic_collector_as_it_found_it(monkeypatch, enabled):
    """The collector is off while a page runs and back as it was after, also when the page raises."""
    import gc

    seen = []
    real_run = vm_lua._Runtime.run_batch

    def spy(self, *args):
        seen.append(gc.isenabled())
        return real_run(self, *args)

    monkeypatch.setattr(vm_lua._Runtime, "run_batch", spy)
    p = make_process(PROGRAM, compact_every=None)
    p.boot()
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        results = p.instance.handle_many(script()[:5], p.env)
        assert len(results) == 5 and seen and not any(seen)
        assert gc.isenabled() is enabled

        def broken(self, *args):  # once: the rebuild after it replays the log normally
            monkeypatch.setattr(vm_lua._Runtime, "run_batch", real_run)
            raise vm_lua._UnitFailure(OSError("gateway down"))

        monkeypatch.setattr(vm_lua._Runtime, "run_batch", broken)
        with pytest.raises(OSError, match="gateway down"):
            p.instance.handle_many(script()[:2], p.env)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


POOL_PROGRAM = """
Handlers.add('spin', 'Spin', function(m)
  local x = 0
  for i = 1, tonumber(m.Tags.N) do x = x + i end
  m.reply({ Data = tostring(x) })
end)
Handlers.add('keep', 'Keep', function(m)
  Kept = coroutine.running()
  KeptName = tostring(Kept)
end)
Handlers.add('look', 'Look', function(m)
  local now = coroutine.running()
  m.reply({ Data = coroutine.status(Kept) .. ';' .. tostring(now == Kept) .. ';' .. tostring(Kept) .. ';'
    .. tostring(now) .. ';' .. KeptName })
end)
"""


def test_reused_handler_coroutine_counts_as_a_fresh_one():
    """Gas (STEP-granular, so it depends on where the count starts) and results are the same
    whether a message gets a fresh coroutine (after a restore) or the pooled one: two CUs,
    one of them restarted before every message, must agree byte for byte. Checked where the
    gas steps up (an instruction more or less there shows), one restart per message."""
    msgs = [
        message(f"spin-{n:04d}", "", [tag("Action", "Spin"), tag("N", str(n))], nonce=n)
        for n in range(1500, 2100)  # 2 instructions per N: 1,200 instructions, a STEP and more
    ]
    straight = make_process(POOL_PROGRAM, compute=10**8, compact_every=None)
    straight.boot()
    want = [r.to_json() for r in straight.instance.handle_many(msgs, straight.env)]
    steps = [i for i in range(1, len(want)) if want[i]["GasUsed"] != want[i - 1]["GasUsed"]]
    assert steps, "no step in gas over the range: the test could not tell"
    cut = steps[0] - 4
    # state written after every message: a restore is the state alone, no log to replay
    # (a replay would leave a coroutine in the pool), so each message below starts a fresh one
    p = make_process(POOL_PROGRAM, compute=10**8, compact_every=1)
    p.boot()
    p.instance.handle_many(msgs[:cut], p.env)
    got = []
    for m in msgs[cut : cut + 8]:
        fresh = make_process(POOL_PROGRAM, compute=10**8, compact_every=1)
        fresh.instance.restore(p.instance.snapshot())
        p = fresh
        got.append(p.instance.handle(m, p.env).to_json())
    assert got == want[cut : cut + 8]


def test_a_coroutine_the_process_saw_is_not_reused():
    """A handler that keeps coroutine.running() sees it end, as a one-off coroutine does,
    and the next message runs in another one; the same with or without a restore between."""
    p = make_process(POOL_PROGRAM)
    p.boot()
    assert p.send("", Action="Keep").error is None
    first = p.send("", Action="Look")
    assert first.error is None
    status, same, kept, now, kept_then = first.messages[0]["Data"].split(";")
    assert (status, same) == ("dead", "false") and kept == kept_then and now != kept
    second = p.send("", Action="Look")  # the pooled coroutine was seen by Look: not reused either
    assert second.messages[0]["Data"].split(";")[:3] == ["dead", "false", kept]


@pytest.mark.parametrize("page", [1, 5, 1000])
def test_result_json_many_is_the_encoded_handle_many(page):
    """The CU's path (results as JSON text, written from the flat form) gives exactly the text
    of ``encoded()`` of what handle_many gives (failures, JSON-shaped results, env abuse,
    unusual msgs included), and leaves the same state."""
    wire = [tag("Action", "Wire"), tag("N", "300"), tag("Target", "t"), tag("Payload", "big")]
    msgs = [*script(), message("wire-0", "", wire, nonce=999)]
    plain = make_process(PROGRAM + WIRE, compact_every=None)
    plain.boot()
    text = make_process(PROGRAM + WIRE, compact_every=None)
    text.boot()
    want, got = [], []
    for s in range(0, len(msgs), page):
        want += [r.encoded() for r in plain.instance.handle_many(msgs[s : s + page], plain.env)]
        got += text.instance.result_json_many(msgs[s : s + page], text.env)
    assert got == want
    assert text.instance.snapshot() == plain.instance.snapshot()
    assert sum('"Error":' in t for t in got) == 6


ECHO = r"""
Handlers.add('echo', 'Echo', function(m)
  local s = m.Tags.S
  print(s)
  ao.send({ Target = s, Data = s, Tags = { { name = s, value = s }, { name = 'k', value = s .. s } } })
  Spawn('MOD', { Data = s, [s ~= '' and s or 'e'] = s })
  Assign({ Processes = { s, 'p' }, Message = s })
end)
"""

# text with what JSON escapes or Lua treats specially: NUL, quotes, backslashes (and a
# backslash-u0000 of its own), control characters, non-ASCII, surrogate-free astral characters
ODD_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["\0", "\\", '"', "\\u0000", "u0000", "\n", "\r", "\t", "\x1b", "\x7f", "é", "\u2028", "𝄞"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=20,
).map("".join)
_ECHOES: list = []


def _echo_pair():
    if not _ECHOES:
        pair = [make_process(ECHO, compact_every=None) for _ in range(2)]
        for p in pair:
            p.boot()
        _ECHOES.append(pair)
    return _ECHOES[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ODD_TEXT, min_size=1, max_size=4))
def test_result_text_is_byte_identical_for_odd_strings(texts):
    """Whatever the strings hold, the text written from the flat form is byte for byte
    ``json.dumps(result.to_json(), separators=(",", ":"), ensure_ascii=False)``."""
    plain, text = _echo_pair()
    msgs = [message(f"echo-{i}", "", [tag("Action", "Echo"), tag("S", t)], nonce=i) for i, t in enumerate(texts)]
    want = [json.dumps(r.to_json(), separators=(",", ":"), ensure_ascii=False)
            for r in plain.instance.handle_many(msgs, plain.env)]  # fmt: skip
    assert [json.loads(t)["Messages"][0]["Data"] for t in want] == texts
    assert text.instance.result_json_many(msgs, text.env) == want


def test_result_text_of_a_string_holding_the_separator_or_an_escaped_nul():
    """A string holding DEL (the separator) or backslash-u0000 (the escaped NUL) or NUL itself
    still gives the exact text (DEL by the objects' path)."""
    plain, text = _echo_pair()
    msgs = [message(f"esc-{i}", "", [tag("Action", "Echo"), tag("S", t)], nonce=i)
            for i, t in enumerate(["a\\u0000b", "\\\\u0000", "x\0y", "\\", "x\x7fy", "\x7f", "\x7f\x7f"])]  # fmt: skip
    want = [r.encoded() for r in plain.instance.handle_many(msgs, plain.env)]
    assert text.instance.result_json_many(msgs, text.env) == want
    assert json.loads(want[0])["Output"]["data"] == "a\\u0000b"


SHAPES = r"""
local trap = { __index = function() while true do end end, __len = function() while true do end end }
local cases = {
  number_value = function(o) o.Messages[1].Tags[1].value = 5 end,
  number_name = function(o) o.Messages[1].Tags[2].name = 7 end,
  float_data = function(o) o.Messages[1].Data = 3.5 end,
  table_data = function(o) o.Messages[1].Data = { a = 1 } end,
  false_anchor = function(o) o.Messages[1].Anchor = false end,
  true_target = function(o) o.Messages[1].Target = true end,
  missing_value = function(o) o.Messages[1].Tags[1].value = nil end,
  extra_tag_key = function(o) o.Messages[1].Tags[1].extra = 'y' end,
  tag_as_list = function(o) o.Messages[1].Tags[1] = { 'name', 'value' } end,
  tags_with_hole = function(o) o.Messages[1].Tags[2] = nil end,
  tags_as_map = function(o) o.Messages[1].Tags = { Action = 'x' } end,
  empty_item = function(o) o.Messages[2] = {} end,
  only_tags = function(o) o.Messages[2] = { Tags = {} } end,
  string_item = function(o) o.Messages[2] = 'text' end,
  trapped_tag = function(o) setmetatable(o.Messages[1].Tags[1], trap) end,
  trapped_msg = function(o) setmetatable(o.Messages[1], trap) end,
  trapped_list = function(o) setmetatable(o.Messages[1].Tags, trap) end,
  trapped_outbox = function(o) setmetatable(o.Messages, trap); setmetatable(o.Assignments, trap) end,
  number_process = function(o) o.Assignments[1].Processes[2] = 9 end,
  extra_assignment_key = function(o) o.Assignments[1].Extra = 'z' end,
  trapped_assignment = function(o)
    setmetatable(o.Assignments[1], trap)
    setmetatable(o.Assignments[1].Processes, trap)
  end,
  plain = function(o) end,
}
Handlers.add('shape', 'Shape', function(m)
  Send({ Target = 'a', Data = 'd', Kind = 'k' })
  Send({ Target = 'b' })
  Assign({ Processes = { 'p1', 'p2' }, Message = 'mid' })
  cases[m.Tags.Case](ao.outbox)
  if m.Tags.Json == 'yes' then -- a key the flat form does not carry: the whole result goes as JSON
    rawset(ao.outbox.Messages, rawlen(ao.outbox.Messages) + 1, { Zz = "marker" })
  end
end)
"""
SHAPE_CASES = re.findall(r"^  (\w+) = function", SHAPES, flags=re.M)
assert len(SHAPE_CASES) == 22


@pytest.mark.parametrize("case", SHAPE_CASES)
def test_an_outbox_rewritten_after_send_crosses_as_json_would_write_it(case):
    """Whatever a handler does to the outbox after Send (numbers or booleans where strings
    were, missing or extra keys, metatables whose metamethods never end), the result is
    what the JSON path gives for it (forced here by one extra item, then dropped), in
    both result forms, and no metamethod runs on the host's side (it would never end)."""
    plain, json_path, text = (make_process(SHAPES, compute=10**8, compact_every=None) for _ in range(3))
    msg, forced_msg = (message("s-1", "", [tag("Action", "Shape"), tag("Case", case), tag("Json", j)], nonce=1)
                       for j in ("no", "yes"))  # fmt: skip
    (got,) = plain.instance.handle_many([msg], plain.env)
    (forced,) = json_path.instance.handle_many([forced_msg], json_path.env)
    if forced.error is not None:  # JSON cannot write it (a list with a hole): the same error either way
        assert got.error == forced.error and case == "tags_with_hole"
    else:
        assert got.error is None, got.error
        want = forced.to_json()
        assert want["Messages"].pop() == {"Zz": "marker"}
        assert got.to_json() == {**want, "GasUsed": got.gas_used}
    assert text.instance.result_json_many([msg], text.env) == [got.encoded()]


RENAMES = """
Handlers.add('keys', 'Keys', function(m)
  local names = {}
  for k in pairs(m) do
    if type(k) == 'string' and type(m[k]) ~= 'function' and type(m[k]) ~= 'table' then names[#names + 1] = k end
  end
  table.sort(names)
  if m.Tags.Again then -- the library's handle on a msg of the handler's own (it clears the outbox)
    local r = require('process').handle({ Id = 'inner', From = m.From, Owner = m.Owner, my_field = 'x',
      Tags = { { name = 'Action', value = 'Keys' } } }, ao.env)
    Inner = r.Messages[1].Data
    ao.clearOutbox()
  end
  m.reply({ Data = table.concat(names, ',') })
end)
"""


def test_msg_fields_are_renamed_whether_or_not_their_shape_is_all_normal():
    """normalise skips its key walk only for a msg the host built from field names all left
    as they are; a msg with one other name (snake_case, lower case) still has it renamed,
    first by shape and then again in the same runtime, and a handler that runs the library
    on a msg of its own gets it renamed too."""
    p = make_process(RENAMES, compact_every=None)
    p.boot()
    plain = message("k-1", "", [tag("Action", "Keys")], nonce=1)
    odd = {**message("k-2", "", [tag("Action", "Keys"), tag("Again", "1")], nonce=2), "my_field": "v",
           "content_type": "text/plain"}  # fmt: skip
    results = p.instance.handle_many([plain, odd, odd | {"Id": "k-3"}, plain | {"Id": "k-4"}], p.env)
    datas = [r.messages[0]["Data"].split(",") for r in results]
    assert "My-Field" in datas[1] and "Content-Type" in datas[1] and "my_field" not in datas[1]
    assert datas[2] == datas[1] and datas[3] == datas[0] and "My-Field" not in datas[0]
    assert "My-Field" in p.value("Inner").split(",")


def test_compiled_msg_flattener_gives_what_the_general_one_gives():
    """_flatten compiles a flattener per field layout; any msg it does not fit (another kind of
    value somewhere, odd tags) takes the general path, so the tuple is always _flatten_any's."""
    base = message("m-1", "", [tag("Action", "Transfer"), tag("Quantity", "1")])
    odd = ["s", "", 'é\u0000"\\', 5, -(1 << 63), 1 << 63, (1 << 63) - 1, True, False, None, 1.5, float("nan"),
           [1], {"a": 1}, b"x", [], [tag("a", "b")], [{"name": "a"}], [{"name": 1, "value": "b"}],
           [{"name": "a", "value": "b", "c": 1}], ["x"], (tag("a", "b"),)]  # fmt: skip
    msgs = script()
    for key in base:
        for value in odd:
            msgs.append({**base, key: value})  # (same layout, one value of another kind)
    bad_tags = [{"name": "a"}, {"name": 1, "value": "b"}, {"name": "a", "value": b"b"},
                {"name": "a", "value": "b", "c": 1}, {"value": "b", "other": "a"}, "x", None]  # fmt: skip
    for n in range(9):  # (tag lists written out one by one, and longer ones in a loop)
        tags = [tag(f"T{j}", f"v{j}") for j in range(n)]
        msgs.append({**base, "Tags": tags})
        for k in range(n):
            msgs += [{**base, "Tags": [*tags[:k], bad, *tags[k + 1 :]]} for bad in bad_tags]
    msgs += [{**base, "Extra": 1.5}, {"Tags": [], 1: "x"}, {"a\u0000b": "x"}, {}]
    for m in msgs * 2:
        flat = vm_lua._flatten(m)
        assert flat == vm_lua._flatten_any(m)
        assert flat is None or vm_lua._unflatten(flat) == {k: v for k, v in m.items() if v is not None}
