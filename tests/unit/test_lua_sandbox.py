"""The native Lua VM's sandbox, limits and atomicity."""

import pytest

from tests.unit._lua import make_process


@pytest.fixture(scope="module")
def proc():
    p = make_process()
    p.boot()
    return p


@pytest.mark.parametrize(
    "code",
    [
        "os.execute('true')",
        "io.open('/etc/passwd')",
        "require('os')",
        "require('io')",
        "require('debug')",
        "debug.getregistry()",
        "python.eval('1')",
        "python.builtins",
        "loadstring('return 1')",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "collectgarbage('count')",
        "string.dump(print)",
        "getmetatable('').__index.dump",
        "assert(load(string.char(27) .. 'LuaS'))()",
        "package.loadlib('x', 'y')",
        "setmetatable({}, { __gc = function() end })",
    ],
)
def test_escapes_fail(proc, code):
    r = proc.eval(code)
    assert r.error is not None, code


def test_no_host_objects_reachable(proc):
    assert proc.value("type(python)") == "nil"
    assert proc.value("type(debug)") == "nil"
    assert proc.value("tostring(getmetatable(''))") == "false"
    # a binary chunk is refused by load itself
    assert "binary" in proc.value("select(2, load(string.char(27) .. 'LuaS'))")
    # the only globals are the sandbox's
    names = proc.value(
        "local t = {} for k in pairs(_G) do if type(k) == 'string' then t[#t+1] = k end end return table.concat(t, ' ')"
    ).split()
    assert not {"io", "debug", "python", "dofile", "loadfile", "collectgarbage"} & set(names)
    assert proc.value("require('json').encode({ a = 1 })") == '{"a":1}'


def test_infinite_loop_then_keeps_working():
    p = make_process(compute=10**6)
    p.eval("X = 1")
    r = p.eval("X = 2; while true do end")
    assert r.error is not None and "compute limit" in r.error
    assert p.value("X") == "1"
    r = p.eval("X = 3; pcall(function() while true do end end); X = 4")  # catching it does not help
    assert r.error is not None
    assert p.value("X") == "1"
    r = p.eval("X = 5; coroutine.wrap(function() while true do end end)()")
    assert r.error is not None
    assert p.value("X") == "1"


@pytest.mark.parametrize(
    "bomb",
    [
        "local s = string.rep('x', 200 * 1024 * 1024)",
        "local t = {} for i = 1, 1e8 do t[i] = i end",
        "local s = 'x' for i = 1, 40 do s = s .. s end",
    ],
)
def test_memory_bomb(bomb):
    p = make_process(memory=32 << 20, compute=10**9)
    p.eval("X = 1")
    r = p.eval("X = 2; " + bomb)
    assert r.error is not None
    assert p.value("X") == "1"


def test_deep_recursion():
    p = make_process(compute=10**8)
    r = p.eval("local function f(n) return 1 + f(n + 1) end return f(1)")
    assert r.error is not None and "stack overflow" in r.error
    r = p.eval("local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x")
    assert r.error is not None
    assert p.value("1") == "1"


def test_failed_handler_rolls_back_everything():
    p = make_process()
    p.eval(
        """
        Count = 0; Nested = { list = { 1, 2 } }
        local hidden = 10
        function Hidden() return hidden end
        Handlers.add('bump', 'Bump', function(m)
          Count = Count + 1
          Nested.list[3] = 3
          Nested.new = {}
          hidden = hidden + 1
          Inbox[#Inbox + 1] = 'junk'
          Handlers.add('sneaky', 'S', function() end)
          math.random()
          Send({ Target = 'x' })
          if m.Fail then error('handler failed') end
        end)
        """
    )
    before = p.value("Count .. #Nested.list .. tostring(Nested.new) .. Hidden() .. #Inbox .. #Handlers.list")
    r = p.send("", Action="Bump", Fail="yes")
    assert r.error is not None and "handler failed" in r.error
    assert r.messages == ()
    after = p.value("Count .. #Nested.list .. tostring(Nested.new) .. Hidden() .. #Inbox .. #Handlers.list")
    assert after == before
    r = p.send("", Action="Bump")
    assert r.error is None and len(r.messages) == 1
    assert p.value("Count .. Hidden() .. #Nested.list") == "1113"
