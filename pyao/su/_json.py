"""Schedule entries as the official SU writes them in JSON (``servers/su/src/domain/core/json.rs``).

Field order and null rules follow the Rust structs:

* ``owner`` is ``{"address": b64url(sha256(owner)), "key": b64url(owner)}`` for
  every signature type (the CU remaps Ethereum keys itself).
* A message's ``data`` is its bytes as lossy UTF-8; the process item at slot 0
  (and ``/processes/{pid}``) shows ``data`` only when it is valid UTF-8, else null.
* ``anchor`` is the anchor as UTF-8 text, null when absent or not valid UTF-8.
* A message's ``target`` is the b64url target ("" when absent); the process
  item's is null when absent; an assignment's is always "".
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from pyao.data import DataItem, b64url_encode
from pyao.su._core import PROCESS, ScheduleEntry


def _owner(item: DataItem) -> dict[str, str]:
    return {"address": b64url_encode(hashlib.sha256(item.owner).digest()), "key": b64url_encode(item.owner)}


def _anchor(item: DataItem) -> str | None:
    try:
        return item.anchor.decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def _strict_text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _tags(item: DataItem) -> list[dict[str, str]]:
    return [{"name": t.name, "value": t.value} for t in item.tags]


def assignment_json(item: DataItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "owner": _owner(item),
        "tags": _tags(item),
        "signature": b64url_encode(item.signature),
        "anchor": _anchor(item),
        "target": item.target_id,
    }


def message_json(item: DataItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "owner": _owner(item),
        "data": item.data.decode("utf-8", "replace"),
        "tags": _tags(item),
        "signature": b64url_encode(item.signature),
        "anchor": _anchor(item),
        "target": item.target_id,
    }


def process_message_json(item: DataItem) -> dict[str, Any]:
    """The process item as the first message of its schedule (``Message::from_process``)."""
    return {
        "id": item.id,
        "owner": _owner(item),
        "data": _strict_text(item.data),
        "tags": _tags(item),
        "signature": b64url_encode(item.signature),
        "anchor": _anchor(item),
        "target": item.target_id or None,
    }


def node_json(entry: ScheduleEntry) -> dict[str, Any]:
    """``{"message", "assignment"}``; ``message`` is null for an assignment of an existing tx."""
    assignment = DataItem.from_bytes(entry.assignment)
    if entry.message is None:
        message = None
    elif entry.kind == PROCESS:
        message = process_message_json(DataItem.from_bytes(entry.message))
    else:
        message = message_json(DataItem.from_bytes(entry.message))
    return {"message": message, "assignment": assignment_json(assignment)}


def page_json(entries: list[ScheduleEntry], has_next_page: bool, *, by_nonce: bool = False) -> dict[str, Any]:
    edges = [{"node": node_json(e), "cursor": str(e.nonce if by_nonce else e.timestamp)} for e in entries]
    return {"page_info": {"has_next_page": has_next_page}, "edges": edges}


def dump(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


#: nodes' JSON text rendered lately, by assignment id (an entry never changes once stored): the
#: CU reads each page from one ms before its cursor, so the entry it evaluated last is read again
_RECENT_NODES: OrderedDict[str, str] = OrderedDict()
_RECENT_NODES_MAX = 4096
_recent_lock = threading.Lock()


_s = json.encoder.encode_basestring  # what ``dump`` writes a string as (ensure_ascii=False)


def _item_text(item: DataItem, data: str | None, target: str | None, with_data: bool) -> str:
    """``dump`` of ``message_json`` / ``process_message_json`` / ``assignment_json``, written directly."""
    address = b64url_encode(hashlib.sha256(item.owner).digest())
    owner = f'{{"address":{_s(address)},"key":{_s(b64url_encode(item.owner))}}}'
    tags = ",".join(f'{{"name":{_s(t.name)},"value":{_s(t.value)}}}' for t in item.tags)
    anchor = _anchor(item)
    middle = f',"data":{"null" if data is None else _s(data)}' if with_data else ""
    return (
        f'{{"id":{_s(item.id)},"owner":{owner}{middle},"tags":[{tags}],"signature":{_s(b64url_encode(item.signature))}'
        f',"anchor":{"null" if anchor is None else _s(anchor)},"target":{"null" if target is None else _s(target)}}}'
    )


def _node_text(entry: ScheduleEntry) -> str:
    """``dump(node_json(entry))`` without building the dicts (a test holds them equal)."""
    assignment = DataItem.from_bytes(entry.assignment)
    if entry.message is None:
        message = "null"
    elif entry.kind == PROCESS:
        item = DataItem.from_bytes(entry.message)
        message = _item_text(item, _strict_text(item.data), item.target_id or None, True)
    else:
        item = DataItem.from_bytes(entry.message)
        message = _item_text(item, item.data.decode("utf-8", "replace"), item.target_id, True)
    return f'{{"message":{message},"assignment":{_item_text(assignment, None, assignment.target_id, False)}}}'


def node_text(entry: ScheduleEntry) -> str:
    """``dump(node_json(entry))``, remembered for recent entries."""
    text = _RECENT_NODES.get(entry.assignment_id)
    if text is None:
        text = _node_text(entry)
        with _recent_lock:
            _RECENT_NODES[entry.assignment_id] = text
            while len(_RECENT_NODES) > _RECENT_NODES_MAX:
                _RECENT_NODES.popitem(last=False)
    return text


def page_text(entries: list[ScheduleEntry], has_next_page: bool, *, by_nonce: bool = False) -> str:
    """``dump(page_json(...))``, joined from the nodes' remembered text (cursors are integers)."""
    edges = ",".join(f'{{"node":{node_text(e)},"cursor":"{e.nonce if by_nonce else e.timestamp}"}}' for e in entries)
    more = "true" if has_next_page else "false"
    return f'{{"page_info":{{"has_next_page":{more}}},"edges":[{edges}]}}'


def process_json(entry: ScheduleEntry) -> dict[str, Any]:
    """``GET /processes/{pid}`` (``ProcessInner``)."""
    assert entry.message is not None
    item = DataItem.from_bytes(entry.message)
    return {
        "process_id": item.id,
        "block": str(entry.block_height).zfill(12),
        "owner": _owner(item),
        "tags": _tags(item),
        "timestamp": entry.timestamp,
        "data": _strict_text(item.data),
        "anchor": _anchor(item),
        "signature": b64url_encode(item.signature),
        "target": item.target_id or None,
    }
