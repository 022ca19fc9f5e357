"""Shared by scripts/compare-wasm-loader and bench/bench_wasm.py: aos message sequences run through
our WASM VM and through the official @permaweb/ao-loader (interop/js/ao-loader-run.mjs) on Node.

The aos .wasm binaries are not in the repo (BSL-licensed build artifacts): every entry point takes
the module's path, e.g. loader/test/emscripten4/process.wasm extracted from permaweb/ao into /tmp.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.vm import vm_for

ROOT = Path(__file__).resolve().parents[1]
LOADER_RUN = ROOT / "interop" / "js" / "ao-loader-run.mjs"
PID = "PROCESS" + "p" * 36
OWNER = "OWNER" + "o" * 38
MODULE = "MODULE" + "m" * 37
TARGET = "TARGET" + "t" * 37
LIMITS = Limits(compute=10**12, memory=1 << 30)


def env() -> dict[str, Any]:
    return {
        "Process": {"Id": PID, "Owner": OWNER, "Tags": [{"name": "Name", "value": "compare"}]},
        "Module": {"Id": MODULE, "Owner": OWNER, "Tags": []},
    }


def message(nonce: int, tags: dict[str, str], data: str = "", sender: str = OWNER) -> dict[str, Any]:
    """A message shaped as the CU builds it (spec §2.4); nonce 0 is the process message itself."""
    return {
        "Id": PID if nonce == 0 else f"MSG{nonce:040d}",
        "Signature": "sig",
        "Data": data,
        "Owner": sender,
        "Anchor": f"{nonce:032d}",
        "From": sender,
        "Tags": [{"name": k, "value": v} for k, v in tags.items()],
        "Target": PID,
        "Epoch": 0,
        "Nonce": nonce,
        "Timestamp": 1_700_000_000_000 + nonce * 1000,
        "Block-Height": 1_000 + nonce,
        "Hash-Chain": "chain",
        "Cron": False,
        "Read-Only": False,
        "Module": MODULE,
    }


def process_message() -> dict[str, Any]:
    return message(0, {"Type": "Process", "Name": "compare", "Module": MODULE}, "")


def transfer(nonce: int, recipient: str, quantity: str = "1") -> dict[str, Any]:
    return message(nonce, {"Action": "Transfer", "Recipient": recipient, "Quantity": quantity})


def module_format(path: str) -> str:
    """The Module-Format of an aos binary, from the type of its memory."""
    import wasmtime

    config = wasmtime.Config()
    config.wasm_memory64 = True
    mod = wasmtime.Module(wasmtime.Engine(config), Path(path).read_bytes())
    (mem,) = [e.type for e in mod.exports if e.name == "memory"]
    return "wasm64-unknown-emscripten-draft_2024_02_15" if mem.is_64 else "wasm32-unknown-emscripten4"


class Ours:
    """The module in our VM, driven step by step; ``fresh`` restores a snapshot into a new instance."""

    def __init__(self, path: str, fmt: str) -> None:
        self.source = ModuleSource(MODULE, OWNER, (("Module-Format", fmt),), Path(path).read_bytes())
        self.vm = vm_for(fmt)
        self.instance = self._new()

    def _new(self):
        return self.vm.instantiate(self.source, ProcessContext(PID, OWNER, (("Name", "compare"),)), LIMITS)

    def step(self, msg: dict[str, Any], fresh: bool = False) -> dict[str, Any]:
        if fresh:
            snap = self.instance.snapshot()
            self.instance = self._new()
            self.instance.restore(snap)
        r = self.instance.handle(msg, env())
        out = {"Output": r.output, "Messages": list(r.messages), "Spawns": list(r.spawns),
               "Assignments": list(r.assignments)}  # fmt: skip
        if r.error is not None:
            out["Error"] = r.error
        return out


def run_loader(path: str, fmt: str, steps: list[dict[str, Any]], timing: bool = False) -> dict[str, Any]:
    """The steps through ao-loader on Node: {results, seconds, memory}."""
    request = {"module": str(Path(path).resolve()), "format": fmt, "steps": steps, "timing": timing}
    flags = ["--experimental-wasm-memory64"] if fmt.startswith("wasm64") else []
    done = subprocess.run(
        ["node", *flags, str(LOADER_RUN)],
        input=json.dumps(request).encode(),
        capture_output=True,
        cwd=LOADER_RUN.parent,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ao-loader run failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(done.stdout)


def timed(fn, *args) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t
