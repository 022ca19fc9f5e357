"""The native Lua VM: Lua 5.3 (lupa) running pyao's aos-compatible library.

Contract
--------
* Assumes: a module whose data is Lua source (UTF-8 text), ``Module-Format:
  lua53-pyao-native-1``. The source runs once, at instantiation, after our
  library (``pyao/lua``), in the process's sandbox, with ``ao.init`` already
  called on the process's env (so ``ao.id`` is known at the top level).
* Produces: per message an ``EvalResult`` mapping 1:1 to the CU result JSON.
* Side effects: none outside the instance. The sandbox has no os (only a
  deterministic ``os.time``), debug or binary ``load``, and no io unless the
  VM was given a ``weavedrive@1.0`` device: then ``io.open``/``io.lines``/``io.type`` open
  WeaveDrive paths only (``/data/<id>``…, read-only; see ``_lua_io``);
  ``require`` serves the bundled modules only (the library, ``decimal`` and the
  blueprints, see ``BLUEPRINTS``); lupa's ``python`` table is gone. The one way
  out is the device door, ``require("devices").call(name, op, ...)``, served by
  the ``ProcessDevice``s the VM was built with (``_host.lua``, section devices).

Atomicity and snapshots
-----------------------
The instance keeps a *base* (canonical bytes of the Lua state, see
``_host.lua``) and the *log* of messages handled successfully since. After each
successful message it tries to re-serialise (every ``compact_every`` messages);
that fails while the state holds something that cannot be written (a coroutine
parked by ``Receive``), and then the log simply grows. A message that fails (a
Lua error, the compute or memory limit) makes the instance rebuild a fresh
runtime from base + log, so the state is exactly the one before that message.
``snapshot()`` is base + log; ``restore()`` rebuilds the same way, so a parked
``Receive`` survives a checkpoint by being replayed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from importlib import resources

import lupa.lua53 as lupa

from pyao.abc import (
    VM,
    Devices,
    EvalResult,
    FileDrive,
    Limits,
    ModuleSource,
    ProcessContext,
    ProcessDevice,
    ProcessInstance,
)
from pyao.errors import DeviceError, ModuleError, NotFound, SnapshotError
from pyao.vm._lua_io import LuaDriveBridge

LUA_NATIVE_FORMAT = "lua53-pyao-native-1"
LIBRARY_MODULES = ("json", "utils", "handlers", "ao", "process")
#: bundled modules loaded only on ``require``: name -> file under pyao/lua
OPTIONAL_MODULES = {
    "decimal": "decimal.lua",
    "llama": "llama.lua",
    "Llama": "llama.lua",  # AO-Llama's require(".Llama")
    "blueprints.token": "blueprints/token.lua",
    "blueprints.llama_fed": "blueprints/llama_fed.lua",
}
#: blueprints: ``require("blueprints.<name>")``, ``require(".<name>")``, or Eval of ``blueprint_source(name)``
BLUEPRINTS = ("token",)
COMPACT_EVERY = 16  # messages between two serialisations of the state (bench/bench_lua_vm.py)
BOOT_BUDGET = 10**9  # instructions for our library plus the module's top level
_MAGIC = b"PYAO-LUA-STATE-1\n"


def _read(package: str, name: str) -> bytes:
    return resources.files(package).joinpath(name).read_bytes()


_HOST = _read("pyao.vm", "_host.lua")
_SOURCES = {name.encode(): _read("pyao.lua", f"{name}.lua") for name in LIBRARY_MODULES}
_SOURCES.update({name.encode(): _read("pyao.lua", path) for name, path in OPTIONAL_MODULES.items()})
_LIBRARY_DIGEST = hashlib.sha256(_HOST + b"".join(_SOURCES[k] for k in sorted(_SOURCES))).hexdigest()


def blueprint_source(name: str) -> str:
    """The Lua text of a bundled blueprint (``token``), for an Eval (aos's ``.load-blueprint``)."""
    if name not in BLUEPRINTS:
        raise KeyError(f"unknown blueprint {name!r}; known: {', '.join(BLUEPRINTS)}")
    return _SOURCES[f"blueprints.{name}".encode()].decode()


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class _Runtime:
    """One lupa runtime with our host code booted in it."""

    def __init__(
        self,
        module_source: bytes,
        limits: Limits,
        env_json: bytes = b"",
        devices: Devices | None = None,
        process: ProcessContext | None = None,
        drive: LuaDriveBridge | None = None,
    ) -> None:
        self.limits = limits
        self.msg_json = b"{}"  # the message being handled, for device calls
        self.device_failure: Exception | None = None
        self.lua = lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            max_memory=limits.memory,
        )
        self.lua.set_max_memory(0)  # boot unbounded; the cap applies from the first message
        self.host = self.lua.execute(_HOST, name="=pyao-host")
        if drive is not None:
            self.host.attach_drive(drive)
        doors = {name.encode(): self._device_door(dev, process) for name, dev in (devices or {}).items()
                 if isinstance(dev, ProcessDevice) and process is not None}  # fmt: skip
        ok, err = self.host.boot(
            self.lua.table_from(_SOURCES), module_source, BOOT_BUDGET, env_json, self.lua.table_from(doors)
        )
        if not ok:
            raise ModuleError(f"module failed to load: {err.decode(errors='replace')}")
        self.host.mark_permanent()
        self.lua.set_max_memory(limits.memory, total=True)

    def _device_door(self, device: ProcessDevice, process: ProcessContext):
        """The host function behind ``require("devices").call`` for one device (see _host.lua)."""

        def door(state, budget, op, *args):
            try:
                reply = device.call(state, int(budget), process, json.loads(self.msg_json), op.decode(), args)
            except (DeviceError, NotFound) as exc:  # the process's request cannot be served: its error
                return 0, state, f"{device.name}: {exc}".encode()
            except Exception as exc:  # the unit's failure (a gateway down): not a result, see handle
                self.device_failure = exc
                return 0, state, b"device failure"
            return (reply.cost, reply.state, None, *reply.values)

        return door

    def unlimited(self):
        """Context for host work (serialising) that must not hit the process's memory cap."""
        return _Unlimited(self)

    def handle(self, msg_json: bytes, env_json: bytes) -> tuple[bool, bytes, int]:
        """One message; raises (instead of answering) when a device failed for the unit's own reasons,
        so a transient failure never becomes a message's recorded result."""
        self.msg_json, self.device_failure = msg_json, None
        try:
            ok, payload, gas = self.host.handle(msg_json, env_json, self.limits.compute)
        except lupa.LuaMemoryError:
            return False, b"memory limit exceeded", 0
        except lupa.LuaError as exc:  # an error outside the host's own pcall
            return False, str(exc).encode(), 0
        if self.device_failure is not None:
            raise self.device_failure
        return bool(ok), payload, int(gas)

    def serialize(self) -> bytes | None:
        with self.unlimited():
            data, _why = self.host.serialize()
        return data

    def deserialize(self, data: bytes) -> None:
        with self.unlimited():
            try:
                self.host.deserialize(data)
            except lupa.LuaError as exc:
                raise SnapshotError(f"cannot restore Lua state: {exc}") from None


