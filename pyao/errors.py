"""The one exception tree of pyao.

Every error pyao raises on purpose is a ``PyaoError``. Callers that hand pyao
untrusted bytes catch ``DataError``; HTTP adapters map ``PyaoError`` subclasses
to 4xx answers. Anything else escaping pyao is a bug.

::

    PyaoError
    ├── DataError                  bytes or values that do not form valid ANS-104 data
    │   ├── ParseError             malformed item / bundle / Avro bytes (truncated, oversized, garbled)
    │   ├── TagError               tags that break the ANS-104 limits (count, sizes, empty name)
    │   ├── SignatureError         signature invalid, or signing impossible
    │   │   └── UnsupportedSignatureType   a signature type pyao does not know
    │   └── AoTagError             an item lacks or misuses the ao tags its Type needs
    ├── WalletError                a key file or key material that cannot be used
    ├── RequestError               a request that is malformed or breaks a documented limit (HTTP 400)
    │   └── PayloadTooLarge        a body over the unit's size limit (HTTP 413)
    ├── NotFound                   an unknown id, process or message (HTTP 404)
    ├── Conflict                   a duplicate: the item or message is already stored/scheduled
    ├── StoreError                 a storage backend failed (the operation changed nothing)
    ├── UnitError                  another unit is down or answered badly (client side)
    │   └── ScheduleError          an SU's schedule breaks the protocol (a broken hash chain, a gap)
    ├── VMError                    a module, limit or state snapshot a VM cannot use
    │   ├── UnknownModuleFormat    no VM is registered for the module's Module-Format
    │   ├── ModuleError            the module cannot be loaded (bad source, bad limit tags, boot failed)
    │   └── SnapshotError          snapshot bytes that are damaged or belong to another module or library
    └── DeviceError                a device (weavedrive@1.0, llm@1.0) cannot do what a process asked
        └── DeviceAccessDenied     the device's rules forbid it (an unattested file)

A message that fails inside a VM (a Lua error, a limit hit) is not an exception:
it is an ``Error`` in the evaluation result.

HTTP adapters answer every ``PyaoError`` with a JSON ``{"error": "..."}`` body:
400 for DataError/RequestError/Conflict (as the official SU does), 404 for NotFound,
413 for PayloadTooLarge, 503 for StoreError/UnitError.
"""

from __future__ import annotations

__all__ = [
    "PyaoError",
    "DataError",
    "ParseError",
    "TagError",
    "SignatureError",
    "UnsupportedSignatureType",
    "AoTagError",
    "WalletError",
    "RequestError",
    "PayloadTooLarge",
    "NotFound",
    "Conflict",
    "StoreError",
    "UnitError",
    "ScheduleError",
    "VMError",
    "UnknownModuleFormat",
    "ModuleError",
    "SnapshotError",
    "DeviceError",
    "DeviceAccessDenied",
]


class PyaoError(Exception):
    """Root of every error pyao raises on purpose."""


class DataError(PyaoError):
    """Input that does not form valid ANS-104 data."""


class ParseError(DataError):
    """Malformed bytes: truncated, oversized, or garbled item, bundle or tag block."""


class TagError(DataError):
    """Tags that break the ANS-104 limits."""


class SignatureError(DataError):
    """A signature that does not verify, or a signer that cannot sign."""


class UnsupportedSignatureType(SignatureError):
    """A signature type that pyao does not implement."""


class AoTagError(DataError):
    """An item that lacks (or misuses) the ao tags its Type requires."""


class WalletError(PyaoError):
    """A key file or key material that cannot be loaded or used."""


class RequestError(PyaoError):
    """A request that is malformed or breaks a documented limit."""


class PayloadTooLarge(RequestError):
    """A request body over the unit's size limit."""


class NotFound(PyaoError):
    """An unknown id, process or message."""


class Conflict(PyaoError):
    """A duplicate: the item is already stored, or the message already scheduled."""


class StoreError(PyaoError):
    """A storage backend failed; the operation changed nothing."""


class UnitError(PyaoError):
    """Another unit is unreachable or answered badly."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ScheduleError(UnitError):
    """A scheduler unit's schedule that breaks the protocol: a broken hash chain, a nonce gap."""


class VMError(PyaoError):
    """A module, limit or state snapshot that a VM cannot use."""


class UnknownModuleFormat(VMError):
    """No VM is registered for a module's ``Module-Format``."""

    def __init__(self, module_format: str, known: list[str]) -> None:
        super().__init__(f"unknown Module-Format {module_format!r}; known formats: {', '.join(known)}")
        self.module_format = module_format
        self.known = known


class ModuleError(VMError):
    """A module that cannot be loaded: bad source, bad limit tags, or a boot that failed."""


class SnapshotError(VMError):
    """Snapshot bytes that are damaged or were made for another module or library."""


class DeviceError(PyaoError):
    """A device (``weavedrive@1.0``, ``llm@1.0``…) that cannot do what a process asked."""


class DeviceAccessDenied(DeviceError):
    """A process asked a device for something its rules do not allow (an unattested file)."""
