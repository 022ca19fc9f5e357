"""The WASM VM with our own C kit modules (kit/wasm): outputs, outbox, errors, traps, limits, state."""

from __future__ import annotations

import os

import pytest

from pyao.abc import Limits, ModuleSource
from pyao.errors import ModuleError, UnknownModuleFormat
from pyao.mu._core import pushable
from pyao.vm import VMS, WasmVM, vm_for
from tests.unit._wasm import ENV, W32, W32_METERED, W64, W64_METERED, context, make, module_source, msg

FORMATS = [W32, W64]


def test_registry_serves_every_wasm_format():
    for fmt in (W32, W64, W32_METERED, W64_METERED):
        assert VMS[fmt] is WasmVM
    with pytest.raises(UnknownModuleFormat) as info:
        vm_for("wasm32-unknown-emscripten2")
    assert W64 in str(info.value) and W32 in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_echo_output_and_outbox(fmt):
    p = make("echo", fmt)
    r = p.handle(msg("Say", 'hello \\"world\\" ✓'), ENV)
    assert r.ok and r.output == 'hello \\"world\\" ✓'
    (out,) = r.messages
    assert out["Target"] == "S" * 43 and out["Data"] == r.output
    assert {"name": "Action", "value": "Echo"} in out["Tags"]
    assert pushable(out)  # an MU (ours, as the official one) pushes no message without an Anchor
    spawn = p.handle(msg("Spawn", "child"), ENV)
    assert spawn.spawns == ({"Tags": [{"name": "Type", "value": "Process"}], "Data": "child"},)
    assert spawn.gas_used == 0  # not a metered format