class _Unlimited:
    def __init__(self, rt: _Runtime) -> None:
        self.rt = rt

    def __enter__(self) -> None:
        self.rt.lua.set_max_memory(0)

    def __exit__(self, *exc: object) -> None:
        self.rt.lua.set_max_memory(self.rt.limits.memory, total=True)


def _result(payload: bytes, gas: int) -> EvalResult:
    out = json.loads(payload.decode(errors="replace"))
    if "Error" in out:
        return EvalResult(error=out["Error"], gas_used=gas)
    return EvalResult(
        output=out.get("Output", ""),
        messages=tuple(out.get("Messages") or ()),
        spawns=tuple(out.get("Spawns") or ()),
        assignments=tuple(out.get("Assignments") or ()),
        gas_used=gas,
    )


def _boot_env(module: ModuleSource, process: ProcessContext) -> dict:
    """The env the module's top level sees (``ao.id``, ``ao.authorities``…), shaped as the CU's env."""

    def tags(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
        return [{"name": n, "value": v} for n, v in pairs]

    return {
        "Process": {"Id": process.id, "Owner": process.owner, "Tags": tags(process.tags)},
        "Module": {"Id": module.id, "Owner": module.owner, "Tags": tags(module.tags)},
    }


class LuaProcess(ProcessInstance):
    """A process running in the native Lua VM (see the module docstring)."""

    def __init__(
        self,
        module: ModuleSource,
        process: ProcessContext,
        limits: Limits,
        compact_every: int = COMPACT_EVERY,
        devices: Devices | None = None,
    ) -> None:
        self.module, self.process, self.limits = module, process, limits
        self.devices: Devices = devices or {}
        drive = self.devices.get("weavedrive@1.0")
        self._drive = LuaDriveBridge(drive, process) if isinstance(drive, FileDrive) else None
        self.compact_every = max(1, compact_every)
        self._digest = hashlib.sha256(_LIBRARY_DIGEST.encode() + b"\0" + module.data).hexdigest()
        self._boot_env = _dumps(_boot_env(module, process))
        self._rt = self._runtime()
        base = self._rt.serialize()
        if base is None:
            raise ModuleError("the module's top level left state that cannot be serialised (a coroutine?)")
        self._base: bytes = base
        self._log: list[tuple[bytes, bytes]] = []

    # ------------------------------------------------------------ messages

    def handle(self, msg: dict, env: dict) -> EvalResult:
        msg_json, env_json = _dumps(msg), _dumps(env)
        try:
            ok, payload, gas = self._rt.handle(msg_json, env_json)
        except Exception:  # a device failed for the unit's reasons: back to the state before, then raise
            self._rebuild()
            raise
        result = _result(payload, gas) if ok else EvalResult(error=payload.decode(errors="replace"), gas_used=gas)
        if result.error is not None:
            self._rebuild()
            return result
        self._log.append((msg_json, env_json))
        if len(self._log) >= self.compact_every:
            self._compact()
        return result

    def _compact(self) -> None:
        """Fold the log into the base when the state can be written (not while a Receive is parked)."""
        if self._log:
            base = self._rt.serialize()
            if base is not None:
                self._base, self._log = base, []

    def _runtime(self) -> _Runtime:
        return _Runtime(self.module.data, self.limits, self._boot_env, self.devices, self.process, self._drive)

    def _rebuild(self) -> None:
        """A fresh runtime holding base + log: the state before the failed message."""
        rt = self._runtime()
        rt.deserialize(self._base)
        for msg_json, env_json in self._log:
            ok, payload, _ = rt.handle(msg_json, env_json)
            if not ok or "Error" in json.loads(payload):
                raise SnapshotError("replaying the message log did not repeat its results")
        self._rt = rt

    # ----------------------------------------------------------- snapshots

    def footprint(self) -> int:
        log_bytes = sum(len(m) + len(e) for m, e in self._log)
        return self._rt.lua.get_memory_used(total=True) + len(self._base) + log_bytes

    def snapshot(self) -> bytes:
        self._compact()  # canonical bytes: equal states give equal snapshots, whatever the history
        header = _dumps({"format": LUA_NATIVE_FORMAT, "digest": self._digest, "log": len(self._log)})
        parts = [_MAGIC, struct.pack(">I", len(header)), header, struct.pack(">Q", len(self._base)), self._base]
        for msg_json, env_json in self._log:
            parts += [struct.pack(">II", len(msg_json), len(env_json)), msg_json, env_json]
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        base, log = self._parse(data)
        self._base, self._log = base, log
        self._rebuild()

    def _parse(self, data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("not a pyao Lua snapshot")
            pos = len(_MAGIC)
            (hlen,) = struct.unpack_from(">I", data, pos)
            header = json.loads(data[pos + 4 : pos + 4 + hlen])
            pos += 4 + hlen
            (blen,) = struct.unpack_from(">Q", data, pos)
            base = data[pos + 8 : pos + 8 + blen]
            pos += 8 + blen
            log = []
            for _ in range(int(header["log"])):
                mlen, elen = struct.unpack_from(">II", data, pos)
                pos += 8
                log.append((data[pos : pos + mlen], data[pos + mlen : pos + mlen + elen]))
                pos += mlen + elen
            if pos != len(data) or len(base) != blen:
                raise ValueError("truncated or trailing bytes")
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise SnapshotError(f"damaged snapshot: {exc}") from None
        if header.get("digest") != self._digest:
            raise SnapshotError("snapshot was made for another module or library version")
        return base, log


class LuaVM(VM):
    """The native Lua VM (``Module-Format: lua53-pyao-native-1``)."""

    formats = (LUA_NATIVE_FORMAT,)

    def __init__(self, compact_every: int = COMPACT_EVERY, devices: Devices | None = None) -> None:
        self.compact_every = compact_every
        self.devices: Devices = devices or {}

    def instantiate(self, module: ModuleSource, process: ProcessContext, limits: Limits) -> LuaProcess:
        return LuaProcess(module, process, limits, compact_every=self.compact_every, devices=self.devices)
