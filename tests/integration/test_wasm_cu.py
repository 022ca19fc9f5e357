"""A WASM process (our C kit modules) end to end: real gateway + SU + CU over HTTP on loopback."""

from __future__ import annotations

import hashlib

import pytest

from tests._cu import USER, network
from tests.unit._wasm import W32, W64, kit_bytes


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with network(tmp_path_factory.mktemp("wasm-net")) as n:
        yield n


def _result(cu, pid, message):
    r = cu.get(f"/result/{message['id']}", params={"process-id": pid})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("fmt", [W32, W64])
def test_counter_process_over_http(net, fmt):
    module = net.module(kit_bytes("counter", fmt), module_format=fmt,
                        memory_limit="64-mb")  # fmt: skip
    pid = net.spawn(module)
    sent = [net.send(pid, [("Action", a)]) for a in
            ("Increment", "Increment", "Increment-Then-Fail", "Increment-Then-Trap", "Increment", "Read")]  # fmt: skip
    with net.cu(name=f"a-{fmt[:6]}") as a, net.cu(name=f"b-{fmt[:6]}") as b:
        outputs = [_result(a, pid, m) for m in sent]
        assert [o.get("Output") for o in outputs] == [1, 2, "", "", 3, 3]
        assert outputs[2]["Error"] == "failed after incrementing"
        assert "unreachable" in outputs[3]["Error"]
        assert outputs[0]["GasUsed"] == 0 and list(outputs[0]) == ["Messages", "Spawns", "Assignments", "Output",
                                                                   "GasUsed"]  # fmt: skip
        dry = a.post("/dry-run", params={"process-id": pid}, json={"Tags": [{"name": "Action", "value": "Increment"}]})
        assert dry.status_code == 200 and dry.json()["Output"] == 4
        assert _result(b, pid, sent[-1]) == outputs[-1]  # a second CU, evaluated in one go
        state_a, state_b = a.get(f"/state/{pid}").content, b.get(f"/state/{pid}").content
        assert hashlib.sha256(state_a).digest() == hashlib.sha256(state_b).digest()
        later = net.send(pid, [("Action", "Increment")])
        assert _result(a, pid, later)["Output"] == 4  # the dry run changed nothing


def test_echo_process_outbox_over_http(net):
    module = net.module(kit_bytes("echo", W64), module_format=W64)
    pid = net.spawn(module)
    m = net.send(pid, [("Action", "Say")], "hello from wasm64")
    with net.cu(name="echo") as cu:
        out = _result(cu, pid, m)
        assert out["Output"] == "hello from wasm64"
        (reply,) = out["Messages"]
        assert reply["Target"] == USER.address and reply["Data"] == "hello from wasm64"
