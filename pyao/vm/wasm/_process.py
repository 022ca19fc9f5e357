"""A process running in the WASM VM: a hot instance, a base memory image and the log since.

Contract
--------
* Assumes: a compiled module (``_runtime``) whose state is its whole linear
  memory between two ``handle`` calls (the stack pointer is back at its base,
  as the official loader also assumes when it restores only memory).
* Produces: ``EvalResult`` per message from the module's ``{ok, response}`` reply.
* Side effects: none outside the instance.

Atomicity without copying memory per message
--------------------------------------------
The official loader copies the whole memory out after every message (~110 MB
for aos). Here the instance stays hot and keeps a *base* image (a copy of
memory) and the *log* of messages handled since. A message that fails (an
``Error`` in the reply, a trap, running out of fuel or memory) makes the
process boot a fresh instance, load the base and replay the log, so its state is
exactly the one before that message. The base is refreshed once the log is
``compact_every`` messages long, or longer for large memories, so the copy costs
a fixed share of the work (``_interval``).

Snapshots are the compressed base plus the log (``_snapshot``); restoring boots
a fresh instance, loads the image and replays the log.

Device state (``pyao.device_call``, ``_devices``): each ``ProcessDevice``'s
per-process state bytes (an ``llm@1.0`` session) live beside the memory: the
base holds the states as they were when the base was taken, and replaying the
log repeats the device calls, so a snapshot, a restore and a rollback carry
them exactly as they carry the memory. Replaying a device call costs what it
cost the first time (an ``llm@1.0`` generation decodes again), so a message
that called a device refreshes the base at once (``compact_on_device_call``):
a rollback then replays no device work.
"""

from __future__ import annotations

import hashlib
import json

import wasmtime

from pyao.abc import Devices, EvalResult, FileDrive, Limits, ModuleSource, ProcessContext, ProcessInstance
from pyao.errors import SnapshotError
from pyao.vm.wasm import _snapshot
from pyao.vm.wasm._devices import DeviceDoor, DeviceFailure, DeviceStates
from pyao.vm.wasm._memory import MemoryFault, MemoryImage
from pyao.vm.wasm._runtime import Outcome, Runtime

#: messages between two refreshes of the base image (at least; large memories wait longer)
COMPACT_EVERY = 64
#: bytes of memory per message of log before a refresh is due (a 1 GiB memory: every 512 messages)
COPY_BYTES_PER_MESSAGE = 2 * 1024 * 1024


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def result_of(outcome: Outcome, metered: bool) -> EvalResult:
    """The EvalResult of one call: the module's response, or an error."""
    gas = outcome.fuel_used if metered else 0
    if outcome.reply is None:
        return EvalResult(error=outcome.failure, gas_used=gas)
    try:
        reply = json.loads(outcome.reply.decode("utf-8", errors="replace"))
        ok, response = reply["ok"], reply["response"]
    except (ValueError, KeyError, TypeError):
        return EvalResult(error=f"the module replied with something other than {{ok, response}} JSON: "
                                f"{outcome.reply[:200]!r}", gas_used=gas)  # fmt: skip
    if not ok:
        return EvalResult(error=response if response is not None else "the module reported failure", gas_used=gas)
    if not isinstance(response, dict):
        return EvalResult(error="the module's response is not an object", gas_used=gas)
    if response.get("Error") not in (None, ""):
        return EvalResult(error=response["Error"], gas_used=gas)
    return EvalResult(
        output=response.get("Output", ""),
        messages=tuple(_list(response.get("Messages"))),
        spawns=tuple(_list(response.get("Spawns"))),
        assignments=tuple(_list(response.get("Assignments"))),
        gas_used=gas,
    )


def _list(value: object) -> list:
    # Lua's json encodes an empty table as {}; an empty list is what it means here
    return value if isinstance(value, list) else []


