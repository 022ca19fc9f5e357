"""The ``pyao.device_call`` import: a WASM module calls a ``ProcessDevice`` (``llm@1.0``) by name.

Contract
--------
* Assumes: the module imports ``device_call`` from the import module ``pyao``
  with the C signature ``int64_t device_call(const char *name, size_t name_len,
  const char *request, size_t request_len, char *out, size_t out_cap)``
  (``size_t``/pointers i32 on wasm32, i64 on wasm64).
* Request: UTF-8 JSON ``{"op": "<operation>", "args": [...]}`` (args: null,
  booleans, numbers, strings; an options table is passed as a JSON *string*,
  as the Lua API does). Answer, written to ``out``: UTF-8 JSON
  ``{"ok": true, "values": [...]}`` (device bytes become strings, invalid UTF-8
  replaced) or ``{"ok": false, "error": "<device>: <why>"}`` for a request the
  device cannot serve (unknown device or operation, a refused file, the budget
  spent). The return value is the answer's length; when it is larger than
  ``out_cap`` it is ``-(length)``, nothing is written, charged or kept, and the
  module may ask again with a larger buffer (the call is a pure function of its
  inputs, so the repeat gives the same answer).
* State: each device's opaque per-process state lives in ``DeviceStates``
  (name -> bytes), which the WASM process keeps beside its memory image, so it
  is snapshotted, restored and rolled back with the process (``_process``).
* Budget: a call may spend at most the fuel left in the message (its
  ``Compute-Limit``); its ``cost`` is taken from the store's fuel, so
  ``GasUsed`` includes the tokens decoded.
* Side effects: the device's own (model files, provenance hooks). A device
  failure that is the unit's own (not a ``DeviceError``/``NotFound``) is raised
  as ``DeviceFailure`` out of the evaluation: it is not the message's result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pyao.abc import Devices, ProcessContext, ProcessDevice
from pyao.errors import DeviceError, NotFound

#: the import module and name a WASM module imports the door as
IMPORT_MODULE, IMPORT_NAME = "pyao", "device_call"
MAX_REQUEST_BYTES = 1024 * 1024
MAX_NAME_BYTES = 64

#: per-process device state: ``name@version`` -> opaque bytes
DeviceStates = dict[str, bytes]


class DeviceFailure(Exception):
    """A device failed for the unit's own reasons (a gateway down): the evaluation has no result."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class DeviceDoor:
    """Serves ``device_call`` for one instance: its devices, its process and its per-device states."""

    def __init__(self, devices: Devices, process: ProcessContext) -> None:
        self.devices = {n: d for n, d in devices.items() if isinstance(d, ProcessDevice)}
        self.process = process
        self.states: DeviceStates = {}
        self.calls = 0  # device calls served and kept (the process compacts after a message that made one)

    def call(self, name: bytes, request: bytes, msg: dict, fuel_left: int, out_cap: int,
             charge: Callable[[int], None]) -> bytes | int:  # fmt: skip
        """The answer's bytes, or ``-(its length)`` when ``out_cap`` is too small (nothing kept)."""
        device_name = name.decode(errors="replace")
        try:
            op, args = _parse(request)
            device = self.devices.get(device_name)
            if device is None:
                raise DeviceError(f"this unit offers no device {device_name!r} to WASM processes")
            reply = device.call(self.states.get(device_name), fuel_left, self.process, _device_msg(msg), op, args)
        except (DeviceError, NotFound) as exc:
            return _answer({"ok": False, "error": f"{device_name}: {exc}"}, out_cap)
        except Exception as exc:  # the unit's failure, not the process's: no result for this message
            raise DeviceFailure(exc) from exc
        answer = _answer({"ok": True, "values": [_value(v) for v in reply.values]}, out_cap)
        if isinstance(answer, bytes):  # it fits: the call happened
            self.calls += 1
            charge(reply.cost)
            if reply.state is None:
                self.states.pop(device_name, None)
            else:
                self.states[device_name] = reply.state
        return answer


def _parse(request: bytes) -> tuple[str, tuple]:
    if len(request) > MAX_REQUEST_BYTES:
        raise DeviceError(f"the request is over {MAX_REQUEST_BYTES} bytes")
    try:
        value = json.loads(request.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DeviceError('the request is not UTF-8 JSON {"op": ..., "args": [...]}') from None
    if not isinstance(value, dict) or not isinstance(value.get("op"), str):
        raise DeviceError('the request must be {"op": "<operation>", "args": [...]}')
    args = value.get("args", [])
    if not isinstance(args, list) or any(isinstance(a, dict | list) for a in args):
        raise DeviceError("args must be a list of null, booleans, numbers and strings")
    return value["op"], tuple(args)


def _device_msg(msg: dict) -> dict:
    """What a device sees of the message: the same fields the Lua door passes."""
    return {k: msg.get(k) for k in ("Id", "Hash-Chain", "Read-Only", "Block-Height")}


def _value(v: Any) -> Any:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes | bytearray) else v


def _answer(value: dict, out_cap: int) -> bytes | int:
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return data if len(data) <= out_cap else -len(data)


__all__ = ["IMPORT_MODULE", "IMPORT_NAME", "DeviceDoor", "DeviceFailure", "DeviceStates"]
