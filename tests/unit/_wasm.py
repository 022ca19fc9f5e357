"""Helpers for the WASM VM tests: kit modules (kit/wasm/build) as processes, and messages."""

from __future__ import annotations

from pathlib import Path

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.vm import vm_for

KIT = Path(__file__).resolve().parents[2] / "kit" / "wasm" / "build"
W32 = "wasm32-unknown-emscripten4"
W64 = "wasm64-unknown-emscripten-draft_2024_02_15"
W32_METERED = "wasm32-unknown-emscripten-metering"
W64_METERED = "wasm64-unknown-emscripten-draft_2024_10_16-metering"
PID = "P" * 43
OWNER = "O" * 43
MODULE = "M" * 43


def kit_bytes(name: str, fmt: str = W32) -> bytes:
    return (KIT / ("wasm64" if fmt.startswith("wasm64") else "wasm32") / f"{name}.wasm").read_bytes()


def module_source(name: str, fmt: str = W32) -> ModuleSource:
    return ModuleSource(id=MODULE, owner=OWNER, tags=(("Module-Format", fmt),), data=kit_bytes(name, fmt))


def context() -> ProcessContext:
    return ProcessContext(id=PID, owner=OWNER, tags=(("Type", "Process"), ("Module", MODULE)))


def make(name: str, fmt: str = W32, *, compute: int = 10**8, memory: int = 64 << 20, devices=None, **vm_options):
    vm = vm_for(fmt, devices)
    for key, value in vm_options.items():
        setattr(vm, key, value)
    return vm.instantiate(module_source(name, fmt), context(), Limits(compute=compute, memory=memory))


ENV = {
    "Process": {"Id": PID, "Owner": OWNER, "Tags": [{"name": "Type", "value": "Process"}]},
    "Module": {"Id": MODULE, "Owner": OWNER, "Tags": []},
}


def msg(action: str = "Ping", data: str = "", nonce: int = 1, sender: str = "S" * 43) -> dict:
    return {
        "Id": f"{nonce:043d}",
        "Target": PID,
        "Owner": sender,
        "From": sender,
        "Tags": [{"name": "Action", "value": action}],
        "Data": data,
        "Timestamp": 1_700_000_000_000 + nonce,
        "Block-Height": 1000 + nonce,
        "Nonce": nonce,
        "Epoch": 0,
        "Hash-Chain": "h" * 43,
        "Cron": False,
        "Read-Only": False,
    }
