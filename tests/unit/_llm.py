"""Helpers for the llm@1.0 tests: a generated tiny model reachable as /data/<id> on a local drive.

The drive here is ``DirectoryDrive`` (local files, no admission rules): a real
``FileDrive`` for unit tests; the integration tests read through a real gateway.
"""

from __future__ import annotations

from pathlib import Path

from pyao.devices.llm import LlmDevice
from pyao.devices.rawdrive import DirectoryDrive
from pyao.devices.tinymodel import write_tiny_model
from tests.unit._lua import make_process

MODEL_ID = "m" * 43
MODEL_PATH = f"/data/{MODEL_ID}"


def tiny_model_file(root: Path, seed: int = 0) -> Path:
    return write_tiny_model(root / f"tiny-{seed}.gguf", seed=seed)


def device_for(root: Path, model_file: Path, **kwargs) -> LlmDevice:
    return LlmDevice(DirectoryDrive({MODEL_ID: model_file}), root / "model-cache", **kwargs)


def llama_process(device: LlmDevice, source: str = "", **kwargs):
    """A native Lua process with Llama loaded as a global, on ``device``."""
    return make_process('Llama = require("llama")\n' + source, devices={"llm@1.0": device}, **kwargs)
