"""One live wasmtime instance of a process module, and the engines that compile modules.

Contract
--------
* Assumes: module bytes exporting ``memory``, ``handle(msgJSON, envJSON) ->
  char*`` (i32 pointers for wasm32, i64 for wasm64) and ``malloc``/``free``;
  ``handle`` returns ``{"ok": bool, "response": {...}}`` as aos's Lua bridge does.
* Produces: ``call(msg_json, env_json, msg)`` -> ``Outcome`` (the JSON text the
  module returned, or why the call failed, and the fuel it used).
* Side effects: none outside the instance. Two engines, shared by every process:
  wasm32, and wasm64 with a large address-space reservation (so a memory grows
  in place, never copied, past 4 GiB, touching only the pages it uses). Both
  canonicalise NaNs and count fuel. Compiled modules are cached by their sha256.

Limits
------
``Limits.memory`` is a store limit: a ``memory.grow`` past it fails (the module
sees out-of-memory). ``Limits.compute`` is the fuel of one message; running out
traps, and the caller rebuilds the state from before the message.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import wasmtime

from pyao.abc import FileDrive, Limits, ProcessContext
from pyao.errors import ModuleError
from pyao.vm.wasm._abi import EmscriptenHost, HostAbort, LongJump
from pyao.vm.wasm._devices import DeviceDoor
from pyao.vm.wasm._memory import LinearMemory, MemoryFault

#: address space reserved per wasm64 memory: growth up to here never moves or copies it (virtual only)
WASM64_RESERVATION = 1 << 38
#: fuel for instantiation and the module's constructors (not a message's Compute-Limit)
BOOT_FUEL = 10**11
COMPILED_CACHE = 16
#: stack bytes left free for the module when the message strings go on its stack
STACK_SPARE = 256 * 1024


def _config(wasm64: bool) -> wasmtime.Config:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.cranelift_nan_canonicalization = True
    config.wasm_memory64 = True
    config.wasm_relaxed_simd_deterministic = True
    config.memory_may_move = False  # growth in place: LinearMemory keeps the base address
    if wasm64:
        config.memory_reservation = WASM64_RESERVATION
        config.memory_reservation_for_growth = 0
    return config


class _Engines:
    """The two engines and a small LRU of compiled modules (compiling aos takes seconds)."""

    def __init__(self) -> None:
        self._engines: dict[bool, wasmtime.Engine] = {}
        self._compiled: OrderedDict[tuple[bool, str], wasmtime.Module] = OrderedDict()
        self._lock = threading.Lock()

    def engine(self, wasm64: bool) -> wasmtime.Engine:
        with self._lock:
            if wasm64 not in self._engines:
                self._engines[wasm64] = wasmtime.Engine(_config(wasm64))
            return self._engines[wasm64]

    def compile(self, data: bytes, wasm64: bool) -> wasmtime.Module:
        key = (wasm64, hashlib.sha256(data).hexdigest())
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
        try:
            module = wasmtime.Module(self.engine(wasm64), data)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(f"the module is not valid WebAssembly: {_first_line(exc)}") from None
        with self._lock:
            self._compiled[key] = module
            while len(self._compiled) > COMPILED_CACHE:
                self._compiled.popitem(last=False)
        return module


ENGINES = _Engines()


@dataclass(frozen=True)
class Outcome:
    """One ``handle`` call: the module's JSON reply, or the reason it produced none."""

    reply: bytes | None
    failure: str | None
    fuel_used: int


