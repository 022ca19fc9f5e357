"""The native Lua sandbox seen from outside: escape attempts and resource bombs sent through a
real SU to a real CU over HTTP. Each ends in an ``Error`` result, leaves the state as it was,
and the CU keeps answering (for this process and for another one)."""

from __future__ import annotations

import os
import time

import pytest

from tests._cu import MODULE_SOURCE, network

ATTEMPTS = {
    "os.execute": "os.execute('touch /tmp/pyao-escaped')",
    "io.open of a host path": "return io.open('/etc/passwd'):read('a')",
    "require of a host module": "return require('os').getenv('HOME')",
    "require of a C module": "return package.loadlib('/lib/x86_64-linux-gnu/libc.so.6', 'system')",
    "debug": "return debug.getregistry()",
    "bytecode load": "return load(string.dump(function() end))",
    "bytecode load, raw": "return load('\\27Lua' .. string.rep('\\0', 40))()",
    "lupa's python": 'return python.eval(\'__import__("os").system("true")\')',
    "string.rep memory bomb": "local s = string.rep('x', 1 << 30) return #s",
    "doubling memory bomb": "local s = 'x' for i = 1, 40 do s = s .. s end return #s",
    "endless loop": "while true do end",
    "endless loop in pcall": "pcall(function() while true do end end)",
    "deep recursion": "local function f(n) return 1 + f(n + 1) end return f(1)",
    "backtracking pattern": "return string.rep('a', 20000):find('a-a-a-a-b')",
    "empty string.rep": "return #string.rep('', 1 << 40) .. string.rep('x', 1 << 40)",
    "table.insert over a huge __len": "table.insert(setmetatable({}, { __len = function() return 1 << 50 end }), 1, 0)",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with network(tmp_path_factory.mktemp("lua-sandbox-cu")) as net, net.cu(name="sandbox") as cu:
        module = net.module(MODULE_SOURCE)
        limits = [("Compute-Limit", "20000000"), ("Memory-Limit", "64-mb")]
        pid = net.spawn(module, limits)
        other = net.spawn(module, limits)
        yield net, cu, pid, other


def result(cu, pid, m):
    r = cu.get(f"/result/{m['id']}", params={"process-id": pid})
    assert r.status_code == 200, r.text
    return r.json()


def evaluate(net, cu, pid, code):
    return result(cu, pid, net.send(pid, [("Action", "Eval")], code))


@pytest.mark.slow
def test_escapes_and_bombs_are_contained(setup):
    net, cu, pid, other = setup
    r = evaluate(net, cu, pid, "Marker = 'before'; Count = 0")
    assert "Error" not in r, r
    for name, code in ATTEMPTS.items():
        t = time.monotonic()
        r = evaluate(net, cu, pid, "Marker = 'touched'; Count = Count + 1; " + code)
        took = time.monotonic() - t
        assert "Error" in r, (name, r)
        assert took < 30, (name, took)
        state = evaluate(net, cu, pid, "return Marker .. ' ' .. Count")
        assert state["Output"]["data"] == "before 0", (name, state)
    # the CU answers, for this process and for another
    assert cu.get("/").status_code == 200
    pong = result(cu, other, net.send(other, [("Action", "Ping")]))
    assert [m["Data"] for m in pong["Messages"]] == ["pong 1"]
    ok = evaluate(net, cu, pid, "Count = Count + 1; return Count")
    assert ok["Output"]["data"] == "1"
    assert not os.path.exists("/tmp/pyao-escaped")
