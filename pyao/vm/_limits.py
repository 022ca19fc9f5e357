"""Process limits from tags: ``Memory-Limit`` (``1-gb``, ``512-mb``) and ``Compute-Limit``.

The process's tag overrides the module's (as the official CU does). A value over
the unit's maximum is refused, not clipped: clipping would change results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pyao.abc import Limits
from pyao.errors import ModuleError

_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-?\s*([a-z]*)\s*$")


def parse_memory(value: str) -> int:
    """``"1-gb"`` -> 1073741824; ``"512-mb"``, ``"16-gb"``, ``"65536"`` (bytes) also accepted."""
    m = _SIZE.match(value.lower())
    if not m or (m.group(2) or "b") not in _UNITS:
        raise ModuleError(f"bad Memory-Limit {value!r}: expected e.g. '512-mb' or '1-gb'")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "b"])


def parse_compute(value: str) -> int:
    if not value.strip().isdigit():
        raise ModuleError(f"bad Compute-Limit {value!r}: expected a whole number")
    return int(value)


def _first(tags: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in tags if n == name), None)


def limits_for(
    module_tags: Iterable[tuple[str, str]],
    process_tags: Iterable[tuple[str, str]],
    *,
    max_compute: int,
    max_memory: int,
) -> Limits:
    """The process's limits: process tag, else module tag, else the maximum; over the maximum is refused."""
    module_tags, process_tags = list(module_tags), list(process_tags)
    compute_tag = _first(process_tags, "Compute-Limit") or _first(module_tags, "Compute-Limit")
    memory_tag = _first(process_tags, "Memory-Limit") or _first(module_tags, "Memory-Limit")
    compute = parse_compute(compute_tag) if compute_tag else max_compute
    memory = parse_memory(memory_tag) if memory_tag else max_memory
    if compute > max_compute:
        raise ModuleError(f"Compute-Limit {compute} is over this unit's maximum {max_compute}")
    if memory > max_memory:
        raise ModuleError(f"Memory-Limit {memory} bytes is over this unit's maximum {max_memory}")
    return Limits(compute=compute, memory=memory)
