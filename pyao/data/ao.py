"""ao tags: build the standard tag sets and read them back.

Tags are ordered. Tags before the first ``Data-Protocol`` are *unassociated*;
every later tag belongs to the most recent ``Data-Protocol`` (the ao
protocol-tag convention). The builders lay tags out as aoconnect does: the
caller's own tags stay unassociated, in front, and the ao section
(``Data-Protocol: ao``, ``Variant``, ``Type``, …) follows.

Readers look tags up by first match over the whole list, as the official units
do; ``protocol_tags``/``unassociated_tags`` give the sections when a caller
needs the stricter view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyao.data.item import DataItem
from pyao.data.tags import Tag, TagsLike, as_tags
from pyao.errors import AoTagError

VARIANT = "ao.TN.1"
DATA_PROTOCOL = "Data-Protocol"
AO = "ao"
BLOCK_HEIGHT_DIGITS = 12


# ---------------------------------------------------------------- sections


def unassociated_tags(tags: Sequence[Tag]) -> tuple[Tag, ...]:
    """The tags before the first Data-Protocol tag."""
    out = []
    for tag in tags:
        if tag.name == DATA_PROTOCOL:
            break
        out.append(tag)
    return tuple(out)


def protocol_tags(tags: Sequence[Tag], protocol: str = AO) -> tuple[Tag, ...]:
    """The tags associated with ``protocol``, each section's Data-Protocol tag included."""
    out: list[Tag] = []
    inside = False
    for tag in tags:
        if tag.name == DATA_PROTOCOL:
            inside = tag.value == protocol
        if inside:
            out.append(tag)
    return tuple(out)


def concat_protocol(new: Iterable[Tag], tags: Sequence[Tag], protocol: str = AO) -> tuple[Tag, ...]:
    """Append ``new`` to the end of ``protocol``'s first section, creating it at the end if absent."""
    tags = tuple(tags)
    new = tuple(new)
    start = next((i for i, t in enumerate(tags) if t.name == DATA_PROTOCOL and t.value == protocol), None)
    if start is None:
        return (*tags, Tag(DATA_PROTOCOL, protocol), *new)
    end = next((i for i in range(start + 1, len(tags)) if tags[i].name == DATA_PROTOCOL), len(tags))
    return tags[:end] + new + tags[end:]


def concat_unassociated(new: Iterable[Tag], tags: Sequence[Tag]) -> tuple[Tag, ...]:
    """Append ``new`` to the end of the unassociated section."""
    tags = tuple(tags)
    end = len(unassociated_tags(tags))
    return tags[:end] + tuple(new) + tags[end:]


def remove_protocol_tag(name: str, tags: Sequence[Tag], protocol: str = AO) -> tuple[Tag, ...]:
    """Drop every tag called ``name`` from ``protocol``'s sections."""
    out = []
    inside = False
    for tag in tags:
        if tag.name == DATA_PROTOCOL:
            inside = tag.value == protocol
        if not (inside and tag.name == name):
            out.append(tag)
    return tuple(out)


def first_tag(tags: Iterable[Tag], name: str) -> str | None:
    for tag in tags:
        if tag.name == name:
            return tag.value
    return None


def all_tags(tags: Iterable[Tag], name: str) -> list[str]:
    return [tag.value for tag in tags if tag.name == name]


# ---------------------------------------------------------------- builders


def _ao_section(user: TagsLike | None, ao: list[tuple[str, str]]) -> tuple[Tag, ...]:
    tags = as_tags(user)
    for name, _ in ao:
        tags = remove_protocol_tag(name, tags)
    return concat_protocol(as_tags(ao), tags)


def message_tags(tags: TagsLike | None = None, *, variant: str = VARIANT) -> tuple[Tag, ...]:
    """A user Message: the caller's tags, then Data-Protocol/Variant/Type (as aoconnect)."""
    return _ao_section(tags, [("Variant", variant), ("Type", "Message")])


def process_tags(
    module: str,
    scheduler: str,
    tags: TagsLike | None = None,
    *,
    authorities: Iterable[str] = (),
    timestamp_ms: int | None = None,
    variant: str = VARIANT,
) -> tuple[Tag, ...]:
    """A Process (spawn): Module and Scheduler are required; Authority tags are added unassociated."""
    user = as_tags(tags) + tuple(Tag("Authority", a) for a in authorities)
    ao = [("Variant", variant), ("Type", "Process"), ("Module", module), ("Scheduler", scheduler)]
    if timestamp_ms is not None:
        ao.append(("Timestamp", str(timestamp_ms)))
    return _ao_section(user, ao)


def module_tags(
    module_format: str,
    tags: TagsLike | None = None,
    *,
    input_encoding: str = "JSON-1",
    output_encoding: str = "JSON-1",
    memory_limit: str | None = None,
    compute_limit: int | None = None,
    content_type: str = "application/wasm",
    variant: str = VARIANT,
) -> tuple[Tag, ...]:
    """A Module: the tags aoconnect's spawn checks for, plus optional limits."""
    ao = [
        ("Variant", variant),
        ("Type", "Module"),
        ("Module-Format", module_format),
        ("Input-Encoding", input_encoding),
        ("Output-Encoding", output_encoding),
    ]
    if memory_limit is not None:
        ao.append(("Memory-Limit", memory_limit))
    if compute_limit is not None:
        ao.append(("Compute-Limit", str(compute_limit)))
    user = concat_unassociated([Tag("Content-Type", content_type)], as_tags(tags))
    return _ao_section(user, ao)


