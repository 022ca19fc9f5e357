"""Compute-unit devices: capabilities a process reaches from inside its VM, keyed by ``name@version``.

Contract
--------
* ``DEVICES`` is the explicit allow-list: ``name@version`` -> a factory that
  builds the device from the CU's ``CUConfig``. Registered now:
  ``weavedrive@1.0`` (``pyao.devices.weavedrive``: items on the permanent store
  opened as files) and ``llm@1.0`` (``pyao.devices.llm``: llama.cpp inference on
  GGUF models read through ``weavedrive@1.0``, each generation recorded as a
  provenance record signed by the CU's wallet, queued durably in
  ``<data_dir>/provenance-queue.db`` until uploaded; ``tinymodel`` makes random-weight
  GGUF models for tests and the demo). ``llm@1.0`` needs the ``ai`` extra
  (llama-cpp-python); without it the CU offers no ``llm@1.0``, says so in its
  log, and a process that asks for it gets a clear error.
* ``build_devices(config)`` (also ``devices_for``, as the CU's VM workers call
  it, once per worker) builds the devices ``config.devices`` names (a
  comma-separated list; ``""`` for none) and raises ``DeviceError`` for an
  unknown name. The result is the ``Devices`` mapping a VM gets (``pyao.vm.vm_for``).
* Side effects: a device may hold connections (``close_devices`` releases them).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from pyao.abc import Device, Devices, FileDrive
from pyao.config import CUConfig
from pyao.devices._ranges import BlockCache, GatewayReader
from pyao.devices.weavedrive import WeaveDrive, is_drive_path, parse_path
from pyao.errors import DeviceError

log = logging.getLogger("pyao.devices")

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


def _weavedrive(config: CUConfig, built: Devices) -> Device | None:
    url = config.weavedrive_gateway_url or config.gateway_url
    return WeaveDrive(GatewayReader(url), cache_bytes=config.weavedrive_cache_bytes)


def _llm(config: CUConfig, built: Devices) -> Device | None:
    drive = built.get("weavedrive@1.0")
    if not isinstance(drive, FileDrive):
        raise DeviceError("llm@1.0 reads models through weavedrive@1.0: list weavedrive@1.0 before it")
    if importlib.util.find_spec("llama_cpp") is None:  # llm.py imports it only when a device is made
        log.warning("llm@1.0 is not offered: llama-cpp-python is not installed (pyao's 'ai' extra)")
        return None
    from pyao.data import load_or_create_signer
    from pyao.devices.llm import LlmDevice
    from pyao.provenance import ProvenanceRecorder

    signer = load_or_create_signer(config.wallet, config.wallet_type)
    # the durable queue, shared by the CU's VM workers: records not uploaded when the CU stops go up on its next start
    recorder = ProvenanceRecorder(config.gateway_url, signer, queue_path=config.data_dir / "provenance-queue.db")
    return LlmDevice(drive, config.data_dir / "models", on_generation=recorder)


#: every device a CU can offer, by ``name@version``: a factory of (config, the devices built
#: before it, in ``config.devices`` order), so a device can use another (llm@1.0 reads models
#: through weavedrive@1.0)
DEVICES: dict[str, Callable[[CUConfig, Devices], Device | None]] = {
    "weavedrive@1.0": _weavedrive,
    "llm@1.0": _llm,
}


def build_devices(config: CUConfig) -> Devices:
    """The devices ``config.devices`` names, built from ``config`` in that order."""
    names = [n.strip() for n in config.devices.split(",") if n.strip()]
    unknown = [n for n in names if n not in DEVICES]
    if unknown:
        raise DeviceError(f"unknown device {unknown[0]!r}; known: {', '.join(sorted(DEVICES))}")
    built: Devices = {}
    for name in dict.fromkeys(names):
        device = DEVICES[name](config, dict(built))
        if device is not None:  # None: not available here (a missing optional package), already logged
            built[name] = device
    return built


#: the name the CU's VM workers call (``pyao.cu._workers.build_devices``)
devices_for = build_devices


def close_devices(devices: Devices) -> None:
    """Release what each device holds (connections)."""
    for device in devices.values():
        close = getattr(device, "close", None)
        if close is not None:
            close()
