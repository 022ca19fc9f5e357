"""How ``pyao up`` runs once every unit is up: on uvloop's event loop (``run_fast``), collecting
cycles rarely (``collect_rarely``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from pyao.cli._up import run_fast


def test_collect_rarely_freezes_start_up_and_raises_the_young_threshold():
    code = (
        "import gc; from pyao.cli._up import GC_THRESHOLDS, collect_rarely;"
        "before = gc.get_threshold(); collect_rarely();"
        "print(before, gc.get_threshold() == GC_THRESHOLDS, GC_THRESHOLDS[0] > before[0], gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-3:] == ["True", "True", "True"]


def test_the_network_runs_on_uvloop():
    async def loop_module() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert run_fast(loop_module()).startswith("uvloop")
