"""The SU's pure core: hash chain, slots, intake rules, dedupe hash."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pyao.data import DataItem, ao
from pyao.data.item import _parse
from pyao.errors import AoTagError, RequestError
from pyao.su._core import (
    ASSIGNED,
    MESSAGE,
    PROCESS,
    build_entry,
    check_item,
    next_hash_chain,
    next_slot,
    parse_exclude,
    pushed_deep_hash,
    seed_hash_chain,
    signed_assignment,
)
from tests._su import verify_chain

PID = "cEjYfq68WEDDvNQyB3LFx1ez0o9xFsunMQIoha_BDHo"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_hash_chain_matches_the_formula():
    pid_raw = base64.urlsafe_b64decode(PID + "=")
    assert seed_hash_chain(PID) == _b64(hashlib.sha256(pid_raw).digest())
    prev_chain, prev_assignment = seed_hash_chain(PID), _b64(bytes(range(32)))
    expected = _b64(hashlib.sha256(bytes(range(32)) + hashlib.sha256(pid_raw).digest()).digest())
    assert next_hash_chain(prev_chain, prev_assignment) == expected


def test_slots_follow_each_other(signers):
    signer = signers[2]
    nodes = []
    previous = None
    for n, now in enumerate([1000, 1000, 999, 1005]):  # the clock steps back once
        slot = next_slot(previous, PID, now)
        entry = build_entry(
            signer, slot, process_id=PID, block_height=7, kind=PROCESS if n == 0 else MESSAGE,
            message_id=PID if n == 0 else _b64(bytes([n]) * 32),
        )  # fmt: skip
        assignment = DataItem.from_bytes(entry.assignment, verify=True)
        assert assignment.id == entry.assignment_id
        nodes.append({"assignment": {"id": assignment.id, "tags": [t._asdict() for t in assignment.tags]}})
        previous = entry
    verify_chain(PID, nodes)
    assert [next_slot(None, PID, 5).nonce, previous.timestamp] == [0, 1005]
    stamps = [int(n["assignment"]["tags"][5]["value"]) for n in nodes]
    assert stamps == [1000, 1000, 1000, 1005]  # never decreasing


def test_assignment_tags_and_message_tag(signers):
    slot = next_slot(None, PID, 42)
    entry = build_entry(signers[2], slot, process_id=PID, block_height=1234, kind=PROCESS, message_id=PID)
    tags = DataItem.from_bytes(entry.assignment).tags
    assert [t.name for t in tags] == [
        "Process", "Epoch", "Nonce", "Hash-Chain", "Block-Height", "Timestamp", "Data-Protocol", "Type", "Variant",
    ]  # fmt: skip
    assert tags[4].value == "000000001234"
    assigned = build_entry(
        signers[2], slot, process_id=PID, block_height=1, kind=ASSIGNED, message_id=PID, exclude=("Data",)
    )
    names = [t.name for t in DataItem.from_bytes(assigned.assignment).tags]
    assert names[-2:] == ["Message", "Exclude"] and assigned.message is None


@pytest.mark.parametrize("message", [None, "M" * 43], ids=["process slot", "message slot"])
@pytest.mark.parametrize(
    "nonce, timestamp, height", [(0, 0, 0), (12345, 1_700_000_000_000, 1_500_000), (10**15, 2**62, 10**13)]
)
def test_assignment_bytes_are_what_the_general_builder_writes(signer, message, nonce, timestamp, height):
    """The SU writes its assignments directly; they must be DataItem.create's bytes exactly."""
    anchor = bytes(range(32))
    values = (PID, "0", str(nonce), "H" * 43, str(height).zfill(12), str(timestamp))
    assignment_id, raw = signed_assignment(signer, values, message, anchor)
    tags = ao.assignment_tags(
        process=PID, nonce=nonce, hash_chain="H" * 43, block_height=height, timestamp_ms=timestamp, message=message
    )
    general = DataItem.create(b"", signer=signer, tags=tags, anchor=anchor)
    mine = DataItem.from_bytes(raw, verify=True)
    assert mine == _parse(raw)  # what the SU remembers for the gateway is what a parse gives
    assert mine.id == assignment_id
    assert mine.signature_data() == general.signature_data()
    if signer.signature_type in (2, 4):  # deterministic signatures: the very same bytes
        assert raw == general.to_bytes()
    else:
        assert raw == general.to_bytes().replace(general.signature, mine.signature)


def _item(signer, tags, target=""):
    return DataItem.create(b"x", signer=signer, tags=tags, target=target)


def test_intake_rules(signers):
    s = signers[2]
    process = _item(s, ao.process_tags("m" * 43, "s" * 43))
    assert check_item(process, b"").kind == PROCESS
    assert check_item(process, b"").process_id == process.id
    message = _item(s, ao.message_tags(), target=PID)
    intake = check_item(message, b"raw")
    assert (intake.kind, intake.process_id, intake.deep_hash) == (MESSAGE, PID, None)
    bad = {
        "no protocol": _item(s, [("Type", "Message")], target=PID),
        "other protocol": _item(s, [("Data-Protocol", "x"), ("Type", "Message")], target=PID),
        "no type": _item(s, [("Data-Protocol", "ao")], target=PID),
        "module type": _item(s, ao.module_tags("wasm32-unknown-emscripten")),
        "no module": _item(s, [("Data-Protocol", "ao"), ("Type", "Process"), ("Scheduler", "s")]),
        "no scheduler": _item(s, [("Data-Protocol", "ao"), ("Type", "Process"), ("Module", "m")]),
        "no target": _item(s, ao.message_tags()),
        "+link name": _item(s, ao.message_tags([("Foo+link", "x")]), target=PID),
        "+link value": _item(s, ao.message_tags([("Foo", "x+link")]), target=PID),
    }
    for name, item in bad.items():
        with pytest.raises(AoTagError):
            check_item(item, b"")
        assert name


def test_pushed_dedupe_hash_ignores_owner_tag_order_and_pushed_for(signers):
    tags = ao.message_tags([("From-Process", PID), ("Action", "A"), ("Pushed-For", "one")])
    a = DataItem.create(b"d", signer=signers[2], tags=tags, target=PID, anchor="0" * 32)
    reordered = ao.message_tags([("Action", "A"), ("Pushed-For", "two"), ("From-Process", PID)])
    b = DataItem.create(b"d", signer=signers[1], tags=reordered, target=PID, anchor="0" * 32)
    assert a.id != b.id
    assert pushed_deep_hash(a) == pushed_deep_hash(b)
    assert check_item(a, b"").deep_hash == pushed_deep_hash(a)
    other = DataItem.create(b"e", signer=signers[2], tags=tags, target=PID, anchor="0" * 32)
    assert pushed_deep_hash(other) != pushed_deep_hash(a)


def test_parse_exclude():
    assert parse_exclude(None) == () and parse_exclude("") == ()
    assert parse_exclude("Data,Tags") == ("Data", "Tags")
    for bad in (",", "a,,b", ",".join("x" * 33)):
        with pytest.raises(RequestError):
            parse_exclude(bad)
