"""The VM's device door (require("devices").call) that llm@1.0 uses, with a small real ProcessDevice:
state kept in the process state (snapshots, rollback), cost charged to the compute limit, errors."""

from __future__ import annotations

import pytest

from pyao.abc import DeviceReply, ProcessDevice
from pyao.errors import DeviceError
from tests.unit._lua import make_process


class Tally(ProcessDevice):
    """tally@1.0: adds numbers; its state is the running total; each unit added costs one instruction."""

    name = "tally@1.0"

    def __init__(self) -> None:
        self.calls = []

    def call(self, state, budget, process, msg, op, args):
        self.calls.append((process.id, msg.get("Id"), op, budget))
        total = int(state or b"0")
        if op == "add":
            (n,) = args
            if n > budget:
                raise DeviceError("over budget")
            return DeviceReply(n, str(total + n).encode(), (total + n,))
        if op == "get":
            return DeviceReply(0, state, (total,))
        if op == "unplugged":
            raise ConnectionError("the gateway is down")
        raise DeviceError(f"unknown op {op}")


def tally(**kw):
    return make_process('T = require("devices")', devices={"tally@1.0": Tally()}, **kw)


def test_state_lives_in_the_process_and_survives_snapshots():
    p = tally(compact_every=2)
    assert p.value('T.call("tally@1.0", "add", 5)') == "5"
    assert p.value('T.call("tally@1.0", "add", 7)') == "12"
    q = tally()
    q.instance.restore(p.instance.snapshot())
    q.booted, q.nonce = True, p.nonce
    assert q.value('T.call("tally@1.0", "get")') == "12"


def test_failed_message_rolls_device_state_back():
    p = tally()
    p.value('T.call("tally@1.0", "add", 5)')
    r = p.eval('T.call("tally@1.0", "add", 100) error("later failure")')
    assert r.error and "later failure" in r.error
    assert p.value('T.call("tally@1.0", "get")') == "5"


def test_cost_counts_against_the_compute_limit():
    p = tally(compute=1_000_000)
    r = p.eval('T.call("tally@1.0", "add", 999000) T.call("tally@1.0", "add", 999000)')
    assert r.error and ("over budget" in r.error or "compute limit exceeded" in r.error)
    assert p.value('T.call("tally@1.0", "get")') == "0"


def test_device_errors_and_unknown_devices_are_lua_errors():
    p = tally()
    r = p.eval('T.call("tally@1.0", "explode")')
    assert r.error and "tally@1.0: unknown op explode" in r.error
    r = p.eval('T.call("nope@1.0", "x")')
    assert r.error and "not available" in r.error
    assert p.eval('return select("#", pcall(T.call, "tally@1.0", "explode"))').error is None


def test_the_device_sees_the_message_being_handled():
    device = Tally()
    p = make_process('T = require("devices")', devices={"tally@1.0": device})
    p.value('T.call("tally@1.0", "add", 1)')
    pid, mid, op, budget = device.calls[-1]
    assert pid == "P" * 43 and mid == f"msg-{p.nonce:04d}" and op == "add" and 0 < budget <= 10**7


def test_a_unit_failure_is_raised_not_recorded_as_the_message_result():
    """A transient failure (the gateway down) must not become a message's permanent Error."""
    p = tally()
    p.value('T.call("tally@1.0", "add", 5)')
    with pytest.raises(ConnectionError, match="gateway is down"):
        p.eval('T.call("tally@1.0", "add", 1) T.call("tally@1.0", "unplugged")')
    assert p.value('T.call("tally@1.0", "get")') == "5"  # the half-done message left nothing
