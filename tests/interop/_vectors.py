"""Loaders for the vectors made by the reference JS libraries (interop/js/gen-vectors.mjs)."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path

VECTORS = Path(__file__).parent / "vectors"


@cache
def load(name: str):
    return json.loads((VECTORS / name).read_text())


def raw(entry: dict) -> bytes:
    return base64.b64decode(entry["raw_b64"])


def deep_hash_input(node):
    if isinstance(node, dict):
        return base64.b64decode(node["b64"])
    return [deep_hash_input(x) for x in node]