@pytest.mark.parametrize("fmt", FORMATS)
def test_echo_replies_as_aos_msg_reply_does(fmt):
    p = make("echo", fmt)
    first = p.handle(msg("Say", "one", nonce=1), ENV).messages[0]
    assert first["Anchor"] == "0" * 31 + "1"
    assert first["Tags"] == [
        {"name": "Data-Protocol", "value": "ao"},
        {"name": "Variant", "value": "ao.TN.1"},
        {"name": "Type", "value": "Message"},
        {"name": "Reference", "value": "1"},
        {"name": "Action", "value": "Echo"},
    ]
    # a Send from another process: X-Reference pairs the reply with it (aos's onReply / receive)
    asked = msg("Say", "two", nonce=2)
    asked["Tags"] += [{"name": "Reference", "value": "7"}]
    second = p.handle(asked, ENV).messages[0]
    assert second["Anchor"] == "0" * 31 + "2" and second["Target"] == "S" * 43
    assert second["Tags"][3:] == [
        {"name": "Reference", "value": "2"},
        {"name": "Action", "value": "Echo"},
        {"name": "X-Reference", "value": "7"},
    ]
    # a forwarded message: Reply-To wins over From; X-Reference and X-Origin carry on
    forwarded = msg("Say", "three", nonce=3)
    forwarded["Tags"] += [
        {"name": "Reply-To", "value": "R" * 43},
        {"name": "Reference", "value": "9"},
        {"name": "X-Reference", "value": "4"},
        {"name": "X-Origin", "value": "G" * 43},
    ]
    third = p.handle(forwarded, ENV).messages[0]
    assert third["Target"] == "R" * 43 and third["Anchor"] == "0" * 31 + "3"
    assert third["Tags"][4:] == [
        {"name": "Action", "value": "Echo"},
        {"name": "X-Reference", "value": "4"},
        {"name": "X-Origin", "value": "G" * 43},
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_counter_state_and_error_keeps_previous_state(fmt):
    p = make("counter", fmt, compact_every=2)
    assert [p.handle(msg("Increment", nonce=i), ENV).output for i in range(1, 4)] == [1, 2, 3]
    failed = p.handle(msg("Increment-Then-Fail", nonce=4), ENV)
    assert failed.error == "failed after incrementing" and failed.messages == ()
    assert p.handle(msg("Read", nonce=5), ENV).output == 3
    trapped = p.handle(msg("Increment-Then-Trap", nonce=6), ENV)
    assert "trapped" in trapped.error and "unreachable" in trapped.error
    assert p.handle(msg("Increment", nonce=7), ENV).output == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_traps_and_bad_replies_are_errors(fmt):
    p = make("trap", fmt)
    assert "unreachable" in p.handle(msg("Trap"), ENV).error
    bad = p.handle(msg("Bad-Pointer"), ENV).error
    assert "bad address" in bad or "outside the memory" in bad
    assert p.handle(msg("Ping"), ENV).output == "ok"


@pytest.mark.parametrize("fmt", FORMATS)
def test_endless_loop_runs_out_of_fuel_and_state_survives(fmt):
    p = make("loop", fmt, compute=2_000_000)
    r = p.handle(msg("Spin"), ENV)
    assert "out of compute" in r.error and "2000000" in r.error
    assert r.gas_used == 0  # GasUsed is reported for metered formats only
    assert p.handle(msg("Ping", nonce=2), ENV).output == "ok"


@pytest.mark.parametrize("fmt", [W32_METERED, W64_METERED])
def test_metered_formats_report_gas_and_it_repeats(fmt):
    a, b = make("counter", fmt), make("counter", fmt)
    ra, rb = a.handle(msg("Increment"), ENV), b.handle(msg("Increment"), ENV)
    assert ra.gas_used > 0 and ra.gas_used == rb.gas_used
    spin = make("loop", fmt, compute=1_000_000).handle(msg("Spin"), ENV)
    assert "out of compute" in spin.error and spin.gas_used == 1_000_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_limit(fmt):
    p = make("hog", fmt, memory=8 << 20)
    start = p.handle(msg("Size"), ENV).output
    assert start < 8 << 20
    grown = p.handle(msg("Grow", "1", nonce=2), ENV)
    assert grown.ok and grown.output == start + (1 << 20)
    refused = p.handle(msg("Grow", "16", nonce=3), ENV)
    assert refused.error == "out of memory"
    assert p.handle(msg("Size", nonce=4), ENV).output == start + (1 << 20)


def test_memory_limit_below_the_module_s_initial_memory_refuses_to_load():
    with pytest.raises(ModuleError):
        make("echo", W32, memory=64 * 1024)


def _resident_bytes() -> int:
    """This process's resident memory now (Linux), not its lifetime peak."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_wasm64_memory_grows_past_4_gib_without_filling():
    p = make("hog", W64, memory=6 << 30)
    before = _resident_bytes()
    r = p.handle(msg("Grow", str(5 * 1024)), ENV)  # +5 GiB, one byte written at the top
    assert r.ok and r.output > 4 << 30
    assert p.memory_size == r.output
    assert _resident_bytes() - before < 256 << 20  # the untouched pages were never made resident
    assert "out of memory" in p.handle(msg("Grow", "2048", nonce=2), ENV).error  # over the 6 GiB limit
    assert p.handle(msg("Size", nonce=3), ENV).output == r.output  # the state before the failed message


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_pointer_width_and_bad_bytes_are_refused(fmt):
    other = W64 if fmt == W32 else W32
    source = module_source("echo", fmt)
    limits = Limits(compute=10**6, memory=1 << 26)
    wrong = ModuleSource(source.id, source.owner, (("Module-Format", other),), source.data)
    with pytest.raises(ModuleError, match="-bit exported memory"):
        WasmVM().instantiate(wrong, context(), limits)
    junk = ModuleSource(source.id, source.owner, (("Module-Format", fmt),), b"\0asm junk")
    with pytest.raises(ModuleError, match="not valid WebAssembly"):
        WasmVM().instantiate(junk, context(), limits)


def test_clock_and_random_come_from_the_message():
    from pyao.vm.wasm._abi import MessageInputs

    a, b = MessageInputs.of(msg(nonce=5)), MessageInputs.of(msg(nonce=5))
    assert a.now_ms() == 10_000 and a.now_ms() == 10_001 and b.now_ms() == 10_000  # the glue's clock, per message
    assert a.random(40) == b.random(40) and MessageInputs.of(msg(nonce=6)).random(40) != b.random(40)
