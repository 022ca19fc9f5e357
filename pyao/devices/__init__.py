"""Compute-unit devices: capabilities a process reaches from inside its VM, keyed by ``name@version``.

Contract
--------
* ``DEVICES`` is the explicit allow-list: ``name@version`` -> a factory that
  builds the device from the CU's ``CUConfig``. Registered now:
  ``weavedrive@1.0`` (``pyao.devices.weavedrive``: items on the permanent store
  opened as files).
* ``build_devices(config)`` (also ``devices_for``, as the CU's VM workers call
  it, once per worker) builds the devices ``config.devices`` names (a
  comma-separated list; ``""`` for none) and raises ``DeviceError`` for an
  unknown name. The result is the ``Devices`` mapping a VM gets (``pyao.vm.vm_for``).
* Side effects: a device may hold connections (``close_devices`` releases them).
"""

from __future__ import annotations

from collections.abc import Callable

from pyao.abc import Device, Devices
from pyao.config import CUConfig
from pyao.devices._ranges import BlockCache, GatewayReader
from pyao.devices.weavedrive import WeaveDrive, is_drive_path, parse_path
from pyao.errors import DeviceError

__all__ = [
    "DEVICES",
    "BlockCache",
    "GatewayReader",
    "WeaveDrive",
    "build_devices",
    "close_devices",
    "devices_for",
    "is_drive_path",
    "parse_path",
]


def _weavedrive(config: CUConfig, built: Devices) -> Device:
    url = config.weavedrive_gateway_url or config.gateway_url
    return WeaveDrive(GatewayReader(url), cache_bytes=config.weavedrive_cache_bytes)


#: every device a CU can offer, by ``name@version``: a factory of (config, the devices built
#: before it, in ``config.devices`` order), so a device can use another (llm@1.0 reads models
#: through weavedrive@1.0)
DEVICES: dict[str, Callable[[CUConfig, Devices], Device]] = {
    "weavedrive@1.0": _weavedrive,
}


def build_devices(config: CUConfig) -> Devices:
    """The devices ``config.devices`` names, built from ``config`` in that order."""
    names = [n.strip() for n in config.devices.split(",") if n.strip()]
    unknown = [n for n in names if n not in DEVICES]
    if unknown:
        raise DeviceError(f"unknown device {unknown[0]!r}; known: {', '.join(sorted(DEVICES))}")
    built: Devices = {}
    for name in dict.fromkeys(names):
        built[name] = DEVICES[name](config, dict(built))
    return built


#: the name the CU's VM workers call (``pyao.cu._workers.build_devices``)
devices_for = build_devices


def close_devices(devices: Devices) -> None:
    """Release what each device holds (connections)."""
    for device in devices.values():
        close = getattr(device, "close", None)
        if close is not None:
            close()
