"""aos process semantics of the native Lua VM (our library, pyao/lua)."""

import json

from tests.unit._lua import MU, OTHER, OWNER, PID, STRANGER, make_process, message


def tags_of(m):
    return {t["name"]: t["value"] for t in m["Tags"]}


def test_eval_expression_and_statement():
    p = make_process()
    r = p.eval("1 + 2")
    assert r.error is None
    assert r.output["data"] == "3" and r.output["print"] is True and "Inbox:" in r.output["prompt"]
    assert p.eval("X = 41").output["data"] == ""
    assert p.value("X + 1") == "42"
    assert p.value("print('a'); print('b')") == "a\nb"
    assert p.value("{ 1, 2, k = 'v' }") == '{\n  1,\n  2,\n  k = "v"\n}'


def test_eval_error_is_an_error_result():
    p = make_process()
    r = p.eval("error('boom')")
    assert r.error is not None and "boom" in r.error
    assert p.eval("this is not lua").error is not None


def test_eval_trust():
    p = make_process()
    p.eval("X = 1")
    r = p.eval("X = 2", frm=STRANGER)  # signed by a stranger: trusted, but not the owner
    assert r.error is None and "New Message From" in r.output["data"]
    assert p.value("X") == "1"
    r = p.send("X = 3", frm=OTHER, owner=STRANGER, Action="Eval")  # pushed by a non-authority
    assert "not trusted" in r.output["data"]
    assert p.value("X") == "1"
    r = p.eval("X = 4", frm=MU)  # an Authority may Eval
    assert r.error is None
    assert p.value("X") == "4"


def test_owner_and_name_from_process_message():
    p = make_process(tags=(("Name", "bob"),))
    p.boot()
    assert p.value("Owner") == OWNER
    assert p.value("Name") == "bob"
    assert p.value("ao.id") == PID
    assert p.value("ao.authorities[1]") == MU


def test_msg_normalisation_and_json_data():
    p = make_process()
    p.eval("Handlers.add('t', 'Test', function(m) Seen = m end)")
    p.send('{"a": [1, 2.5, "x"], "b": null}', Action="Test", content_type="application/json", My_Tag="v")
    assert p.value("Seen.Action") == "Test"
    assert p.value("Seen['My-Tag']") == "v"
    assert p.value("Seen.Tags['Content-Type']") == "application/json"
    assert p.value("Seen.TagArray[1].name") == "Action"
    assert p.value("Seen.Data.a[2]") == "2.5"
    assert p.value("math.type(Seen.Data.a[1])") == "integer"
    assert p.value("Seen.Data.b == nil") == "true"
    assert p.value("tostring(Seen.Type)") == "nil"  # non-extractable tags stay in Tags


def test_handler_pattern_forms():
    p = make_process()
    p.eval(
        """
        Log = {}
        local function log(name) return function() table.insert(Log, name) end end
        Handlers.add('str', 'A', log('str'))
        Handlers.add('exact', { Action = 'B', Color = 'red' }, log('exact'))
        Handlers.add('lpat', { Action = 'C', Qty = '%d+' }, log('lpat'))
        Handlers.add('wild', { Action = 'D', Anything = '_' }, log('wild'))
        Handlers.add('alts', { Action = { 'E1', 'E2' } }, log('alts'))
        Handlers.add('fnval', { Action = 'F', Qty = function(v) return tonumber(v) > 10 end }, log('fnval'))
        Handlers.add('cont', function(m) return m.Action == 'G' and 'continue' or false end, log('cont'))
        Handlers.add('one', function(m) return m.Action == 'G' and 1 or 0 end, log('one'))
        Handlers.add('brk', function(m) return m.Action == 'G' and -1 or 0 end, log('brk'))
        Handlers.add('after-break', function(m) return m.Action == 'G' end, log('never'))
        """
    )
    for action, extra in [
        ("A", {}),
        ("B", {"Color": "RED"}),  # exact match is case-insensitive
        ("B", {"Color": "blue"}),
        ("C", {"Qty": "42"}),
        ("C", {"Qty": "x"}),
        ("D", {"Anything": "z"}),
        ("E2", {}),
        ("F", {"Qty": "11"}),
        ("F", {"Qty": "3"}),
        ("G", {}),
    ]:
        p.send("", Action=action, **extra)
    assert p.value("table.concat(Log, ',')") == "str,exact,lpat,wild,alts,fnval,cont,one,brk"
    assert p.value("#Inbox") == "3"  # the three unmatched went to the default handler


