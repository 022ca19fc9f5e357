"""Schedule entries rendered as JSON: a rendered node is remembered by its assignment id, and the
remembered node is what rendering the stored bytes gives."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest

from pyao.data import DataItem, Ed25519Signer, ao, b64url_encode
from pyao.su import _json
from pyao.su._core import MESSAGE, build_entry, next_slot

SIGNER = Ed25519Signer.from_seed(bytes([61]) * 32)
PID = b64url_encode(bytes([5]) * 32)


def _entry(n: int):
    item = DataItem.create(f"m{n}", signer=SIGNER, tags=ao.message_tags([("Action", "X")]), target=PID)
    first = build_entry(SIGNER, next_slot(None, PID, 1), process_id=PID, block_height=3, kind=0, message_id=PID)
    slot = next_slot(first, PID, 2 + n)
    return build_entry(
        SIGNER, slot, process_id=PID, block_height=3, kind=MESSAGE, message_id=item.id, message=item.to_bytes()
    )


def test_rendered_nodes_are_remembered_and_equal_a_fresh_render(monkeypatch):
    monkeypatch.setattr(_json, "_RECENT_NODES_MAX", 2)
    monkeypatch.setattr(_json, "_RECENT_NODES", OrderedDict())
    entries = [_entry(n) for n in range(3)]
    first = _json.node_text(entries[0])
    assert json.loads(first) == _json.node_json(entries[0]) and first == _json.dump(_json.node_json(entries[0]))
    node = json.loads(first)
    assert node["message"]["data"] == "m0" and node["assignment"]["id"] == entries[0].assignment_id
    assert _json.node_text(entries[0]) is first  # remembered
    for e in entries[1:]:
        _json.node_text(e)
    assert list(_json._RECENT_NODES) == [e.assignment_id for e in entries[1:]]  # bounded, oldest out
    assert _json.node_text(entries[0]) == first and _json.node_text(entries[0]) is not first


@pytest.mark.parametrize("by_nonce", [False, True])
@pytest.mark.parametrize("count, more", [(0, False), (1, True), (3, False)])
def test_a_page_joined_from_remembered_nodes_is_the_dump_of_the_page(count, more, by_nonce):
    """The SU answers pages by joining each node's remembered JSON text: byte for byte what
    dumping the page's JSON value gives (the official shape, checked elsewhere)."""
    entries = [_entry(n) for n in range(count)]
    for e in entries[:1]:
        _json.node_text(e)  # one node remembered, the others rendered now
    text = _json.page_text(entries, more, by_nonce=by_nonce)
    assert text == _json.dump(_json.page_json(entries, more, by_nonce=by_nonce))
    page = json.loads(text)
    assert page["page_info"]["has_next_page"] is more
    cursors = [str(e.nonce if by_nonce else e.timestamp) for e in entries]
    assert [edge["cursor"] for edge in page["edges"]] == cursors


def test_a_node_written_directly_is_the_dump_of_its_json():
    """``node_text`` writes a node's JSON itself (not ``dump(node_json(...))``): the same text for
    a process, messages and an assignment of an existing item, with escapes, non-UTF-8 data and
    anchors, empty and set targets, and text outside the BMP."""
    from pyao.su._core import ASSIGNED, PROCESS

    odd = ['é"\\\n\t\x00\x1f\u2028\ud7ff', "plain", "</script>", "\x7f", "😀"]
    previous, entries = None, []
    for n in range(40):
        item = DataItem.create(
            (f"data {n} {odd[n % 5]}").encode() + (b"\xff" if n % 7 == 0 else b""),
            signer=SIGNER,
            target=PID if n % 3 else b"",
            anchor=b"\xff" * 32 if n % 4 == 0 else (b"a" * 32 if n % 4 == 1 else b""),
            tags=[("Action", "Count"), (odd[n % 5], odd[(n + 1) % 5]), ("Serial", str(n))],
        )
        slot = next_slot(previous, PID, 1000 + n)
        kind = PROCESS if slot.nonce == 0 else (ASSIGNED if n % 5 == 4 else MESSAGE)
        previous = build_entry(
            SIGNER, slot, process_id=PID, block_height=9, kind=kind, message_id=item.id,
            message=None if kind == ASSIGNED else item.to_bytes(),
        )  # fmt: skip
        entries.append(previous)
    for entry in entries:
        assert _json._node_text(entry) == _json.dump(_json.node_json(entry))