class WasmProcess(ProcessInstance):
    """See the module docstring."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        compiled: wasmtime.Module,
        module_format: str,
        module: ModuleSource,
        process: ProcessContext,
        limits: Limits,
        drive: FileDrive | None,
        metered: bool,
        compact_every: int = COMPACT_EVERY,
        devices: Devices | None = None,
    ) -> None:
        self._engine, self._compiled = engine, compiled
        self.format = module_format
        self.process, self.limits, self.drive = process, limits, drive
        self.devices = devices or {}
        self.metered = metered
        self.compact_every = max(1, compact_every)
        self.compact_on_device_call = True
        self._digest = hashlib.sha256(module.data).hexdigest()
        self._rt = self._fresh()
        self._base: MemoryImage = self._rt.memory.capture()
        self._base_states: DeviceStates = {}
        self._base_blob: bytes | None = None
        self._log: list[tuple[bytes, bytes]] = []

    def _fresh(self) -> Runtime:
        door = DeviceDoor(self.devices, self.process)
        return Runtime(self._engine, self._compiled, self.process, self.limits, self.drive, door)

    @property
    def device_states(self) -> DeviceStates:
        """Each device's per-process state now (``name@version`` -> bytes)."""
        return dict(self._rt.door.states) if self._rt.door is not None else {}

    # ------------------------------------------------------------ messages

    def handle(self, msg: dict, env: dict) -> EvalResult:
        msg_json, env_json = _dumps(msg), _dumps(env)
        calls_before = self._rt.door.calls if self._rt.door is not None else 0
        try:
            outcome = self._rt.call(msg_json, env_json, msg)
        except DeviceFailure as failure:  # the unit's failure: no result, back to the state before it
            self._rebuild()
            raise failure.cause from None
        result = result_of(outcome, self.metered)
        if result.error is not None:
            self._rebuild()
            return result
        self._log.append((msg_json, env_json))
        device_work = self.compact_on_device_call and self._rt.door is not None and self._rt.door.calls != calls_before
        if device_work or len(self._log) >= self._interval():
            self.compact()
        return result

    def compact(self) -> None:
        """Make the memory as it is now the base, with an empty log (one copy of the memory)."""
        self._base, self._base_blob, self._log = self._rt.memory.capture(), None, []
        self._base_states = self.device_states

    def _interval(self) -> int:
        return max(self.compact_every, self._rt.memory.size() // COPY_BYTES_PER_MESSAGE)

    def _rebuild(self) -> None:
        """A fresh instance holding base + log: the state before the failed message."""
        rt = self._fresh()
        try:
            rt.memory.load(self._base)
        except (MemoryFault, wasmtime.WasmtimeError) as exc:
            raise SnapshotError(f"the memory image does not fit this module: {exc}") from None
        if rt.door is not None:
            rt.door.states = dict(self._base_states)
        for msg_json, env_json in self._log:
            result = result_of(rt.call(msg_json, env_json, json.loads(msg_json)), self.metered)
            if result.error is not None:
                raise SnapshotError(f"replaying the message log did not repeat its results: {result.error}")
        self._rt = rt

    def memory_digest(self) -> str:
        """sha256 of the whole linear memory now (equal logs give equal digests)."""
        return self._rt.memory.capture().digest()

    @property
    def memory_size(self) -> int:
        return self._rt.memory.size()

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        if self._base_blob is None:
            self._base_blob = _snapshot.encode_image(self._base, self.format, self._digest, self._base_states)
        return _snapshot.with_log(self._base_blob, self._log)

    def restore(self, data: bytes) -> None:
        snap = _snapshot.decode(data, self.format, self._digest)
        if snap.memory.size > self.limits.memory:
            raise SnapshotError(f"the snapshot's memory ({snap.memory.size} bytes) is over this process's limit")
        base, states, log, blob = self._base, self._base_states, self._log, self._base_blob
        self._base, self._base_states, self._log, self._base_blob = (
            snap.memory,
            dict(snap.devices),
            list(snap.log),
            None,
        )
        try:
            self._rebuild()
        except Exception:
            self._base, self._base_states, self._log, self._base_blob = base, states, log, blob
            raise
