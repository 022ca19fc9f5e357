"""Cron: the messages a process gives itself, generated lazily and deterministically by the CU.

Contract (matches the official CU, servers/cu loadMessages.js, and ``ms`` 2.1.3):

* Process tags ``Cron-Interval: "<N>-<unit>"`` each start a cron; every following
  ``Cron-Tag-<Name>: <value>`` adds tag ``<Name>`` to the most recent one. A Cron-Tag
  before any Cron-Interval is an error.
* ``block``/``blocks`` units count blocks. Anything else is read as ``ms("<N> <unit>")``
  and floored to whole seconds, which must be >= 1. A unit ``ms`` does not know (e.g.
  ``months``) gives a cron that never fires, exactly as the official CU behaves.
* Between two boundaries (consecutive scheduled messages), time ticks from the left
  boundary's timestamp in 1 s steps while below the right one. When a tick reaches the
  next block, block crons whose ``(height - origin height) % N == 0`` fire first; then
  time crons, most frequent first, whose ``(s - origin s) % N == 0`` (s = whole seconds).
  The origin itself never fires.

Nothing here reads a clock: everything comes from the boundaries and block metadata.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pyao.data.tags import Tag
from pyao.errors import DataError

CRON_INTERVAL = "Cron-Interval"
_CRON_TAG = re.compile(r"Cron-Tag-(.+)")  # used with fullmatch: JS /^Cron-Tag-(.+)$/

# ms 2.1.3: the units it knows, in milliseconds.
_SECOND = 1000.0
_UNITS_MS = {
    **dict.fromkeys(("years", "year", "yrs", "yr", "y"), 365.25 * 86400 * _SECOND),
    **dict.fromkeys(("weeks", "week", "w"), 7 * 86400 * _SECOND),
    **dict.fromkeys(("days", "day", "d"), 86400 * _SECOND),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), 3600 * _SECOND),
    **dict.fromkeys(("minutes", "minute", "mins", "min", "m"), 60 * _SECOND),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), _SECOND),
    **dict.fromkeys(("milliseconds", "millisecond", "msecs", "msec", "ms"), 1.0),
}
_MS_PATTERN = re.compile(
    r"(-?(?:\d+)?\.?\d+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|"
    r"days?|d|weeks?|w|years?|yrs?|y)?",
    re.IGNORECASE,
)


class CronError(DataError):
    """A process's cron tags cannot be read."""


@dataclass(frozen=True)
class Cron:
    index: int
    interval: str
    #: "blocks" or "seconds"
    unit: str
    #: blocks or whole seconds; None when the interval never fires (an unknown unit)
    every: int | None
    tags: tuple[Tag, ...]

    @property
    def name(self) -> str:
        """The cron id the official CU stores: ``"<index>-<interval>"``."""
        return f"{self.index}-{self.interval}"


@dataclass(frozen=True)
class Block:
    height: int
    timestamp_ms: int


@dataclass(frozen=True)
class CronTick:
    """One generated cron message (the CU builds the full msg from it)."""

    cron: Cron
    timestamp_ms: int
    block_height: int
    #: the nonce of the scheduled message the tick follows
    ordinate: int


def _ms(text: str) -> float | None:
    """``ms(text)`` of the ms 2.1.3 library, for strings; None where ms returns undefined."""
    if len(text) > 100:
        return None
    match = _MS_PATTERN.fullmatch(text)
    if not match:
        return None
    unit = (match.group(2) or "ms").lower()
    return float(match.group(1)) * _UNITS_MS[unit]


def _js_parse_int(text: str) -> int | None:
    match = re.match(r"^\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else None


def _parse_interval(index: int, interval: str) -> Cron:
    parts = [p.strip() for p in interval.split("-")]
    value = parts[0]
    unit = parts[1] if len(parts) > 1 else ""
    if unit in ("block", "blocks"):
        every = _js_parse_int(value)
        return Cron(index, interval, "blocks", every if every and every > 0 else None, ())
    millis = _ms(f"{value} {unit}")
    if millis is None:  # the official CU gets NaN here: a cron that never fires
        return Cron(index, interval, "seconds", None, ())
    seconds = math.floor(millis / 1000)
    if seconds <= 0:
        raise CronError(f"time-based cron cannot be less than 1 second: {interval!r}")
    return Cron(index, interval, "seconds", seconds, ())


def parse_crons(tags: Iterable[Tag]) -> tuple[Cron, ...]:
    crons: list[Cron] = []
    for tag in tags:
        if tag.name == CRON_INTERVAL:
            crons.append(_parse_interval(len(crons), tag.value))
            continue
        match = _CRON_TAG.fullmatch(tag.name)
        if match:
            if not crons:
                raise CronError(f"Unmatched Cron-Tag with no preceding Cron-Interval: {tag.name}")
            last = crons[-1]
            crons[-1] = Cron(
                last.index, last.interval, last.unit, last.every, (*last.tags, Tag(match.group(1), tag.value))
            )
    return tuple(crons)


def _fires(every: int | None, value: int, origin: int) -> bool:
    return every is not None and value != origin and (value - origin) % every == 0


def cron_ticks_between(
    crons: Sequence[Cron],
    origin: Block,
    left: Block,
    left_ordinate: int,
    right_timestamp_ms: int,
    blocks: Sequence[Block],
) -> Iterator[CronTick]:
    """The cron ticks strictly between a scheduled message (``left``) and the next one.

    ``blocks`` is block metadata (height, timestamp in ms) covering the interval, in
    height order; only blocks strictly inside (left, right) by timestamp count.
    """
    block_crons = [c for c in crons if c.unit == "blocks"]
    time_crons = sorted((c for c in crons if c.unit == "seconds"), key=lambda c: (c.every is None, c.every or 0))
    pending = [b for b in blocks if left.timestamp_ms < b.timestamp_ms < right_timestamp_ms]
    current = left
    origin_seconds = origin.timestamp_ms // 1000
    t = left.timestamp_ms
    while t < right_timestamp_ms:
        if pending and t // 1000 >= pending[0].timestamp_ms // 1000:
            current = pending.pop(0)
            for cron in block_crons:
                if _fires(cron.every, current.height, origin.height):
                    yield CronTick(cron, current.timestamp_ms, current.height, left_ordinate)
        for cron in time_crons:
            if _fires(cron.every, t // 1000, origin_seconds):
                yield CronTick(cron, t, current.height, left_ordinate)
        t += 1000
