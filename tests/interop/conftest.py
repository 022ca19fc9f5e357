from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[2] / "interop" / "js"


@pytest.fixture(scope="session")
def node_harness() -> Path:
    """The JS harness folder, with its dependencies installed (``npm ci`` in interop/js).

    In CI the harness is required: a missing one fails instead of skipping.
    """
    ready = shutil.which("node") and (JS_DIR / "node_modules" / "@dha-team" / "arbundles").is_dir()
    if not ready:
        message = "JS harness not installed: run `npm ci` in interop/js (scripts/test does this)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return JS_DIR