def test_add_forms_once_remove_before_after():
    p = make_process()
    p.eval(
        """
        Log = {}
        local function log(n) return function() table.insert(Log, n) end end
        local function c(m) return m.Action == 'X' and 'continue' or false end
        Handlers.add('b', c, log('b'))
        Handlers.append('c', c, log('c'))
        Handlers.prepend('a', c, log('a'))
        Handlers.before('b').add('a2', c, log('a2'))
        Handlers.after('b').add('b2', c, log('b2'))
        Handlers.once('o', c, log('o'))
        Handlers.add('twice', c, log('t'), 2)
        Handlers.add('X', log('byname'))
        """
    )
    p.send("", Action="X")
    assert p.value("table.concat(Log, ',')") == "o,a,a2,b,b2,c,t,byname"
    p.eval("Log = {}; Handlers.remove('a2')")
    p.send("", Action="X")
    assert p.value("table.concat(Log, ',')") == "a,b,b2,c,t,byname"
    p.eval("Log = {}")
    p.send("", Action="X")
    assert p.value("table.concat(Log, ',')") == "a,b,b2,c,byname"


def test_default_handler_and_inbox():
    p = make_process()
    r = p.send("hello", frm=STRANGER)
    assert r.output["data"] == "New Message From SSS...SSS: Data = hello"
    r = p.send("", frm=STRANGER, Action="Ping")
    assert r.output["data"].endswith("Action = Ping")
    assert p.value("#Inbox") == "2"
    assert p.value("Inbox[1].Data") == "hello"


def test_send_spawn_assign_outputs():
    p = make_process()
    r = p.eval(
        "Send({ Target = 'T1', Action = 'Hi', Data = 'x', Tags = { Extra = '1' } });"
        "Send({ Target = 'T2', Data = { k = 1 } });"
        "Spawn('MOD', { Data = 'code', Name = 'kid' }); Spawn({});"
        "Assign({ Processes = { 'p1', 'p2' }, Message = 'mid' })"
    )
    assert r.error is None
    m1, m2 = r.messages
    assert m1["Target"] == "T1" and m1["Data"] == "x" and m1["Anchor"] == "0" * 31 + "1"
    assert m1["Tags"][:4] == [
        {"name": "Data-Protocol", "value": "ao"},
        {"name": "Variant", "value": "ao.TN.1"},
        {"name": "Type", "value": "Message"},
        {"name": "Reference", "value": "1"},
    ]
    assert tags_of(m1)["Action"] == "Hi" and tags_of(m1)["Extra"] == "1"
    assert json.loads(m2["Data"]) == {"k": 1} and tags_of(m2)["Content-Type"] == "application/json"
    s1, s2 = r.spawns
    assert s1["Data"] == "code" and s1["Anchor"] == "0" * 31 + "3"
    t = tags_of(s1)
    assert (t["Type"], t["From-Process"], t["From-Module"], t["Module"], t["Name"]) == (
        "Process",
        PID,
        p.env["Module"]["Id"],
        "MOD",
        "kid",
    )
    assert s2["Data"] == "NODATA" and tags_of(s2)["Module"] == p.env["Module"]["Id"]
    assert r.assignments == ({"Processes": ["p1", "p2"], "Message": "mid"},)
    assert r.to_json()["Messages"][0]["Target"] == "T1" and "Error" not in r.to_json()


def test_reply_and_forward():
    p = make_process()
    p.eval(
        "Handlers.add('r', 'Ask', function(m) m.reply({ Data = 'answer' }) end);"
        "Handlers.add('f', 'Fwd', function(m) m.forward('ELSEWHERE', { Note = 'n' }) end)"
    )
    r = p.send("", frm=STRANGER, Action="Ask", Reference="7")
    (m,) = r.messages
    assert m["Target"] == STRANGER and m["Data"] == "answer" and tags_of(m)["X-Reference"] == "7"
    r = p.send("", frm=STRANGER, Action="Ask", Reference="8", Reply_To="BOX")
    assert r.messages[0]["Target"] == "BOX"
    r = p.send("payload", frm=STRANGER, Action="Fwd", Reference="9")
    (m,) = r.messages
    t = tags_of(m)
    assert m["Target"] == "ELSEWHERE" and m["Data"] == "payload"
    assert (t["Note"], t["Reply-To"], t["X-Reference"], t["X-Origin"], t["Action"]) == (
        "n",
        STRANGER,
        "9",
        STRANGER,
        "Fwd",
    )


def test_receive_across_messages():
    p = make_process()
    p.eval(
        """
        Handlers.add('ask', 'Ask', function(m)
          local reply = Send({ Target = 'ORACLE', Action = 'Question' }).receive()
          Answer = reply.Data
          m.reply({ Data = 'got ' .. reply.Data })
        end)
        """
    )
    r = p.send("", frm=STRANGER, Action="Ask", Reference="1")
    (q,) = r.messages
    assert q["Target"] == "ORACLE"
    ref = tags_of(q)["Reference"]
    assert p.value("tostring(Answer)") == "nil"
    # a reply from the wrong sender or reference does not resume it
    p.send("wrong", frm="ORACLE", owner=MU, X_Reference="999")
    assert p.value("tostring(Answer)") == "nil"
    r = p.send("42", frm="ORACLE", owner=MU, X_Reference=ref)
    assert r.error is None
    assert p.value("Answer") == "42"
    assert [m["Data"] for m in r.messages] == ["got 42"]
    assert r.messages[0]["Target"] == STRANGER


