"""WASM modules reach llm@1.0 through the ``pyao.device_call`` import (kit/wasm/llm.c), on a generated
tiny model read through a drive path: the same tokens on two instances and after snapshot/restore
(the device state travels in the WASM snapshot), constrained output parses, the token cost is charged
as fuel and a spent budget is an Error, and a failed message rolls the device state back."""

from __future__ import annotations

import json

import pytest

from pyao.vm.wasm import _snapshot
from tests.unit._llm import MODEL_PATH, device_for, tiny_model_file
from tests.unit._wasm import ENV, W32, W32_METERED, W64_METERED, context, make, msg

pytest.importorskip("llama_cpp")

SCHEMA = {"type": "object", "properties": {"grade": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]}},
          "required": ["grade"]}  # fmt: skip


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    root = tmp_path_factory.mktemp("wasm-llm")
    return device_for(root, tiny_model_file(root, seed=5))


def call(p, action: str, data: str = "", nonce: int = 1, **tags):
    m = msg(action, data, nonce)
    m["Tags"] += [{"name": k, "value": str(v)} for k, v in tags.items()]
    return p.handle(m, ENV)


def values(result) -> list:
    assert result.error is None, result.error
    assert result.output["ok"] is True
    return result.output["values"]


def session(p, first_nonce: int = 1) -> list:
    """Load, prompt, run twice: the outputs (each a list of the device's values)."""
    steps = [("Load", MODEL_PATH, {}), ("Prompt", "the llama king", {}), ("Run", "", {"Tokens": 6}),
             ("Add", " and the petition", {}), ("Run", "", {"Tokens": 6})]  # fmt: skip
    return [values(call(p, a, d, first_nonce + i, **t)) for i, (a, d, t) in enumerate(steps)]


@pytest.mark.parametrize("fmt", [W32, W64_METERED])
def test_two_instances_decode_the_same_tokens(device, fmt):
    a, b = (make("llm", fmt, devices={"llm@1.0": device}) for _ in range(2))
    first, second = session(a), session(b)
    assert first == second
    assert isinstance(first[2][0], str) and first[2][0], "six tokens of text"
    assert first[2] != first[4]


@pytest.mark.parametrize("in_base", [True, False])  # the device state in the base image, or replayed from the log
def test_snapshot_restore_carries_the_session(device, in_base):
    a = make("llm", W32, devices={"llm@1.0": device}, compact_every=1000)
    a.compact_on_device_call = in_base
    session(a)
    snap = a.snapshot()
    decoded = _snapshot.decode(snap, W32, a._digest)
    if in_base:
        assert dict(decoded.devices)["llm@1.0"] == a.device_states["llm@1.0"] and not decoded.log
    else:
        assert decoded.devices == () and len(decoded.log) == 5
    b = make("llm", W32, devices={"llm@1.0": device}, compact_every=1000)
    b.restore(snap)
    assert b.device_states == a.device_states
    assert values(call(b, "Run", nonce=9, Tokens=8)) == values(call(a, "Run", nonce=9, Tokens=8))


def test_constrained_output_parses(device):
    p = make("llm", W32, devices={"llm@1.0": device})
    values(call(p, "Load", MODEL_PATH))
    for n, prompt in enumerate(["grade the petition", "a garden for every llama", "more grass"], start=2):
        options = json.dumps({"json_schema": SCHEMA, "max_tokens": 40})
        text = values(call(p, "Generate", prompt, n, Options=options))[0]  # then the stop reason
        assert json.loads(text)["grade"] in range(6)


