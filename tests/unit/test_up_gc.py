"""``pyao up`` collects cycles rarely once every unit runs (``pyao.cli._up.collect_rarely``)."""

from __future__ import annotations

import subprocess
import sys


def test_collect_rarely_freezes_start_up_and_raises_the_young_threshold():
    code = (
        "import gc; from pyao.cli._up import GC_THRESHOLDS, collect_rarely;"
        "before = gc.get_threshold(); collect_rarely();"
        "print(before, gc.get_threshold() == GC_THRESHOLDS, GC_THRESHOLDS[0] > before[0], gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-3:] == ["True", "True", "True"]