def test_boot_from_data():
    p = make_process(tags=(("On-Boot", "Data"),))
    r = p.boot("Booted = 'yes'; print('booted')", tags=(("On-Boot", "Data"),))
    assert r.error is None and r.output["data"] == "booted"
    assert p.value("Booted") == "yes"


def test_os_time_and_deterministic_random():
    p = make_process()
    assert p.value("os.time()") == str(1_700_000_000_000 + 1000)

    def seq(proc):
        return proc.value("local t = {} for i = 1, 5 do t[i] = math.random(1000) end return table.concat(t, ',')")

    a, b = make_process(), make_process()
    assert seq(a) == seq(b)
    assert a.value("math.random()") == b.value("math.random()")
    assert 0 <= float(a.value("math.random()")) < 1
    c = make_process()  # same process, but its first message has another id: another seed
    c.instance.handle(message("another-first-message", "", [{"name": "Type", "value": "Process"}]), c.env)
    c.booted = True
    assert seq(c) != seq(make_process())


def test_string_specs_with_dashes_compare_exactly():
    """Ids are full of '-': a spec like {From = "ab-cd"} matches that exact value (as aos)."""
    p = make_process()
    sender = "abc-def" + "x" * 36
    p.eval(f"Handlers.add('from-dashed', {{From = '{sender}'}}, function(m) print('matched ' .. m.From) end)")
    assert "matched " + sender in p.send("", frm=sender, Action="Ping").output["data"]
    assert p.value("return require('utils').matchesPattern('a-b', 'a-b')") == "true"
    assert p.value("return require('utils').matchesPattern('a-b', 'ab')") == "false"


PROMPT = (
    "Colors.green .. (Name or 'aos') .. Colors.gray .. '@' .. Colors.blue .. 'aos-pyao' .. Colors.gray"
    " .. '[Inbox:' .. Colors.red .. tostring(#Inbox) .. Colors.gray .. ']' .. Colors.reset .. '> '"
)


def test_prompt_follows_what_it_is_made_of():
    """The prompt is joined again only when a part of it changed (Prompt keeps the last one):
    every change shows at once, and odd parts (a replaced tostring, a color that is a table
    with __concat) are used as the plain expression would use them."""
    p = make_process()
    steps = [
        "",
        "Name = 'Alice'",
        "Colors.green = '<g>'",
        "table.insert(Inbox, { Id = 'x' })",
        "Colors.gray = 'G'",
        "Calls = 0; tostring = function(v) Calls = Calls + 1; return 'T' .. type(v) end",
        "Colors.red = setmetatable({}, { __concat = function(a, b) return 'R' end })",
        "Colors.red = 'r'",
        "tostring = require('json') and _G.tostring",  # (no change: the replaced one stays)
        "Inbox = setmetatable({}, { __len = function() return 7 end })",
        "Name = nil",
    ]
    for code in steps:
        r = p.eval(code)
        assert r.error is None, (code, r.error)
        want = p.eval(f"Send({{ Target = 'w', Data = {PROMPT} }})")  # (the expression, evaluated by hand)
        assert want.error is None, want.error
        assert r.output["prompt"] == want.messages[0]["Data"] == want.output["prompt"], code
    calls = p.eval("Send({ Target = 'c', Data = string.format('%d', Calls) })").messages[0]["Data"]
    assert int(calls) > 0  # (the replaced tostring was called for the Inbox count)


def test_logs_of_a_long_message_do_not_reach_the_next():
    p = make_process()
    assert p.value("for i = 1, 100 do print(i) end") == "\n".join(str(i) for i in range(1, 101))
    assert p.value("print('one')") == "one"
    assert p.value("2") == "2"


def test_builtin_handlers_are_put_back_as_before():
    """_eval and _default (the first of each name) are put back when missing or changed."""
    p = make_process()
    names = "local t = {} for i, h in ipairs(Handlers.list) do t[i] = h.name end return table.concat(t, ',')"
    before = p.value(names)
    for change in [
        "Handlers.remove('_eval')",
        "Handlers.remove('_default')",
        "for _, h in ipairs(Handlers.list) do if h.name == '_default' then h.maxRuns = 5 end end",
        "table.insert(Handlers.list, 1, { name = '_default', pattern = function() return 0 end, handle = print })",
        "table.insert(Handlers.list, 1, { name = '_eval', pattern = function() return 0 end, handle = print })",
    ]:
        q = make_process()
        q.eval(change)
        q.send("", Action="Nothing")
        got = q.value(names)
        assert got.count("_eval") >= 1 and got.count("_default") >= 1, (change, got)
        assert q.value("1 + 1") == "2", change  # Eval works again
    assert before.endswith("_eval,_default")
