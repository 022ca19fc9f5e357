"""The process VMs, chosen by the module's ``Module-Format`` tag.

``VMS`` is the explicit registry: format value -> VM class. ``vm_for`` looks a
format up and raises ``UnknownModuleFormat`` (listing the known ones) for any
other.

Registered now:

* ``lua53-pyao-native-1`` — native Lua 5.3 (lupa) running pyao's own
  aos-compatible library, then the module's Lua source (docs/lua-modules.md).
* ``wasm32-unknown-emscripten4``, ``wasm32-unknown-emscripten-metering``,
  ``wasm64-unknown-emscripten-draft_2024_02_15`` and
  ``wasm64-unknown-emscripten-draft_2024_10_16-metering`` — WebAssembly on
  wasmtime with the emscripten host ABI: real aos modules (docs/wasm.md).
"""

from __future__ import annotations

from pyao.abc import VM, Devices
from pyao.errors import UnknownModuleFormat
from pyao.vm._limits import limits_for, parse_compute, parse_memory
from pyao.vm.lua import LUA_NATIVE_FORMAT, LuaVM
from pyao.vm.wasm import FORMATS as WASM_FORMATS
from pyao.vm.wasm import WasmVM

__all__ = [
    "LUA_NATIVE_FORMAT",
    "VMS",
    "WASM_FORMATS",
    "LuaVM",
    "WasmVM",
    "limits_for",
    "parse_compute",
    "parse_memory",
    "vm_for",
]

VMS: dict[str, type[VM]] = {
    LUA_NATIVE_FORMAT: LuaVM,
    **dict.fromkeys(WASM_FORMATS, WasmVM),
}


def vm_for(module_format: str, devices: Devices | None = None) -> VM:
    """A VM for ``module_format`` that may use ``devices`` (``name@version`` -> Device);
    raises UnknownModuleFormat listing the known formats."""
    try:
        cls = VMS[module_format]
    except KeyError:
        raise UnknownModuleFormat(module_format, sorted(VMS)) from None
    return cls(devices=devices or {})
