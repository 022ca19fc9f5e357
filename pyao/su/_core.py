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
import struct
from dataclasses import dataclass

from pyao.abc import Signer
from pyao.data import DataItem, Tag, ao, b64url_decode, b64url_encode, deep_hash, encode_tags, scheme_for
from pyao.data.deephash import item_signature_data
from pyao.data.item import remember_signed
from pyao.data.signing import SELF_VERIFYING_SIGNERS
from pyao.errors import AoTagError, RequestError, SignatureError

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
    if b"+link" in item.tag_bytes:  # tag text is in the tag bytes as it is: most items skip the walk
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
    height = str(block_height).zfill(ao.BLOCK_HEIGHT_DIGITS)
    scheduled = None if kind == PROCESS else message_id
    anchor = os.urandom(32)
    if exclude:  # only assignments of existing txs carry Exclude tags: the general builder
        tags = ao.assignment_tags(
            process=process_id, nonce=slot.nonce, hash_chain=slot.hash_chain, block_height=block_height,
            timestamp_ms=slot.timestamp, message=scheduled, epoch=slot.epoch, exclude=exclude,
        )  # fmt: skip
        item = DataItem.create(b"", signer=signer, tags=tags, anchor=anchor)
        assignment_id, assignment = item.id, item.to_bytes()
    else:
        values = (process_id, str(slot.epoch), str(slot.nonce), slot.hash_chain, height, str(slot.timestamp))
        assignment_id, assignment = signed_assignment(signer, values, scheduled, anchor)
    return ScheduleEntry(
        process_id=process_id,
        nonce=slot.nonce,
        epoch=slot.epoch,
        timestamp=slot.timestamp,
        block_height=block_height,
        hash_chain=slot.hash_chain,
        assignment_id=assignment_id,
        message_id=message_id,
        kind=kind,
        assignment=assignment,
        message=message,
        deep_hash=deep_hash,
    )


# The assignment is the SU's one fixed-shape item, built for every slot: its Avro
# tags and its bytes are written here directly, byte for byte what
# ``DataItem.create(b"", tags=ao.assignment_tags(...), anchor=anchor)`` writes
# (tests hold the two together), without the general builder's normalising.
_VARIABLE_NAMES = (b"Process", b"Epoch", b"Nonce", b"Hash-Chain", b"Block-Height", b"Timestamp")
_CONSTANT_TAGS = (Tag(ao.DATA_PROTOCOL, ao.AO), Tag("Type", "Assignment"), Tag("Variant", ao.VARIANT))
_VARIABLE_TAG_NAMES = tuple(name.decode() for name in _VARIABLE_NAMES)
_U16 = struct.Struct("<H")
_U64_PAIR = struct.Struct("<QQ")


def _avro_bytes(raw: bytes) -> bytes:
    """An Avro ``bytes``: zigzag varint length, then the bytes."""
    n, head = len(raw) << 1, bytearray()
    while n > 0x7F:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + raw


_NAME_PREFIXES = tuple(_avro_bytes(name) for name in _VARIABLE_NAMES)
_CONSTANT_BYTES = b"".join(_avro_bytes(n.encode()) + _avro_bytes(v.encode()) for n, v in _CONSTANT_TAGS)
_MESSAGE_PREFIX = _avro_bytes(b"Message")


def signed_assignment(signer: Signer, values: tuple[str, ...], message: str | None, anchor: bytes) -> tuple[str, bytes]:
    """(id, bytes) of the assignment item, signed by ``signer``: ``values`` are Process, Epoch, Nonce,
    Hash-Chain, Block-Height (12 digits) and Timestamp, and ``message`` the Message tag (None: none)."""
    parts = [b"\x12" if message is None else b"\x14"]  # zigzag(9) or zigzag(10) tags, in one block
    for prefix, value in zip(_NAME_PREFIXES, values, strict=True):
        parts += (prefix, _avro_bytes(value.encode()))
    parts.append(_CONSTANT_BYTES)
    if message is not None:
        parts += (_MESSAGE_PREFIX, _avro_bytes(message.encode()))
    parts.append(b"\x00")
    tag_bytes = b"".join(parts)
    kind, owner = signer.signature_type, signer.owner
    signed = item_signature_data(kind, owner, b"", anchor, tag_bytes, b"")
    signature = signer.sign(signed)
    if len(signature) != scheme_for(kind).signature_length:
        raise SignatureError(f"signer made a {len(signature)}-byte signature for type {kind}")
    raw = b"".join(
        (
            _U16.pack(kind),
            signature,
            owner,
            b"\x00\x01",
            anchor,
            _U64_PAIR.pack(10 if message else 9, len(tag_bytes)),
            tag_bytes,
        )
    )
    if type(signer) in SELF_VERIFYING_SIGNERS:  # the gateway ingests it next: spare its parse and check
        tags = (*map(Tag, _VARIABLE_TAG_NAMES, values), *_CONSTANT_TAGS)
        if message is not None:
            tags += (Tag("Message", message),)
        remember_signed(raw, DataItem(kind, signature, owner, b"", anchor, tags, tag_bytes, b""), signed)
    return b64url_encode(hashlib.sha256(signature).digest()), raw


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
    "signed_assignment",
]