def assignment_tags(
    *,
    process: str,
    nonce: int,
    hash_chain: str,
    block_height: int,
    timestamp_ms: int,
    message: str | None = None,
    epoch: int = 0,
    exclude: Iterable[str] = (),
    variant: str = VARIANT,
) -> tuple[Tag, ...]:
    """An SU Assignment, in the official SU's order."""
    tags = [
        Tag("Process", process),
        Tag("Epoch", str(epoch)),
        Tag("Nonce", str(nonce)),
        Tag("Hash-Chain", hash_chain),
        Tag("Block-Height", str(block_height).zfill(BLOCK_HEIGHT_DIGITS)),
        Tag("Timestamp", str(timestamp_ms)),
        Tag(DATA_PROTOCOL, AO),
        Tag("Type", "Assignment"),
        Tag("Variant", variant),
    ]
    if message is not None:
        tags.append(Tag("Message", message))
    tags.extend(Tag("Exclude", field) for field in exclude)
    return tuple(tags)


def scheduler_location_tags(url: str, time_to_live_ms: int, *, variant: str = VARIANT) -> tuple[Tag, ...]:
    return (
        Tag(DATA_PROTOCOL, AO),
        Tag("Variant", variant),
        Tag("Type", "Scheduler-Location"),
        Tag("Url", url),
        Tag("Time-To-Live", str(time_to_live_ms)),
    )


# ---------------------------------------------------------------- readers


def ao_type(item: DataItem) -> str | None:
    """The item's ao ``Type``, or None when it carries no ``Data-Protocol: ao``."""
    if not any(t.name == DATA_PROTOCOL and t.value == AO for t in item.tags):
        return None
    return item.tag("Type")


def _require(item: DataItem, name: str) -> str:
    value = item.tag(name)
    if value is None or value == "":
        raise AoTagError(f"{ao_type(item) or 'item'} {item.id} has no {name} tag")
    return value


def _int_tag(item: DataItem, name: str) -> int:
    value = _require(item, name)
    if not value.isdigit():
        raise AoTagError(f"{name} tag of {item.id} is not a non-negative integer: {value!r}")
    return int(value)


def _expect_type(item: DataItem, expected: str) -> None:
    found = ao_type(item)
    if found != expected:
        raise AoTagError(f"item {item.id} is {found or 'not an ao item'}, expected {expected}")


@dataclass(frozen=True)
class ProcessInfo:
    id: str
    module: str
    scheduler: str
    authorities: tuple[str, ...]

    @classmethod
    def from_item(cls, item: DataItem) -> ProcessInfo:
        _expect_type(item, "Process")
        authorities = tuple(a.strip() for value in item.tag_values("Authority") for a in value.split(",") if a.strip())
        return cls(item.id, _require(item, "Module"), _require(item, "Scheduler"), authorities)


@dataclass(frozen=True)
class ModuleInfo:
    id: str
    module_format: str
    input_encoding: str
    output_encoding: str
    memory_limit: str | None
    compute_limit: str | None

    @classmethod
    def from_item(cls, item: DataItem) -> ModuleInfo:
        _expect_type(item, "Module")
        return cls(
            item.id,
            _require(item, "Module-Format"),
            _require(item, "Input-Encoding"),
            _require(item, "Output-Encoding"),
            item.tag("Memory-Limit"),
            item.tag("Compute-Limit"),
        )


@dataclass(frozen=True)
class AssignmentInfo:
    id: str
    process: str
    epoch: int
    nonce: int
    hash_chain: str
    block_height: int
    timestamp_ms: int
    message: str | None
    exclude: tuple[str, ...]

    @classmethod
    def from_item(cls, item: DataItem) -> AssignmentInfo:
        _expect_type(item, "Assignment")
        return cls(
            item.id,
            _require(item, "Process"),
            _int_tag(item, "Epoch"),
            _int_tag(item, "Nonce"),
            _require(item, "Hash-Chain"),
            _int_tag(item, "Block-Height"),
            _int_tag(item, "Timestamp"),
            item.tag("Message"),
            tuple(item.tag_values("Exclude")),
        )


@dataclass(frozen=True)
class SchedulerLocation:
    """A Scheduler-Location record; tag names match case-insensitively (as scheduler-utils)."""

    id: str
    address: str
    url: str
    time_to_live_ms: int

    @classmethod
    def from_item(cls, item: DataItem) -> SchedulerLocation:
        lower = {}
        for tag in item.tags:
            lower.setdefault(tag.name.lower(), tag.value)
        if lower.get("type") != "Scheduler-Location":
            raise AoTagError(f"item {item.id} is not a Scheduler-Location")
        url, ttl = lower.get("url"), lower.get("time-to-live")
        if not url or not ttl or not ttl.isdigit():
            raise AoTagError(f"Scheduler-Location {item.id} needs Url and a numeric Time-To-Live")
        return cls(item.id, item.owner_address, url, int(ttl))