def test_token_cost_is_charged_as_fuel_and_a_spent_budget_is_an_error(device):
    p = make("llm", W32_METERED, devices={"llm@1.0": device})
    values(call(p, "Load", MODEL_PATH))
    values(call(p, "Prompt", "the llama king", 2))
    short, long = call(p, "Run", nonce=3, Tokens=1), call(p, "Run", nonce=4, Tokens=9)
    assert long.gas_used - short.gas_used > 7 * device_cost(device)  # eight more tokens, each charged

    # enough fuel for the module's own work, not for 1500 tokens
    tight = make("llm", W32_METERED, devices={"llm@1.0": device}, compute=200 * device_cost(device) + 10**5)
    values(call(tight, "Load", MODEL_PATH))
    values(call(tight, "Prompt", "the llama king", 2))
    before = tight.device_states
    spent = call(tight, "Run", nonce=3, Tokens=1500)
    assert spent.error and "llm@1.0: compute limit exceeded" in spent.error, spent.error
    assert tight.device_states == before  # the failed message changed nothing
    assert values(call(tight, "Run", nonce=4, Tokens=1)) == values(short)


def device_cost(device) -> int:
    from pyao.devices.llm import token_cost

    return token_cost(device.models.get(MODEL_PATH, context(), {}))


@pytest.mark.parametrize("compact_on_device_call", [True, False])
def test_a_failed_message_rolls_the_device_state_back(device, compact_on_device_call):
    p = make("llm", W32, devices={"llm@1.0": device})
    p.compact_on_device_call = compact_on_device_call
    values(call(p, "Load", MODEL_PATH))
    values(call(p, "Prompt", "the llama king", 2))
    before = p.device_states
    failed = call(p, "Run-Then-Fail", nonce=3, Tokens=4)
    assert failed.error == "asked to fail after the device call"
    assert p.device_states == before
    # the rebuilt instance replayed the log: no device work when the base was refreshed after each call
    assert p._rt.door.calls == (0 if compact_on_device_call else 2)
    twin = make("llm", W32, devices={"llm@1.0": device})
    values(call(twin, "Load", MODEL_PATH))
    values(call(twin, "Prompt", "the llama king", 2))
    assert values(call(p, "Run", nonce=4, Tokens=4)) == values(call(twin, "Run", nonce=4, Tokens=4))


@pytest.mark.parametrize(
    ("request_text", "why"),
    [
        ("not json", "not UTF-8 JSON"),
        ('{"op":"fly","args":[]}', "unknown llm@1.0 operation"),
        ('{"op":"run","args":[{"n":1}]}', "args must be a list of"),
        ('{"op":"load","args":["/etc/passwd"]}', "llm@1.0:"),
    ],
)
def test_bad_requests_get_the_device_error(device, request_text, why):
    p = make("llm", W32, devices={"llm@1.0": device})
    result = call(p, "Raw", request_text)
    assert result.error is None
    assert result.output["ok"] is False and why in result.output["error"], result.output
    assert p.device_states == {}


def test_no_llm_device_is_an_answer_not_a_crash():
    p = make("llm", W32, devices={})
    result = call(p, "Load", MODEL_PATH)
    assert result.error and "offers no device 'llm@1.0'" in result.error


def test_an_answer_larger_than_the_buffer_is_its_negative_length_and_nothing_is_kept(device):
    from pyao.vm.wasm._devices import DeviceDoor

    door = DeviceDoor({"llm@1.0": device}, context())
    charged = []
    m = msg("Run", nonce=1)
    load = json.dumps({"op": "load", "args": [MODEL_PATH]}).encode()
    assert isinstance(door.call(b"llm@1.0", load, m, 10**9, 4096, charged.append), bytes)
    prompt = json.dumps({"op": "set_prompt", "args": ["the llama king"]}).encode()
    door.call(b"llm@1.0", prompt, m, 10**9, 4096, charged.append)
    state, spent = dict(door.states), list(charged)
    run = json.dumps({"op": "run", "args": [6]}).encode()
    short = door.call(b"llm@1.0", run, m, 10**9, 8, charged.append)
    assert isinstance(short, int) and short < -8
    assert door.states == state and charged == spent  # nothing kept, nothing charged
    answer = door.call(b"llm@1.0", run, m, 10**9, -short, charged.append)
    assert isinstance(answer, bytes) and len(answer) == -short  # asked again: the same answer, now kept
    assert door.states != state and charged[-1] == 6 * device_cost(device)
