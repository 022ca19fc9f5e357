"""Schedule entries rendered as JSON: a rendered node is remembered by its assignment id, and the
remembered node is what rendering the stored bytes gives."""

from __future__ import annotations

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
    monkeypatch.setattr(_json, "_RECENT_NODES", {})
    entries = [_entry(n) for n in range(3)]
    first = _json.node_json(entries[0])
    assert first == _json._render_node(entries[0])
    assert first["message"]["data"] == "m0" and first["assignment"]["id"] == entries[0].assignment_id
    assert _json.node_json(entries[0]) is first  # remembered
    for e in entries[1:]:
        _json.node_json(e)
    assert list(_json._RECENT_NODES) == [e.assignment_id for e in entries[1:]]  # bounded, oldest out
    assert _json.node_json(entries[0]) == first and _json.node_json(entries[0]) is not first