class Runtime:
    """A booted instance: a store with its limits, the host imports, the module's exports."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        process: ProcessContext,
        limits: Limits,
        drive: FileDrive | None,
        door: DeviceDoor | None = None,
    ) -> None:
        self.limits = limits
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=limits.memory)
        self.store.set_fuel(BOOT_FUEL)
        self._fuel_start = BOOT_FUEL
        self.door = door
        self.host = EmscriptenHost(self.store, process, drive, self.fuel_used, door)
        try:
            instance = wasmtime.Instance(self.store, module, self.host.imports(module))
            self.host.bind(instance)
            exports = instance.exports(self.store)
            self._handle = exports["handle"]
            self._malloc = exports["malloc"]
            self._free = exports["free"]
            stack = [exports.get(n) for n in ("emscripten_stack_get_current", "_emscripten_stack_alloc",
                                               "_emscripten_stack_restore", "emscripten_stack_get_free")]  # fmt: skip
            self._stack = stack if all(isinstance(f, wasmtime.Func) for f in stack) else None
            for name in ("emscripten_stack_init", "_initialize", "__wasm_call_ctors"):
                if name in exports and (name != "__wasm_call_ctors" or "_initialize" not in exports):
                    exports[name](self.store)
        except (wasmtime.WasmtimeError, wasmtime.Trap, HostAbort, KeyError, LongJump, MemoryFault) as exc:
            raise ModuleError(f"the module cannot be instantiated: {_first_line(exc)}") from None
        assert self.host.mem is not None
        self.memory: LinearMemory = self.host.mem
        self._mask = 0xFFFFFFFFFFFFFFFF if self.memory.is_64 else 0xFFFFFFFF

    def fuel_used(self) -> int:
        return self._fuel_start - self.store.get_fuel()

    def call(self, msg_json: bytes, env_json: bytes, msg: dict) -> Outcome:
        """Evaluate one message; never raises for what the module does."""
        self.host.begin(msg)
        self.store.set_fuel(self.limits.compute)
        self._fuel_start = self.limits.compute
        try:
            reply = self._call(msg_json, env_json)
            return Outcome(reply, None, self.fuel_used())
        except wasmtime.Trap as exc:
            used = self.fuel_used()
            if exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
                return Outcome(None, f"out of compute: the message used more than Compute-Limit {self.limits.compute}",
                               used)  # fmt: skip
            return Outcome(None, f"the module trapped: {_trap_reason(exc)}", used)
        except HostAbort as exc:
            return Outcome(None, str(exc), self.fuel_used())
        except LongJump:
            return Outcome(None, "the module called longjmp with no setjmp to catch it", self.fuel_used())
        except MemoryFault as exc:
            return Outcome(None, f"the module passed a bad address: {exc}", self.fuel_used())
        except wasmtime.WasmtimeError as exc:
            return Outcome(None, f"the module failed: {_first_line(exc)}", self.fuel_used())
        except (ValueError, TypeError, OverflowError) as exc:  # a host import given values it cannot use
            return Outcome(None, f"the module misused a host import: {type(exc).__name__}: {exc}", self.fuel_used())
        finally:
            self.host.close_files()

    def _call(self, msg_json: bytes, env_json: bytes) -> bytes:
        if self._stack is not None and self._stack[3](self.store) > len(msg_json) + len(env_json) + STACK_SPARE:
            return self._call_on_stack(msg_json, env_json)
        msg_ptr = self._cstring(msg_json)
        env_ptr = self._cstring(env_json)
        reply = self._reply(self._handle(self.store, msg_ptr, env_ptr))
        self._free(self.store, env_ptr)
        self._free(self.store, msg_ptr)
        return reply

    def _call_on_stack(self, msg_json: bytes, env_json: bytes) -> bytes:
        """The two strings on the module's stack, as emscripten's ``cwrap`` passes them (so the heap
        evolves exactly as under the official loader)."""
        get_current, alloc, restore, _free = self._stack  # type: ignore[misc]
        sp = get_current(self.store)
        pointers = []
        for text in (msg_json, env_json):
            ptr = alloc(self.store, len(text) + 1)
            self.memory.write(ptr & self._mask, text + b"\0")
            pointers.append(ptr)
        try:
            return self._reply(self._handle(self.store, *pointers))
        finally:
            restore(self.store, sp)

    def _reply(self, out: int) -> bytes:
        out &= self._mask
        if not out:
            raise HostAbort("the module's handle returned NULL")
        return self.memory.cstring(out)

    def _cstring(self, data: bytes) -> int:
        ptr = self._malloc(self.store, len(data) + 1)
        if not self.memory.is_64:
            ptr &= 0xFFFFFFFF
        if not ptr:
            raise HostAbort("out of memory: the module's malloc failed for the message")
        self.memory.write(ptr, data + b"\0")
        return ptr


def _trap_reason(exc: wasmtime.Trap) -> str:
    code = exc.trap_code
    if code is not None:
        return code.name.lower().replace("_", " ")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else "trap"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
