"""The WASM VM: aos and other emscripten-ABI modules on wasmtime, wasm32 and wasm64.

Contract
--------
* Assumes: a module item whose data is a WebAssembly binary exporting
  ``handle(msgJSON, envJSON) -> char*`` (aos, or our C kit in ``kit/wasm``), with
  one of the ``FORMATS`` as its ``Module-Format``.
* Produces: per message an ``EvalResult`` mapping 1:1 to the CU result JSON
  (``GasUsed`` is the fuel used, for the metering formats; 0 otherwise).
* Side effects: none outside the instance: the module reaches only our imports
  (``_abi``); the clock and random bytes come from the message; NaNs are
  canonicalised. ``Memory-Limit`` caps the memory, ``Compute-Limit`` the fuel
  of each message (all formats: an endless loop must not hang the unit).
  WeaveDrive reads go to the ``weavedrive@1.0`` device when the unit has one;
  ``pyao.device_call`` reaches its ``ProcessDevice``s (``llm@1.0``).

See docs/wasm.md.
"""

from __future__ import annotations

from pyao.abc import VM, Devices, FileDrive, Limits, ModuleSource, ProcessContext
from pyao.errors import ModuleError
from pyao.vm.wasm._abi import WEAVEDRIVE
from pyao.vm.wasm._process import COMPACT_EVERY, WasmProcess
from pyao.vm.wasm._runtime import ENGINES

WASM32_FORMATS = (
    "wasm32-unknown-emscripten4",
    "wasm32-unknown-emscripten-metering",
)
WASM64_FORMATS = (
    "wasm64-unknown-emscripten-draft_2024_02_15",
    "wasm64-unknown-emscripten-draft_2024_10_16-metering",
)
FORMATS = WASM32_FORMATS + WASM64_FORMATS
METERED_FORMATS = frozenset(f for f in FORMATS if f.endswith("-metering"))

__all__ = ["FORMATS", "METERED_FORMATS", "WASM32_FORMATS", "WASM64_FORMATS", "WasmProcess", "WasmVM"]


def _format_of(module: ModuleSource) -> str:
    return next((v for n, v in module.tags if n == "Module-Format"), "")


class WasmVM(VM):
    """WebAssembly processes (see the module docstring). One VM serves every format in ``FORMATS``;
    the instance takes its pointer width and metering from the module's ``Module-Format`` tag."""

    formats = FORMATS

    def __init__(self, devices: Devices | None = None, compact_every: int = COMPACT_EVERY) -> None:
        self.devices: Devices = devices or {}
        self.compact_every = compact_every

    def instantiate(self, module: ModuleSource, process: ProcessContext, limits: Limits) -> WasmProcess:
        fmt = _format_of(module)
        if fmt not in FORMATS:
            raise ModuleError(f"the WASM VM does not run Module-Format {fmt!r}; known: {', '.join(FORMATS)}")
        wasm64 = fmt in WASM64_FORMATS
        compiled = ENGINES.compile(module.data, wasm64)
        memories = [e.type for e in compiled.exports if e.name == "memory"]
        if not memories or getattr(memories[0], "is_64", None) is not wasm64:
            raise ModuleError(f"Module-Format {fmt} needs a {'64' if wasm64 else '32'}-bit exported memory")
        drive = self.devices.get(WEAVEDRIVE)
        return WasmProcess(
            ENGINES.engine(wasm64),
            compiled,
            fmt,
            module,
            process,
            limits,
            drive if isinstance(drive, FileDrive) else None,
            metered=fmt in METERED_FORMATS,
            compact_every=self.compact_every,
            devices=self.devices,
        )
