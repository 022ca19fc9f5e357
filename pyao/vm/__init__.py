"""The process VMs, chosen by the module's ``Module-Format`` tag.

``VMS`` is the explicit registry: format value -> VM class. ``vm_for`` looks a
format up and raises ``UnknownModuleFormat`` (listing the known ones) for any
other. The WASM VM (``wasm32-unknown-emscripten4``, ``wasm64-…``) joins later.

Registered now:

* ``lua53-pyao-native-1`` — native Lua 5.3 (lupa) running pyao's own
  aos-compatible library, then the module's Lua source (docs/lua-modules.md).
"""

from __future__ import annotations

from pyao.abc import VM, Devices
from pyao.errors import UnknownModuleFormat
from pyao.vm._limits import limits_for, parse_compute, parse_memory
from pyao.vm.lua import LUA_NATIVE_FORMAT, LuaVM

__all__ = ["LUA_NATIVE_FORMAT", "VMS", "LuaVM", "limits_for", "parse_compute", "parse_memory", "vm_for"]

VMS: dict[str, type[VM]] = {
    LUA_NATIVE_FORMAT: LuaVM,
}


def vm_for(module_format: str, devices: Devices | None = None) -> VM:
    """A VM for ``module_format`` that may use ``devices`` (``name@version`` -> Device);
    raises UnknownModuleFormat listing the known formats."""
    try:
        cls = VMS[module_format]
    except KeyError:
        raise UnknownModuleFormat(module_format, sorted(VMS)) from None
    return cls(devices=devices or {})
