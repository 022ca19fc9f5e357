"""The scheduling core of the SU: pure functions and value types, no I/O.

Contract: given the last slot of a process (or none), the clock and the block
height, ``next_slot`` says what the next slot is, and ``build_entry`` signs its
assignment. ``check_item`` decides whether a posted item may be scheduled at
all. Nothing here touches a store, a socket or a lock.

Facts (permaweb/ao ``servers/su/src/domain/core/scheduler.rs``, ``flows.rs``):

* ``Hash-Chain_0 = b64url(sha256(b64dec(process_id)))`` and
  ``Hash-Chain_n = b64url(sha256(b64dec(assignment_id_{n-1}) || b64dec(Hash-Chain_{n-1})))``.
* ``Nonce`` counts from 0 (the process's own assignment), ``Epoch`` is 0.
* ``Timestamp`` is the SU's wall clock in ms; here it never decreases within a
  process (a clock step back repeats the last timestamp).
* A ``Type=Process`` item needs ``Module`` and ``Scheduler`` tags. Like the
  official SU we do not require ``Scheduler`` to name this SU: a router or a
  second SU of the same operator may legitimately hand it over.
* A tag whose name or value ends in ``+link`` is refused.
* A pushed message (it has ``From-Process``) is refused when a message with the
  same deep hash (owner blanked, tags sorted, ``Pushed-For`` dropped) is already
  scheduled on the same process; that is how the official SU de-duplicates the
  MU's retries.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from pyao.abc import Signer
from pyao.data import DataItem, ao, b64url_decode, b64url_encode, deep_hash, encode_tags
from pyao.errors import AoTagError, RequestError

PROCESS, MESSAGE, ASSIGNED = 0, 1, 2
KINDS = {PROCESS: "process", MESSAGE: "message", ASSIGNED: "assigned"}


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One slot of a schedule, as stored: the signed assignment and what it schedules.

    ``message`` holds the raw scheduled item (the process item itself at nonce 0);
    it is None for an assignment of an existing tx (``kind == ASSIGNED``).
    """

    process_id: str
    nonce: int
    epoch: int
    timestamp: int
    block_height: int
    hash_chain: str
    assignment_id: str
    message_id: str
    kind: int
    assignment: bytes
    message: bytes | None = None
    deep_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    """The position the next entry of a process takes."""

    nonce: int
    epoch: int
    timestamp: int
    hash_chain: str


@dataclass(frozen=True, slots=True)
class Intake:
    """A posted item that passed the checks: what it is, and which schedule it joins."""

    item: DataItem
    raw: bytes
    kind: int
    process_id: str
    deep_hash: str | None


# ---------------------------------------------------------------- hash chain


def seed_hash_chain(process_id: str) -> str:
    return b64url_encode(hashlib.sha256(b64url_decode(process_id)).digest())


def next_hash_chain(previous_hash_chain: str, previous_assignment_id: str) -> str:
    digest = hashlib.sha256(b64url_decode(previous_assignment_id) + b64url_decode(previous_hash_chain))
    return b64url_encode(digest.digest())


def next_slot(previous: ScheduleEntry | None, process_id: str, now_ms: int) -> Slot:
    """The slot after ``previous`` (or slot 0 of a new process)."""
    if previous is None:
        return Slot(0, 0, now_ms, seed_hash_chain(process_id))
    return Slot(
        previous.nonce + 1,
        previous.epoch,
        max(now_ms, previous.timestamp),
        next_hash_chain(previous.hash_chain, previous.assignment_id),
    )


# ---------------------------------------------------------------- intake checks


def check_item(item: DataItem, raw: bytes) -> Intake:
    """Decide whether a posted, verified item may be scheduled; AoTagError if not."""
    tags = item.tags
    if not any(t.name == ao.DATA_PROTOCOL and t.value == ao.AO for t in tags):
        raise AoTagError("Data-Protocol tag not present: the item needs Data-Protocol: ao")
    for tag in tags:
        if tag.name.endswith("+link") or tag.value.endswith("+link"):
            raise AoTagError(f"Tag {tag.name} cannot contain +link")
    kind = item.tag("Type")
    if kind == "Process":
        if item.tag("Module") is None or item.tag("Scheduler") is None:
            raise AoTagError("Required Module and Scheduler tags for Process type not present")
        return Intake(item, raw, PROCESS, item.id, None)
    if kind == "Message":
        if not item.target:
            raise AoTagError("a Message needs a target process")
        pushed = item.tag("From-Process") is not None
        return Intake(item, raw, MESSAGE, item.target_id, pushed_deep_hash(item) if pushed else None)
    raise AoTagError(f"Unsupported Type tag value {kind!r}" if kind is not None else "Type tag not present")


def pushed_deep_hash(item: DataItem) -> str:
    """The official SU's dedupe hash: owner blanked, tags sorted, Pushed-For dropped."""
    tags = sorted((t for t in item.tags if t.name != "Pushed-For"), key=lambda t: (t.name, t.value))
    fields = [b"dataitem", b"1", b"1", b"", item.target, item.anchor, encode_tags(tags), item.data]
    return b64url_encode(deep_hash(fields))


def parse_exclude(text: str | None) -> tuple[str, ...]:
    if text is None or text == "":
        return ()
    fields = tuple(text.split(","))
    if any(not f for f in fields) or len(fields) > 32:
        raise RequestError("exclude is a comma-separated list of at most 32 non-empty field names")
    return fields


# ---------------------------------------------------------------- building


def build_entry(
    signer: Signer,
    slot: Slot,
    *,
    process_id: str,
    block_height: int,
    kind: int,
    message_id: str,
    message: bytes | None = None,
    exclude: tuple[str, ...] = (),
    deep_hash: str | None = None,
) -> ScheduleEntry:
    """Sign the assignment for ``slot`` and return the entry to store."""
    tags = ao.assignment_tags(
        process=process_id,
        nonce=slot.nonce,
        hash_chain=slot.hash_chain,
        block_height=block_height,
        timestamp_ms=slot.timestamp,
        message=None if kind == PROCESS else message_id,
        epoch=slot.epoch,
        exclude=exclude,
    )
    assignment = DataItem.create(b"", signer=signer, tags=tags, anchor=os.urandom(32))
    return ScheduleEntry(
        process_id=process_id,
        nonce=slot.nonce,
        epoch=slot.epoch,
        timestamp=slot.timestamp,
        block_height=block_height,
        hash_chain=slot.hash_chain,
        assignment_id=assignment.id,
        message_id=message_id,
        kind=kind,
        assignment=assignment.to_bytes(),
        message=message,
        deep_hash=deep_hash,
    )


def location_item(signer: Signer, url: str, ttl_ms: int) -> DataItem:
    """The Scheduler-Location record that tells clients where this SU listens."""
    return DataItem.create(b"", signer=signer, tags=ao.scheduler_location_tags(url, ttl_ms))


__all__ = [
    "ASSIGNED",
    "MESSAGE",
    "PROCESS",
    "Intake",
    "ScheduleEntry",
    "Slot",
    "build_entry",
    "check_item",
    "location_item",
    "next_hash_chain",
    "next_slot",
    "parse_exclude",
    "pushed_deep_hash",
    "seed_hash_chain",
]
